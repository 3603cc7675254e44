#!/usr/bin/env python3
"""Export HT-Demucs to an ONNX model package splitsound runs (family `demucs-hybrid`).

The graph is the network without its STFT and ISTFT (complex `torch.stft` does not
export): inputs are the waveform segments `mix` [B, C, L] and its complex-as-channels
spectrogram `spec` [B, 2C, 2048, T]; outputs are the time branch `time` [B, S, C, L]
and the spectral branch `freq` [B, S, 2C, 2048, T]. splitsound computes the STFT, the
ISTFT and the sum exactly as `HTDemucs.forward` does.

With --stft-in-graph the graph is waveform in, waveform out (family `waveform`,
as third-party exports such as demucs-onnx's are): `mix` [B, C, L] to `stems`
[B, S, C, L], the STFT and its inverse inside (python/tools/_onnx_stft.py);
splitsound then only chunks, as `apply_model` does.

Random seeded weights (tests and benchmarks; no download):
    python3 python/tools/export_demucs.py --config ci --seed 0 --out core/tests/data/neural/demucs
    python3 python/tools/export_demucs.py --config full --seed 0 --out /tmp/htdemucs-random
    python3 python/tools/export_demucs.py --config ci --seed 0 --stft-in-graph --name ci \
        --out core/tests/data/neural/waveform
Real weights, a single model or a bag with per-stem weights (a demucs checkpoint
`.th` as saved by demucs, e.g. from the `remote/` files of a demucs release):
    python3 python/tools/export_demucs.py --checkpoint 955717e8-8726e21a.th --out htdemucs
    python3 python/tools/export_demucs.py --checkpoint a.th --checkpoint b.th \
        --bag-weights '[[1,0,0,0],[0,1,0,0]]' --name htdemucs_ft --out htdemucs_ft

Needs torch, einops, julius and `pip install --no-deps demucs` (torchaudio is not needed).
"""
import argparse
import json
import os
import random
import sys
from fractions import Fraction

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _manifest import embed  # noqa: E402
from _onnx_attention import chunked_attention  # noqa: E402
from _onnx_precision import accumulate_in_double  # noqa: E402

SOURCES = ["drums", "bass", "other", "vocals"]

CONFIGS = {
    # Small and fast, for CI: few channels, one transformer layer, a 0.5 s segment.
    "ci": dict(channels=8, depth=4, t_layers=1, t_heads=2, bottom_channels=0, dconv_comp=4, segment=Fraction(1, 2)),
    # Small, but at the released segment (7.8 s), with nfft 4096, dconv_comp 8 and
    # 8 heads: the reductions over a whole segment that a 0.5 s one hides.
    "released": dict(channels=8, depth=4, t_layers=1, t_heads=8, bottom_channels=0, dconv_comp=8,
                     segment=Fraction(39, 5)),
    # The released htdemucs shape: 48 channels, 5 transformer layers, 512 bottom
    # channels, 7.8 s segments (about 42 M parameters).
    "full": dict(channels=48, depth=4, t_layers=5, t_heads=8, bottom_channels=512, segment=Fraction(39, 5)),
}


class Core(torch.nn.Module):
    """HTDemucs.forward with its STFT, masking and ISTFT cut out.

    The original forward runs unchanged; `_spec`, `_magnitude`, `_mask` and
    `_ispec` are swapped for pass-throughs on this instance, so the graph holds
    exactly the network's own normalisation, branches and de-normalisation.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.captured = None
        model._spec = lambda mix: self._spec_in
        model._magnitude = lambda z: z
        model._mask = self._capture
        model._ispec = lambda z, length=None, scale=0: torch.zeros((), dtype=z.dtype)

    def _capture(self, z, m):
        self.captured = m
        return m

    def forward(self, mix, spec):
        self._spec_in = spec
        time = self.model(mix)
        return time, self.captured


def build(args):
    from demucs.htdemucs import HTDemucs

    if args.checkpoint:
        from demucs.states import load_model

        models = []
        for path in args.checkpoint:
            package = torch.load(path, map_location="cpu", weights_only=False)
            model = load_model(package)
            if not isinstance(model, HTDemucs):
                raise SystemExit(f"{path}: {type(model).__name__} is not an HTDemucs model")
            models.append(model)
        return models
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    cfg = dict(CONFIGS[args.config])
    return [HTDemucs(sources=SOURCES, audio_channels=2, samplerate=44100, **cfg)]


def export(model, path, opset, attention_block):
    model.eval()
    length = int(model.segment * model.samplerate)
    frames = -(-length // model.hop_length)
    chans = model.audio_channels
    mix = torch.randn(1, chans, length)
    spec = torch.randn(1, 2 * chans, model.nfft // 2, frames)
    core = Core(model)
    # nn.MultiheadAttention's fused inference path has no ONNX export; the plain
    # path computes the same attention from exportable operators.
    torch.backends.mha.set_fastpath_enabled(False)
    original = torch.nn.functional.scaled_dot_product_attention
    if attention_block:
        torch.nn.functional.scaled_dot_product_attention = chunked_attention(attention_block)
    try:
        _export(core, mix, spec, path, opset)
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    return length, frames, chans


def export_waveform(model, path, opset, attention_block):
    """The whole model, STFT included, as one graph: `mix` to `stems`. Checked
    against the unpatched model on a random batch of two."""
    import copy

    import onnxruntime as ort
    from _onnx_stft import patch

    model.eval()
    length = int(model.segment * model.samplerate)
    chans = model.audio_channels
    patched = patch(copy.deepcopy(model)).eval()
    torch.backends.mha.set_fastpath_enabled(False)
    original = torch.nn.functional.scaled_dot_product_attention
    if attention_block:
        torch.nn.functional.scaled_dot_product_attention = chunked_attention(attention_block)
    try:
        with torch.no_grad():
            torch.onnx.export(
                patched,
                (torch.randn(1, chans, length),),
                path,
                input_names=["mix"],
                output_names=["stems"],
                opset_version=opset,
                dynamic_axes={"mix": {0: "batch"}, "stems": {0: "batch"}},
                dynamo=False,
                # Folding would store the DFT basis the graph computes (64 MB at n_fft 4096).
                do_constant_folding=False,
            )
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    accumulate_in_double(path)
    # The tracer leaves the stems dimension symbolic; declare it, so that a
    # loader checks it before running anything.
    import onnx

    graph = onnx.load(path)
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    for d, v in zip(dims[1:], (len(model.sources), chans, length)):
        d.Clear()
        d.dim_value = v
    onnx.save(graph, path)
    x = torch.randn(2, chans, length) * 0.3
    with torch.no_grad():
        want = model(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"mix": x.numpy()})
    err = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"{path}: ONNX Runtime vs HTDemucs.forward, max error / peak {err:.2e}")
    if err > 1e-5:
        raise SystemExit(f"{path}: the graph is {err:.2e} of the peak away from the model")
    return length, chans


def _export(core, mix, spec, path, opset):
    with torch.no_grad():
        torch.onnx.export(
            core,
            (mix, spec),
            path,
            input_names=["mix", "spec"],
            output_names=["time", "freq"],
            opset_version=opset,
            # Segments per run is the caller's choice (`--batch`).
            dynamic_axes={n: {0: "batch"} for n in ("mix", "spec", "time", "freq")},
            dynamo=False,
        )
    accumulate_in_double(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory of the package")
    p.add_argument("--name", default=None)
    p.add_argument("--config", choices=sorted(CONFIGS), default="ci")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", action="append", help="demucs .th package (repeat for a bag)")
    p.add_argument("--bag-weights", help="JSON list of per-stem weights, one list per checkpoint")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--attention-block", type=int, default=256,
                   help="query rows per attention block in the graph (0: one block); bounds its memory")
    p.add_argument("--stft-in-graph", action="store_true",
                   help="one waveform-in, waveform-out graph (family `waveform`)")
    args = p.parse_args()
    models = build(args)
    name = args.name or (f"htdemucs-random-{args.config}-seed{args.seed}" if not args.checkpoint else "htdemucs")
    os.makedirs(args.out, exist_ok=True)
    weights = json.loads(args.bag_weights) if args.bag_weights else None
    if weights is not None and (len(weights) != len(models) or any(len(w) != len(models[0].sources) for w in weights)):
        raise SystemExit("--bag-weights needs one list per checkpoint with one weight per source")
    files = []
    shapes = None
    for i, model in enumerate(models):
        fname = f"{name}.onnx" if len(models) == 1 else f"{name}.{i}.onnx"
        fpath = os.path.join(args.out, fname)
        if args.stft_in_graph:
            got = export_waveform(model, fpath, args.opset, args.attention_block)
        else:
            got = export(model, fpath, args.opset, args.attention_block)
        if shapes is not None and got != shapes:
            raise SystemExit("all models of a bag need the same segment and channels")
        shapes = got
        entry = {"path": fname}
        if weights is not None:
            entry["stem_weights"] = [float(w) for w in weights[i]]
        files.append(entry)
    first = models[0]
    s = len(first.sources)
    if args.stft_in_graph:
        length, chans = shapes
        manifest = {
            "format_version": 1,
            "name": name,
            "family": "waveform",
            "sample_rate": first.samplerate,
            "channels": chans,
            "stems": list(first.sources),
            "segment_samples": length,
            "normalisation": "mono_mean_std",
            # demucs.apply.apply_model's chunking.
            "waveform": {"window": "triangular", "transition_power": 1.0, "partial": "context"},
            "defaults": {"overlap": 0.25, "shifts": 1},
            "inputs": [{"name": "mix", "shape": [-1, chans, length]}],
            "outputs": [{"name": "stems", "shape": [-1, s, chans, length]}],
            "files": files,
        }
        write_package(args, name, manifest, files, first)
        return
    length, frames, chans = shapes
    bins = first.nfft // 2
    manifest = {
        "format_version": 1,
        "name": name,
        "family": "demucs-hybrid",
        "sample_rate": first.samplerate,
        "channels": chans,
        "stems": list(first.sources),
        "segment_samples": length,
        "stft": {
            "n_fft": first.nfft,
            "hop_length": first.hop_length,
            "window": "hann",
            "center": True,
            "pad_mode": "reflect",
            "normalized": True,
        },
        "normalisation": "mono_mean_std",
        "defaults": {"overlap": 0.25, "shifts": 1},
        "inputs": [
            {"name": "mix", "shape": [-1, chans, length]},
            {"name": "spec", "shape": [-1, 2 * chans, bins, frames]},
        ],
        "outputs": [
            {"name": "time", "shape": [-1, s, chans, length]},
            {"name": "freq", "shape": [-1, s, 2 * chans, bins, frames]},
        ],
        "files": files,
    }
    write_package(args, name, manifest, files, first)


def write_package(args, name, manifest, files, first):
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if len(files) == 1:
        # The file also works alone, without the sidecar.
        embed(os.path.join(args.out, files[0]["path"]), manifest)
    params = sum(p.numel() for p in first.parameters())
    print(f"wrote {args.out}/{name}.json ({len(files)} graph(s), {params / 1e6:.2f} M parameters each)")


if __name__ == "__main__":
    main()
