#!/usr/bin/env python3
"""Full-size BS-RoFormer and Mel-Band RoFormer (random weights), side by side on
this machine: splitsound (CLI, ONNX Runtime) against msst's own PyTorch
inference (`msst._inference.separate_audio`, which runs `demix`) on the same
input. Writes the `msst-cpu` section of benches/RESULTS.md.

    ~/.cache/splitsound/ref-venv/bin/python benches/roformers.py [--seconds 180] [--models bs,mel]

Models (random weights, seed 0), the released configurations:
- bs: viperx's BS-RoFormer (model_bs_roformer_ep_317_sdr_12.9755.yaml): dim 512,
  depth 12, 62 bands (the class's defaults), 8 heads of 64, STFT 2048/441,
  chunk 352800, num_overlap 2, a single target (vocals);
- mel: Kimberley Jensen's Mel-Band RoFormer (vocals): dim 384, depth 6, 60 mel
  bands, 8 heads of 64, STFT 2048/441, chunk 352800, num_overlap 2.
Each is exported once into --work by python/tools/export_msst.py, and its
weights saved for the PyTorch runner.

Each separation is its own process, measured with GNU time (`/usr/bin/time`):
wall, CPU (user + system) and peak RSS; each process also reports the
separation alone (ours: decode, separate, write; msst's: `separate_audio`).
"max diff" is the largest difference between the two outputs' target stems,
relative to msst's peak.

Needs a release build of the CLI, torch, onnx, onnxruntime, soundfile and msst
(as python/tools/export_msst.py). On 2 CPU cores a full-size BS-RoFormer chunk
takes about a minute in either runner, so a 3-minute input (47 chunks) takes
about an hour per runner.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python", "tools"))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from _refio import test_signal  # noqa: E402
from _results import update_section  # noqa: E402
from neural import measure  # noqa: E402  (GNU time: wall, CPU, peak RSS, JSON lines)

ROFORMER = dict(stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1,
                linear_transformer_depth=0, dim_head=64, heads=8, attn_dropout=0.1, ff_dropout=0.1, flash_attn=True,
                stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048, stft_normalized=False,
                mask_estimator_depth=2)
COMMON = dict(audio=dict(chunk_size=352800, num_channels=2, sample_rate=44100),
              inference=dict(batch_size=1, num_overlap=2),
              training=dict(instruments=["vocals", "other"], target_instrument="vocals"))
MODELS = {
    "bs": dict(model_type="bs_roformer", model=dict(ROFORMER, dim=512, depth=12), **COMMON),
    "mel": dict(model_type="mel_band_roformer",
                model=dict(ROFORMER, dim=384, depth=6, num_bands=60, sample_rate=44100), **COMMON),
}
NAMES = {"bs": "BS-RoFormer (viperx shape)", "mel": "Mel-Band RoFormer (Kimberley shape)"}


def export(key, work):
    """The package and the weights of model `key` under `work`, made on first use."""
    import torch
    import yaml

    import export_msst

    d = os.path.join(work, key)
    manifest, weights, config = (os.path.join(d, f) for f in (f"{key}.json", "weights.pt", "config.yaml"))
    if not os.path.exists(manifest):
        os.makedirs(d, exist_ok=True)
        with open(config, "w") as f:
            yaml.dump(MODELS[key], f, sort_keys=False)
        cfg = export_msst.load_config(config)
        torch.manual_seed(0)
        model = export_msst.build(MODELS[key]["model_type"], cfg).eval()
        torch.save(model.state_dict(), weights)
        export_msst.export(MODELS[key]["model_type"], cfg, model, d, key)
    return manifest, weights, config


def run_torch(config, weights, wav, out_npy):
    """The peer, in this (child) process: msst's separate_audio on the input."""
    import torch

    import export_msst
    from msst._inference import separate_audio

    torch.set_num_threads(os.cpu_count())
    cfg = export_msst.load_config(config)
    model = export_msst.build(cfg.model_type, cfg)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    mix, _ = sf.read(wav, dtype="float32", always_2d=True)

    class Args:
        model_type = cfg.model_type
        disable_detailed_pbar = True
        bigshifts = 1
        use_tta = False
        extract_instrumental = True

    t0 = time.perf_counter()
    with torch.inference_mode():
        stems = separate_audio(model, Args(), cfg, torch.device("cpu"), mix.T.copy())
    secs = time.perf_counter() - t0
    np.save(out_npy, stems["vocals"])
    print(json.dumps({"separate_s": secs}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--models", default="bs,mel")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-msst-bench"))
    ap.add_argument("--bin", default=None, help="the splitsound binary")
    ap.add_argument("--torch-runner", nargs=4, metavar=("CONFIG", "WEIGHTS", "WAV", "NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_runner:
        return run_torch(*args.torch_runner)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = args.bin or os.path.join(target, "release", "splitsound")
    os.makedirs(args.work, exist_ok=True)
    secs = args.seconds
    wav = os.path.join(args.work, f"input_{secs}s.wav")
    if not os.path.exists(wav):
        # Over a noise floor 40 dB down, as in the parity tests: a random network's
        # RMSNorm blows a band holding only rounding noise up to unit size and its
        # attention spreads that to every band, so without energy in every band two
        # correct float32 pipelines differ by percents (measured: 5e-2 of the peak
        # without the floor, 8.5e-7 with it, on one chunk of the Mel-Band model).
        x = test_signal(2, secs * 44100, secs)
        x += 0.01 * np.random.default_rng(secs).standard_normal(x.shape).astype(np.float32)
        sf.write(wav, (0.8 / np.abs(x).max() * x).T, 44100, subtype="FLOAT")
    rows = []
    for key in args.models.split(","):
        manifest, weights, config = export(key, args.work)
        out = os.path.join(args.work, "out")
        r = measure([binary, "separate", "-m", manifest, wav, "-o", out, "--bits", "32f", "--json"])
        done = [x for x in r["lines"] if "elapsed_secs" in x]
        r["sep"] = done[0]["elapsed_secs"] if done else float("nan")
        ours = sf.read(os.path.join(out, f"input_{secs}s", "vocals.wav"), dtype="float32")[0].T
        print(key, "splitsound", {k: v for k, v in r.items() if k != "lines"}, flush=True)
        npy = os.path.join(args.work, f"{key}-torch.npy")
        p = measure([sys.executable, os.path.abspath(__file__), "--torch-runner", config, weights, wav, npy])
        p["sep"] = p["lines"][0]["separate_s"]
        ref = np.load(npy)
        p["err"] = float(np.abs(ref - ours).max() / np.abs(ref).max())
        print(key, "msst", {k: v for k, v in p.items() if k != "lines"}, flush=True)
        rows.append((key, "splitsound cpu", r))
        rows.append((key, "msst (PyTorch) cpu", p))

    import onnxruntime
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [
        "## msst families, full size (CPU)",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benches/roformers.py --seconds {secs} --models "
        f"{args.models}` (one run each) on {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}.",
        "Models: random weights (seed 0) in the released configurations: viperx's BS-RoFormer (dim 512, depth 12,",
        "62 bands, 8 × 64 heads; 160 M parameters) and Kimberley's Mel-Band RoFormer (dim 384, depth 6, 60 bands),",
        "STFT 2048/441, chunk 352800 (8 s), num_overlap 2, vocals as the target. Input: synthetic stereo music at",
        f"44.1 kHz, {secs} s, over a noise floor 40 dB down (see the script). Each run is a whole process (GNU time);",
        "\"separation\" is the time the process reports",
        "for the separation itself (ours: decode, separate, write; msst's: `separate_audio`). \"max diff\": the",
        "vocals stems' largest difference, relative to msst's peak.",
        "",
        "| model | runner | wall (s) | separation (s) | CPU (s) | peak RSS (MB) | × real time | max diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name, r in rows:
        err = f"{r['err']:.1e}" if "err" in r else ""
        lines.append(f"| {NAMES[key]} | {name} | {r['wall']:.1f} | {r['sep']:.1f} | {r['cpu']:.1f} | "
                     f"{r['rss_mb']:.0f} | {secs / r['sep']:.2f} | {err} |")
    lines.append("")
    for key in args.models.split(","):
        mine = next(r for k, n, r in rows if k == key and n.startswith("splitsound"))
        peer = next(r for k, n, r in rows if k == key and n.startswith("msst"))
        lines.append(f"- {NAMES[key]}: splitsound is {peer['wall'] / mine['wall']:.2f}× as fast as msst (whole "
                     f"process; {peer['sep'] / mine['sep']:.2f}× on the separation) and uses "
                     f"{100 * mine['rss_mb'] / peer['rss_mb']:.0f} % of its peak RSS.")
    update_section("msst-cpu", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
