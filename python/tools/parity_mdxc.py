#!/usr/bin/env python3
"""Reference outputs of audio-separator 0.47's own MDXCSeparator on the msst CI packages.

audio-separator runs MDX23C and the RoFormers with its own chunking
(`audio_separator/separator/architectures/mdxc_separator.py`, `demix`), not
msst's: RoFormers get a Hamming window over every chunk, no padding, and a last
chunk aligned to the end of the audio; MDX23C gets zero padding, no window and
a division by the overlap count. This script records what that code computes
on the same seeded random-weight models as parity_msst.py, so splitsound's
reimplementation of the chunking can be checked against it.

For bs-roformer, mel-band-roformer and mdx23c (audio-separator 0.47 has no SCNet):
- the model is rebuilt as parity_msst.py builds it (`torch.manual_seed(0)`,
  `export_msst.build`, from parity_msst.CONFIGS, which must equal the committed
  config.yaml) and checked against the committed ci.onnx on a random input;
- its state dict is saved to a temporary checkpoint and a real `MDXCSeparator`
  is constructed on it: the RoFormers load through audio-separator's
  RoformerLoader into its own BSRoformer/MelBandRoformer classes, MDX23C into
  its own TFC_TDF_net, all with strict `load_state_dict` (every key matches);
- the loaded module's waveform output on one chunk is compared with msst's
  module. MDX23C: the same. RoFormers: audio-separator's classes never zero
  the STFT's DC bin (they take `zero_dc` and ignore it), so they equal msst's
  module with `zero_dc = False`, not the package's `zero_dc: true`;
  the refs of the RoFormers carry `zero_dc=False`;
- per case, what `MDXCSeparator.separate()` does to the numbers, in memory with
  audio-separator's own functions: `prepare_mix` (an array of [N, C], mono
  duplicated to two channels), `spec_utils.normalize(mix, 0.9, 0.0)`,
  `demix(mix, override_model_segment_size=...)` and each stem's
  `spec_utils.normalize(stem, 0.9, 0.0)`; no audio file is written. A
  single-target model's second stem is demix's `orig_mix - primary`, against
  the peak-normalised mix, before the stems' own peak limit;
- the chunks demix ran (recorded with a forward hook) are recombined here as
  the spec says (RoFormers: starts 0, step, ... and a last one at N - chunk,
  each chunk times `scipy.signal.windows.hamming(chunk)` in float32, divided by
  the summed window clamped at 1e-10; MDX23C: chunk - hop zeros before,
  pad + chunk - hop after, unwindowed sum divided by num_overlap) and must give
  demix's result.
With --released, the same for the released-shape BS-RoFormer and MDX23C packages
(one loud case, the first stem kept), into <family>-released/refs-mdxc/.
Writes core/tests/data/neural/msst/<family>/refs-mdxc/: `{case}_input` [C, N]
and `{case}_output` [stems, 2, N] (a mono input's stems have two equal
channels, as in parity_msst.py's refs) in the package's stem order (ci.json),
with params `stems`, `num_overlap` and, for RoFormers, `zero_dc`. The committed
ci.onnx, ci.json and refs/ are not touched.
    ~/.cache/splitsound/ref-venv/bin/python python/tools/parity_mdxc.py

Settings: `inference.dim_t` = chunk_size / hop + 1 (hop: `model.stft_hop_length`
for RoFormers, `audio.hop_length` for MDX23C) and `arch_config.segment_size` =
dim_t, so the rule that forces `override_model_segment_size` below 10 s (every
case here) leaves the chunk as it is; `overlap` None, so it comes from
`inference.num_overlap`; batch size None (the RoFormer path ignores it, MDX23C's
numbers do not depend on it); no pitch shift.

Needs torch, onnxruntime, msst (as parity_msst.py) and `pip install
audio-separator==0.47.1`. Its module-level imports of `six` and `pydub` (pitch
shifting with rubberband, the audio writer: neither runs here) get empty
stand-ins when they are not installed. audio-separator pins
rotary-embedding-torch < 0.7, whose RotaryEmbedding starts with no cached
angles; from 0.7 on the cache is a preallocated zero buffer, which
audio-separator's own rotary helper (`uvr_lib_v5/roformer/rotary.py`) takes
for valid angles, so with msst's newer rotary-embedding-torch its RoFormers
would run with no rotation at all. With such a version installed the cache is
emptied after loading (`cached_freqs[:0]`, which the helper treats as the
pinned version's empty cache: it computes the angles and caches them).

Not recorded: inputs shorter than one chunk. audio-separator's RoFormer path
then has a single chunk start at 0 and runs the network on the N-sample input
itself (no padding), which splitsound's fixed-frame graphs cannot do. Its
inverse STFT has no `length`, so the network returns hop · (N // hop) samples:
those are the output (the window, applied and divided out, cancels), and the
last N % hop samples are 0 (result and summed window both 0, the clamp makes
it 0 / 1e-10); a single-target model's residual there is the mix itself.
Inputs of a chunk or more run only whole chunks. (MDX23C zero-pads as for any
length.)
"""
import argparse
import copy
import json
import logging
import os
import shutil
import sys
import tempfile
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_msst  # noqa: E402
from _refio import Refs, kept, test_signal, windows  # noqa: E402
from parity_msst import CONFIGS, OUT, RELEASED, config_dict, graph_error  # noqa: E402

FAMILIES = ["bs-roformer", "mel-band-roformer", "mdx23c"]


def check_package(family, cfg, model):
    """The rebuilt model is the network of the committed package (`family` is its folder)."""
    pkg = os.path.join(OUT, family)
    config = export_msst.load_config(os.path.join(pkg, "config.yaml"))
    assert config.to_dict() == config_dict(cfg).to_dict(), f"{family}: config.yaml differs from parity_msst.CONFIGS"
    with open(os.path.join(pkg, "ci.json")) as f:
        manifest = json.load(f)
    err = graph_error(model, config, pkg, manifest)
    print(f"{family}: committed ci.onnx vs rebuilt module, max error {err:.2e} of peak")
    assert err < 1e-5, err
    return manifest["stems"]


def model_data(cfg, overlap):
    """The yaml audio-separator reads, with the keys it adds for MDXC models."""
    d = copy.deepcopy(cfg)
    roformer = cfg["model_type"] != "mdx23c"
    if roformer:
        # audio-separator's RoformerLoader has defaults of its own (the band
        # layout, mlp_expansion_factor 4): the yaml it reads states msst's for
        # every plain parameter the config leaves out.
        import inspect

        from msst.models.bs_roformer import BSRoformer, MelBandRoformer

        cls = BSRoformer if cfg["model_type"] == "bs_roformer" else MelBandRoformer
        for name, p in inspect.signature(cls.__init__).parameters.items():
            plain = isinstance(p.default, (bool, int, float)) or (
                isinstance(p.default, tuple) and all(isinstance(v, int) for v in p.default))
            if name not in d["model"] and plain:
                d["model"][name] = p.default
    hop = cfg["model"]["stft_hop_length"] if roformer else cfg["audio"]["hop_length"]
    chunk = cfg["audio"]["chunk_size"]
    dim_t = chunk // hop + 1
    assert hop * (dim_t - 1) == chunk, (hop, chunk)
    d["inference"]["dim_t"] = dim_t
    d["inference"]["num_overlap"] = overlap
    if roformer:
        d["is_roformer"] = True
    return d, dim_t


def stub_unused_imports():
    """audio-separator imports `six` (for its rubberband pitch-shift helper) and
    `pydub` (its audio writer) at module level; neither runs here, and the
    reference venv may lack them. Stand-ins only where they are missing."""
    for name in ("six", "pydub"):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            m.PY2 = False
            m.AudioSegment = None
            sys.modules[name] = m


def empty_rotary_caches(module):
    """The state rotary-embedding-torch < 0.7 starts in: no cached angles (see the docstring)."""
    from rotary_embedding_torch import RotaryEmbedding

    emptied = 0
    for m in module.modules():
        if isinstance(m, RotaryEmbedding) and torch.is_tensor(m.cached_freqs) and m.cached_freqs.numel():
            assert not m.cached_freqs.any(), "a rotary cache already holds angles"
            m.cached_freqs = m.cached_freqs[:0]
            emptied += 1
    return emptied


def separator(cfg, overlap, ckpt, log):
    stub_unused_imports()
    from audio_separator.separator.architectures.mdxc_separator import MDXCSeparator

    data, dim_t = model_data(cfg, overlap)
    cpu = torch.device("cpu")
    common = dict(logger=log, log_level=log.level, torch_device=cpu, torch_device_cpu=cpu, torch_device_mps=None,
                  onnx_execution_provider=None, model_name=os.path.splitext(os.path.basename(ckpt))[0],
                  model_path=ckpt, model_data=data, output_format="WAV", output_bitrate=None,
                  output_dir=os.path.dirname(ckpt), normalization_threshold=0.9, amplification_threshold=0.0,
                  output_single_stem=None, invert_using_spec=False, sample_rate=44100, use_soundfile=False,
                  use_autocast=False, use_native_fp16=False, use_torch_compile=False)
    arch = dict(segment_size=dim_t, override_model_segment_size=False, batch_size=None, overlap=None, pitch_shift=0)
    sep = MDXCSeparator(common_config=common, arch_config=arch)
    assert sep.is_roformer == (cfg["model_type"] != "mdx23c")
    assert sep.overlap == overlap and sep.pitch_shift == 0
    assert not getattr(sep, "is_torch_compiled", False) and not sep.is_native_fp16
    if sep.is_roformer and empty_rotary_caches(sep.model_run):
        print("  (rotary-embedding-torch >= 0.7: rotary caches emptied, as the pinned < 0.7 starts)")
    return sep


def separate(sep, x):
    """MDXCSeparator.separate() up to the files. Returns the stems by name, and
    for the check of the chunking: the normalised mix, demix's sources, and the
    chunks the network ran (input, output)."""
    from audio_separator.separator.uvr_lib_v5 import spec_utils

    mix = sep.prepare_mix(x[0] if x.shape[0] == 1 else x.T.copy())  # an array is taken as [N, C]
    override = sep._use_model_segment_override(mix.shape[1] / sep.sample_rate)
    mix = spec_utils.normalize(wave=mix, max_peak=sep.normalization_threshold, min_peak=sep.amplification_threshold)
    kept = mix.copy()
    calls = []
    hook = sep.model_run.register_forward_hook(lambda m, i, o: calls.append((i[0].clone(), o.clone())))
    try:
        with torch.no_grad():
            source = sep.demix(mix=mix, override_model_segment_size=override)
    finally:
        hook.remove()
    assert isinstance(source, dict), type(source)
    raw = {k: v.copy() for k, v in source.items()}
    # Two stems: primary and secondary, each peak-limited (no stem list longer than two here).
    stems = {name: spec_utils.normalize(wave=source[name], max_peak=sep.normalization_threshold,
                                        min_peak=sep.amplification_threshold)
             for name in (sep.primary_stem_name, sep.secondary_stem_name)}
    assert np.array_equal(mix, kept)
    return stems, mix, raw, calls


def recombine(sep, mix, calls, verbose):
    """demix's result rebuilt from its chunks as the spec describes: [instruments or 1, 2, N]."""
    from scipy import signal

    n = mix.shape[1]
    if sep.is_roformer:
        chunk = int(sep.model_data_cfgdict.model.stft_hop_length) * (sep.segment_size - 1)
        step = chunk // sep.overlap
        starts = []
        for s in range(0, n, step):
            if s + chunk >= n:
                if not starts or starts[-1] != max(n - chunk, 0):
                    starts.append(max(n - chunk, 0))
                break
            starts.append(s)
        assert len(calls) == len(starts), (len(calls), starts)
        w = signal.windows.hamming(chunk).astype(np.float32)
        assert np.abs(w - (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(chunk) / (chunk - 1)))).max() < 1e-7  # symmetric
        out_shape = calls[0][1].shape[1:]  # [stems, 2, chunk] or [2, chunk]
        result = np.zeros(out_shape[:-1] + (n,), np.float32)
        counter = np.zeros(n, np.float32)
        for (inp, out), s in zip(calls, starts):
            assert inp.shape == (1, 2, chunk) and np.array_equal(inp[0].numpy(), mix[:, s:s + chunk])
            result[..., s:s + chunk] += out[0].numpy() * w
            counter[s:s + chunk] += w
        result /= np.maximum(counter, 1e-10)
        if verbose:
            print(f"  roformer demix: chunk {chunk}, step {step}, {len(starts)} chunks at {starts} (N = {n}); "
                  f"hamming(chunk) sym float32, w[0] = w[-1] = {w[0]:.4f}, w[mid] = {w[chunk // 2]:.4f}; "
                  f"min summed window {counter.min():.4f} (the 1e-10 clamp never binds for N >= chunk)")
        return result if result.ndim == 3 else result[None]
    chunk = int(sep.model_data_cfgdict.audio.hop_length) * (sep.segment_size - 1)
    hop = chunk // sep.overlap
    pad = hop - (n - chunk) % hop
    padded = np.concatenate([np.zeros((2, chunk - hop), np.float32), mix,
                             np.zeros((2, pad + chunk - hop), np.float32)], 1)
    ins = torch.cat([i for i, _ in calls]).numpy()
    outs = torch.cat([o for _, o in calls]).numpy()
    starts = list(range(0, padded.shape[1] - chunk + 1, hop))
    assert len(ins) == len(starts)
    acc = np.zeros(outs.shape[1:-1] + (padded.shape[1],), np.float32)
    cover = np.zeros(padded.shape[1], np.int64)
    for k, s in enumerate(starts):
        assert np.array_equal(ins[k], padded[:, s:s + chunk])
        acc[..., s:s + chunk] += outs[k]
        cover[s:s + chunk] += 1
    acc /= sep.overlap
    result = acc[..., chunk - hop:chunk - hop + n]
    if verbose:
        c = cover[chunk - hop:chunk - hop + n]
        print(f"  mdx23c demix: chunk {chunk}, hop {hop} (overlap {sep.overlap}), pad {pad}: {chunk - hop} zeros "
              f"before, {pad + chunk - hop} after; {len(starts)} chunks at padded offsets {starts}; no window, "
              f"sum / {sep.overlap}; chunks covering a sample: {c.min()}..{c.max()}")
    return result if result.ndim == 3 else result[None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=FAMILIES, action="append")
    ap.add_argument("--released", action="store_true",
                    help="the released-shape packages (<family>-released/, from parity_msst.py --released)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    log = logging.getLogger("parity_mdxc")
    log.setLevel(logging.ERROR)
    logging.basicConfig(level=logging.ERROR)
    tmp = tempfile.mkdtemp()
    try:
        # audio-separator 0.47's MelBandRoformer builds its mask estimators four
        # times `dim` wide whatever mlp_expansion_factor says, so it cannot load
        # the narrow released-shape Mel-Band package (factor 1); its CI shape runs.
        default = [f for f in FAMILIES if f != "mel-band-roformer"] if args.released else FAMILIES
        for family in args.family or default:
            cfg = (RELEASED if args.released else CONFIGS)[family]
            folder = family + ("-released" if args.released else "")
            torch.manual_seed(0)
            model = export_msst.build(cfg["model_type"], config_dict(cfg)).eval()
            stems = check_package(folder, cfg, model)
            roformer = cfg["model_type"] != "mdx23c"
            chunk = cfg["audio"]["chunk_size"]
            ckpt = os.path.join(tmp, family.replace("-", "_") + ".ckpt")
            torch.save(model.state_dict(), ckpt)

            # audio-separator's own module on these weights against msst's, on one chunk.
            sep = separator(cfg, cfg["inference"]["num_overlap"], ckpt, log)
            print(f"{family}: MDXCSeparator built, model_run {type(sep.model_run).__module__}."
                  f"{type(sep.model_run).__name__}")
            x = 0.3 * torch.randn(1, 2, chunk)
            with torch.no_grad():
                got = sep.model_run(x)
                want = model(x).reshape(got.shape)  # audio-separator's MDX23C keeps a stem axis only for several stems
                err = (got - want).abs().max().item() / want.abs().max().item()
                print(f"{family}: audio-separator's module vs msst's on one chunk, max difference {err:.2e} of peak")
                if roformer:
                    model.zero_dc = False
                    want = model(x).reshape(got.shape)
                    model.zero_dc = True
                    err = (got - want).abs().max().item() / want.abs().max().item()
                    print(f"{family}: ... vs msst's with zero_dc = False, max difference {err:.2e} of peak")
            assert err < 1e-5, err

            out = os.path.join(OUT, folder, "refs-mdxc")
            if os.path.isdir(out):
                shutil.rmtree(out)
            refs = Refs(out)
            # Released shapes: one loud input a little over a chunk (a peak-limited
            # mix, a RoFormer's end-aligned second chunk, MDX23C's padding), at the
            # config's own num_overlap; the first stem only, as parity_msst.py keeps,
            # in windows around the chunks' edges.
            cases = [("released", 2, chunk + 1234, 1.5, cfg["inference"]["num_overlap"], 70)] \
                if args.released else [
                # name, channels, frames, peak, num_overlap, seed
                ("stereo", 2, 3 * chunk + 777, 0.8, 4, 60),  # under 0.9: no normalisation
                # The mix scaled to 0.9, each stem limited to 0.9 on its own (the seed makes
                # mel-band-roformer's residual peak at 0.91; the random networks' stems stay small).
                ("loud", 2, 2 * chunk + 100, 1.5, 4, 68),
                ("mono", 1, 2 * chunk + 300, 0.8, 4, 62),  # duplicated to two channels
                ("exact", 2, chunk, 0.8, 4, 63),
                ("overlap3", 2, 2 * chunk + 555, 0.8, 3, 64),  # MDX23C: 1984 % 3 != 0, gain bumps
                ("long_tail", 2, 4 * chunk + 1, 0.8, 4, 65),  # the RoFormer tail chunk one sample past the last
            ]
            for name, channels, frames, peak, overlap, seed in cases:
                if overlap != sep.overlap:
                    sep = separator(cfg, overlap, ckpt, log)
                x = test_signal(channels, frames, seed)
                x += 0.01 * np.random.default_rng(540 + seed).standard_normal(x.shape).astype(np.float32)
                x *= peak / np.abs(x).max()
                got, mix, raw, calls = separate(sep, x.copy())

                # The chunking, rebuilt from the chunks demix ran; and the order of the normalisations.
                rebuilt = recombine(sep, mix, calls, verbose=name in ("stereo", "overlap3", "long_tail"))
                primary = raw[sep.primary_stem_name]
                err = np.abs(rebuilt[0] - primary).max() / np.abs(primary).max()
                assert err < 1e-6, (name, err)
                if sep.is_primary_stem_main_target:
                    assert np.array_equal(raw[sep.secondary_stem_name], mix - primary)
                else:
                    err = np.abs(rebuilt[1] - raw[sep.secondary_stem_name]).max()
                    assert err < 1e-6 * np.abs(rebuilt[1]).max(), (name, err)
                src = x if channels == 2 else np.repeat(x, 2, 0)
                assert np.allclose(mix, src * min(1.0, 0.9 / np.abs(src).max()), rtol=0, atol=1e-7)
                for s, y in got.items():
                    assert y.shape == (2, frames) and y.dtype == np.float32, (s, y.shape, y.dtype)
                    assert np.isfinite(y).all(), s
                    r = raw[s]
                    assert np.allclose(y, r * min(1.0, 0.9 / np.abs(r).max()), rtol=0, atol=1e-7), s

                # Two channels also for the mono input (as parity_msst's refs: the mix is made stereo).
                y = np.stack([got[s] for s in (stems[:1] if args.released else stems)])
                extra = dict(zero_dc=False) if roformer else {}
                refs.save(f"{name}_input", x, sample_rate=44100)
                if args.released:
                    # Windows around every chunk's start and end, not the whole output.
                    step = chunk // overlap
                    starts = list(range(0, frames, step)) + [max(frames - chunk, 0)]
                    ranges = windows(frames, starts + [min(s + chunk, frames) for s in starts])
                    extra["ranges"] = ranges
                    y = kept(y, ranges)
                refs.save(f"{name}_output", y, stems=stems, num_overlap=overlap, **extra)
                peaks = ", ".join(f"{s} {np.abs(raw[s]).max():.3f} -> {np.abs(got[s]).max():.3f}" for s in stems)
                print(f"{family} {name}: {frames} frames, input peak {np.abs(x).max():.3f}, mix peak "
                      f"{np.abs(mix).max():.3f}, {len(calls)} network calls, stem peaks {peaks}; all finite")
            refs.close()
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
