#!/usr/bin/env python3
"""Build the CI packages of msst's families and the reference outputs of msst's own code.

Families: bs-roformer (two stems), mel-band-roformer (a single target, so the
package adds mixture − target), mdx23c (two stems), scnet (three sources, one
of them the target).

For each family, a shrunk model with seeded random weights (the released STFT
and band layouts where a case says so), exported by export_msst.py into
core/tests/data/neural/msst/<family>/, and refs/ with inputs and the stems of
`msst._inference.separate_audio` (which runs `msst.utils.model_utils.demix`,
normalises when the config says so, and extracts the instrumental of a
single-target model as mixture − target).
    ~/.cache/splitsound/ref-venv/bin/python python/tools/parity_msst.py
Needs torch, onnx, onnxruntime and `pip install --no-deps msst` with its
helpers (einops, rotary-embedding-torch, beartype, librosa, pyyaml, ml_collections).
"""
import argparse
import copy
import os
import shutil
import sys

import numpy as np
import onnxruntime as ort
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_msst  # noqa: E402
from _refio import Refs, test_signal  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "neural", "msst")

# Shrunk models: small dims, a 256-point STFT (129 bins), chunks of 40 hops.
TINY_STFT = dict(stft_n_fft=256, stft_hop_length=64, stft_win_length=256, stft_normalized=False)
TINY_NET = dict(dim=16, depth=1, stereo=True, time_transformer_depth=1, freq_transformer_depth=1,
                linear_transformer_depth=0, dim_head=8, heads=2, attn_dropout=0.0, ff_dropout=0.0,
                flash_attn=True, mask_estimator_depth=2)
CONFIGS = {
    # Two stems, no target: every head is a stem.
    "bs-roformer": dict(
        model_type="bs_roformer",
        model=dict(TINY_NET, **TINY_STFT, num_stems=2, freqs_per_bands=(4, 4, 4, 4, 8, 8, 16, 16, 32, 33)),
        audio=dict(chunk_size=2560, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["vocals", "other"], target_instrument=None),
    ),
    # One head for a target: the package adds mixture − target.
    "mel-band-roformer": dict(
        model_type="mel_band_roformer",
        model=dict(TINY_NET, **TINY_STFT, num_stems=1, num_bands=8, sample_rate=44100),
        audio=dict(chunk_size=2560, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["vocals", "other"], target_instrument="vocals"),
    ),
    # Two stems; 128 of the 129 bins in two subbands, two scales: frames and bins divisible by 4.
    "mdx23c": dict(
        model_type="mdx23c",
        model=dict(num_subbands=2, num_scales=2, scale=[2, 2], num_blocks_per_scale=1, num_channels=8, growth=4,
                   bottleneck_factor=2, norm="InstanceNorm", act="gelu"),
        audio=dict(chunk_size=64 * 31, n_fft=256, hop_length=64, dim_f=128, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["vocals", "other"], target_instrument=None),
    ),
    # Three sources, the middle one the target (demix slices it out; the package
    # adds mixture − target); a chunk that is not a whole number of hops; the
    # released band splits and strides, its normalised rectangular-window STFT.
    "scnet": dict(
        model_type="scnet",
        model=dict(sources=["drums", "vocals", "other"], audio_channels=2, dims=[4, 8, 16], nfft=256, hop_size=64,
                   win_size=256, normalized=True, band_SR=[0.175, 0.392, 0.433], band_stride=[1, 4, 16],
                   band_kernel=[3, 4, 16], conv_depths=[2, 1, 1], compress=4, conv_kernel=3, num_dplayer=2,
                   expand=1),
        audio=dict(chunk_size=2500, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["drums", "vocals", "other"], target_instrument="vocals"),
    ),
}

# The released models' STFTs, band layouts, chunks and depths of structure, at
# narrow widths (the full widths are in benches/): viperx's BS-RoFormer (the
# class's 62 default bands, hop 441, chunk 352800), Kimberley's Mel-Band
# RoFormer (60 bands), the MDX23C vocals config (8192/1024, dim_f 4096, 4
# subbands, 5 scales, chunk 261120), SCNet (4096/1024, chunk 485100: 476 frames,
# three SD levels, six dual-path layers). One case each: a third of a chunk.
RELEASED_ROFORMER = dict(TINY_NET, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048, stft_normalized=False,
                         num_stems=1, mlp_expansion_factor=1)
RELEASED = {
    "bs-roformer": dict(
        model_type="bs_roformer",
        model=dict(RELEASED_ROFORMER),
        audio=dict(chunk_size=352800, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=2),
        training=dict(instruments=["vocals", "other"], target_instrument="vocals"),
    ),
    "mel-band-roformer": dict(
        model_type="mel_band_roformer",
        model=dict(RELEASED_ROFORMER, num_bands=60, sample_rate=44100),
        audio=dict(chunk_size=352800, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=2),
        training=dict(instruments=["vocals", "other"], target_instrument="vocals"),
    ),
    "mdx23c": dict(
        model_type="mdx23c",
        model=dict(num_subbands=4, num_scales=5, scale=[2, 2], num_blocks_per_scale=1, num_channels=8, growth=4,
                   bottleneck_factor=16, norm="InstanceNorm", act="gelu"),
        audio=dict(chunk_size=261120, n_fft=8192, hop_length=1024, dim_f=4096, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["vocals", "other"], target_instrument=None),
    ),
    "scnet": dict(
        model_type="scnet",
        model=dict(sources=["vocals", "other"], audio_channels=2, dims=[4, 8, 12, 16], nfft=4096, hop_size=1024,
                   win_size=4096, normalized=True, band_SR=[0.175, 0.392, 0.433], band_stride=[1, 4, 16],
                   band_kernel=[3, 4, 16], conv_depths=[3, 2, 1], compress=4, conv_kernel=3, num_dplayer=6,
                   expand=1),
        audio=dict(chunk_size=485100, num_channels=2, sample_rate=44100),
        inference=dict(batch_size=1, num_overlap=4),
        training=dict(instruments=["vocals", "other"], target_instrument=None),
    ),
}


def config_dict(d):
    from ml_collections import ConfigDict

    return ConfigDict(copy.deepcopy(d))


class Args:
    """The command-line arguments `separate_audio` reads."""

    def __init__(self, model_type, instrumental):
        self.model_type = model_type
        self.disable_detailed_pbar = True
        self.bigshifts = 1
        self.use_tta = False
        self.extract_instrumental = instrumental


def reference(model, cfg, mix):
    from msst._inference import separate_audio

    config = config_dict(cfg)
    args = Args(cfg["model_type"], bool(cfg["training"]["target_instrument"]))
    out = separate_audio(model, args, config, torch.device("cpu"), mix)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=sorted(CONFIGS), action="append")
    ap.add_argument("--released", action="store_true", help="the released-shape packages (<family>-released/)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for family in args.family or sorted(CONFIGS):
        cfg = (RELEASED if args.released else CONFIGS)[family]
        out = os.path.join(OUT, family + ("-released" if args.released else ""))
        # What this script writes (parity_mdxc.py's refs-mdxc/ beside it stay).
        shutil.rmtree(os.path.join(out, "refs"), ignore_errors=True)
        for f in ("ci.json", "ci.onnx", "config.yaml"):
            if os.path.exists(os.path.join(out, f)):
                os.remove(os.path.join(out, f))
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.yaml"), "w") as f:
            yaml.dump(cfg, f, sort_keys=False)  # freqs_per_bands as a !!python/tuple, as msst's configs have it
        torch.manual_seed(0)
        model = export_msst.build(cfg["model_type"], config_dict(cfg)).eval()
        chunk = cfg["audio"]["chunk_size"]
        refs = Refs(os.path.join(out, "refs"))
        ov = cfg["inference"]["num_overlap"]
        cases = [("released", 2, chunk // 3, 1, False, ov)] if args.released else [
            # name, channels, frames, batch_size, normalize, num_overlap
            ("stereo", 2, 3 * chunk + 777, 1, False, 4),  # reflect-padded, a partial last chunk
            ("mono", 1, 2 * chunk + 100, 1, False, 4),
            ("short", 2, chunk // 3, 1, False, 4),  # shorter than 2 · border: no padding; zero-padded chunk
            ("short_reflect", 2, int(0.7 * chunk), 1, False, 4),  # the chunk reflect-padded
            ("batch3", 2, 4 * chunk + 333, 3, False, 4),  # 23 chunks: a partial last batch
            ("normalize", 2, 2 * chunk + 555, 1, True, 4),
            # Unpadded, batched: the first chunk keeps its fade-in, so sample 0 is 0/0 (the mean, normalised).
            ("short_batch3_normalize", 2, chunk // 3, 3, True, 4),
            ("overlap1", 2, 2 * chunk + 777, 1, False, 1),  # no border: 0/0 at the chunks' edges
        ]
        for i, (name, channels, frames, batch, normalize, overlap) in enumerate(cases):
            c = copy.deepcopy(cfg)
            c["inference"]["batch_size"] = batch
            c["inference"]["normalize"] = normalize
            c["inference"]["num_overlap"] = overlap
            # Music-like, over a noise floor 40 dB down: a random network's RMSNorm
            # blows a band that holds only rounding noise up to unit size, so a band
            # with no signal would compare FFT rounding, not the pipelines.
            x = test_signal(channels, frames, 40 + i)
            x += 0.01 * np.random.default_rng(400 + i).standard_normal(x.shape).astype(np.float32)
            x *= 0.8 / np.abs(x).max()
            with torch.no_grad():
                stems = reference(model, c, x.copy())
            refs.save(f"{name}_input", x, sample_rate=44100)
            names = list(stems)
            # Released shapes: the first stem only (the rest takes the same path), to keep the files small.
            kept = names[:1] if args.released else names
            refs.save(f"{name}_output", np.stack([stems[n] for n in kept]), stems=names, batch_size=batch,
                      normalize=normalize, num_overlap=overlap)
            print(f"{family} {name}: stems {names}, peak {max(np.abs(stems[n]).max() for n in names):.3f}")
        refs.close()
        # The package (after the references: export switches attention to its SDPA path, chunked).
        config = export_msst.load_config(os.path.join(out, "config.yaml"))
        manifest = export_msst.export(cfg["model_type"], config, model, out, "ci")
        err = graph_error(model, config, out, manifest)
        print(f"{family}: graph vs module, max error {err:.2e} of peak")
        assert err < 1e-5, err


def graph_error(model, config, pkg_dir, manifest):
    """The package's graph against the module's own network on one random
    input (batch 2), relative to the module's peak."""
    _, stem_ids, _ = export_msst.stems_of(config, export_msst.heads_of(model))
    net = export_msst.Network(model, stem_ids)
    spec = manifest["inputs"][0]
    x = torch.randn(2, *spec["shape"][1:])
    with torch.no_grad():
        want = net(x).numpy()
    sess = ort.InferenceSession(os.path.join(pkg_dir, manifest["files"][0]["path"]),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {spec["name"]: x.numpy()})[0]
    return float(np.abs(got - want).max() / np.abs(want).max())


if __name__ == "__main__":
    main()
