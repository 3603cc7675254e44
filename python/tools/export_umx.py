#!/usr/bin/env python3
"""Export Open-Unmix target models to an ONNX model package (family `umx`).

One graph per target: the mixture's magnitude spectrogram `magnitude`
[B, C, 2049, frames] (any number of frames) to the target's magnitude `target`
of the same shape, i.e. `openunmix.model.OpenUnmix.forward`. splitsound computes
the STFT, the multichannel Wiener filter (`openunmix.filtering.wiener`) and the
ISTFT as `openunmix.Separator` does.

Random seeded weights (tests, benchmarks):
    python3 python/tools/export_umx.py --config ci --seed 0 --out core/tests/data/neural/umx
    python3 python/tools/export_umx.py --config full --seed 0 --out /tmp/umxhq-random
Real weights: a folder as openunmix trains them (<target>.json + <target>*.pth):
    python3 python/tools/export_umx.py --model-dir umxhq/ --targets vocals,drums,bass,other --out umxhq
Needs torch and `pip install --no-deps openunmix` (torchaudio is stubbed).
"""
import argparse
import inspect
import json
import os
import sys
import textwrap

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _compat import stub_torchaudio  # noqa: E402

stub_torchaudio()
import openunmix.model  # noqa: E402
from openunmix.model import OpenUnmix  # noqa: E402

N_FFT, HOP = 4096, 1024
# umxhq's bandwidth: 16 kHz → the lowest 1487 of 2049 bins go into the network.
MAX_BIN = 1487
CONFIGS = {
    "ci": dict(hidden_size=16, nb_layers=3),
    "full": dict(hidden_size=512, nb_layers=3),
}


def patch_forward():
    """`OpenUnmix.forward` reads its frame count from `x.data.shape`, which the
    tracer records as a constant; the same code reading `x.shape` exports with a
    free frame count."""
    src = textwrap.dedent(inspect.getsource(OpenUnmix.forward))
    assert "x.data.shape" in src, "openunmix changed; revisit the export patch"
    ns = {}
    exec(compile(src.replace("x.data.shape", "x.shape"), "OpenUnmix.forward (patched)", "exec"),
         vars(openunmix.model), ns)
    OpenUnmix.forward = ns["forward"]


def random_model(cfg, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bins = N_FFT // 2 + 1
    m = OpenUnmix(nb_bins=bins, nb_channels=2, max_bin=MAX_BIN,
                  input_mean=rng.uniform(-0.5, 0.5, bins).astype(np.float32),
                  input_scale=rng.uniform(0.5, 2.0, bins).astype(np.float32), **cfg)
    with torch.no_grad():
        m.output_scale.uniform_(0.5, 1.5)
        m.output_mean.uniform_(0.5, 1.5)
        for bn in (m.bn1, m.bn2, m.bn3):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def load_models(args):
    targets = args.targets.split(",")
    if args.model_dir:
        from openunmix.utils import load_target_models

        models = load_target_models(targets, model_str_or_path=args.model_dir, pretrained=True)
        return {t: models[t].eval() for t in targets}
    return {t: random_model(CONFIGS[args.config], args.seed + i) for i, t in enumerate(targets)}


def export(model, path, opset):
    bins = model.nb_output_bins
    x = torch.rand(1, 2, bins, 40)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, input_names=["magnitude"], output_names=["target"],
                          dynamic_axes={"magnitude": {0: "batch", 3: "frames"}, "target": {0: "batch", 3: "frames"}},
                          opset_version=opset, dynamo=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--name")
    p.add_argument("--config", choices=sorted(CONFIGS), default="ci")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--model-dir", help="folder with <target>.json and <target>*.pth")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args()
    patch_forward()
    models = load_models(args)
    os.makedirs(args.out, exist_ok=True)
    name = args.name or (os.path.basename(os.path.normpath(args.model_dir)) if args.model_dir
                         else f"umx-random-{args.config}-seed{args.seed}")
    files = []
    for target, model in models.items():
        fname = f"{name}.{target}.onnx"
        export(model, os.path.join(args.out, fname), args.opset)
        files.append({"path": fname})
    bins = N_FFT // 2 + 1
    shape = [-1, 2, bins, -1]
    manifest = {
        "format_version": 1,
        "name": name,
        "family": "umx",
        "sample_rate": 44100,
        "channels": 2,
        "stems": list(models),
        # The network sees the whole track at once; the Wiener filter works on windows of frames.
        "segment_samples": 0,
        "stft": {"n_fft": N_FFT, "hop_length": HOP, "window": "hann", "center": True, "pad_mode": "reflect",
                 "normalized": False},
        "inputs": [{"name": "magnitude", "shape": shape}],
        "outputs": [{"name": "target", "shape": shape}],
        "files": files,
    }
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    params = sum(p.numel() for p in next(iter(models.values())).parameters())
    print(f"wrote {args.out}/{name}.json ({len(files)} targets, {params / 1e6:.2f} M parameters each)")


if __name__ == "__main__":
    main()
