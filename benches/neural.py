#!/usr/bin/env python3
"""HT-Demucs, full size (random weights), side by side on this machine:
splitsound (CLI, ONNX Runtime), PyTorch demucs (`demucs.apply.apply_model`), and a
Python onnxruntime loop over the same graph. Writes the `neural` section of
benches/RESULTS.md.

    /opt/ssref/bin/python benches/neural.py [--durations 30,180] [--device cpu|cuda:0]

Needs: a release build of the CLI (`cargo build --release -p splitsound-cli`, with
`--features cuda` for the GPU), torch, onnx, onnxruntime, soundfile and
`pip install --no-deps demucs`. The full-size model is exported once into
--work (about 170 MB). Each separation runs in its own process, measured with
GNU time (`/usr/bin/time`): wall time, CPU time (user + system) and peak RSS;
each process also reports the separation alone (excluding start-up and model
loading).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
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


def measure(cmd, env=None):
    # Through GNU time: a child forked (vforked) from this Python process, which
    # holds the stems it compares, would count our pages in its peak RSS.
    stats = os.path.join(tempfile.gettempdir(), f"splitsound-neural-time-{os.getpid()}.txt")
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%M %U %S"] + cmd, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    rss_kb, user, system = open(stats).read().split()[-3:]
    lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.startswith("{")]
    return {"wall": wall, "cpu": float(user) + float(system), "rss_mb": int(rss_kb) / 1024, "lines": lines}


def full_model(work):
    """The full-size random-weight HT-Demucs package under `work`, exported on first use."""
    os.makedirs(work, exist_ok=True)
    model_dir = os.path.join(work, "htdemucs-full")
    manifest = os.path.join(model_dir, "htdemucs-random-full-seed0.json")
    if not os.path.exists(manifest):
        subprocess.run([sys.executable, os.path.join(ROOT, "python/tools/export_demucs.py"), "--config", "full",
                        "--seed", "0", "--out", model_dir], check=True)
    return manifest


def cli_binary(given=None):
    """The release build of the CLI (`--bin`, else under CARGO_TARGET_DIR or target/)."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return given or os.path.join(target, "release", "splitsound")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations", default="30,180")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-neural-bench"))
    ap.add_argument("--bin", default=None, help="the splitsound binary")
    ap.add_argument("--skip", default="", help="comma-separated peers to skip: torch,ort")
    ap.add_argument("--runs", type=int, default=3, help="runs of each, alternating; medians are reported")
    args = ap.parse_args()
    manifest, binary = full_model(args.work), cli_binary(args.bin)
    skip = set(filter(None, args.skip.split(",")))
    gpu = args.device != "cpu"
    rows = []

    def median_of(results):
        out = {}
        for k in ("wall", "cpu", "rss_mb", "sep", "err"):
            vals = sorted(r[k] for r in results if k in r)
            if vals:
                out[k] = vals[len(vals) // 2]
        return out

    for secs in [int(d) for d in args.durations.split(",")]:
        wav = os.path.join(args.work, f"input_{secs}s.wav")
        if not os.path.exists(wav):
            sf.write(wav, test_signal(2, secs * 44100, secs).T, 44100, subtype="FLOAT")
        results = {"ours": [], "torch": [], "ort": []}
        for run in range(args.runs):
            out = os.path.join(args.work, "out")
            cmd = [binary, "separate", "-m", manifest, wav, "-o", out, "--shifts", "0", "--overlap", "0.25",
                   "--bits", "32f", "--json", "--device", args.device]
            if gpu:
                cmd.append("--strict-device")
            r = measure(cmd)
            done = [x for x in r["lines"] if "elapsed_secs" in x]
            r["sep"] = done[0]["elapsed_secs"] if done else float("nan")
            ours = np.stack([sf.read(os.path.join(out, f"input_{secs}s", f"{s}.wav"), dtype="float32")[0].T
                             for s in ["drums", "bass", "other", "vocals"]])
            results["ours"].append(r)
            print(secs, run, "splitsound", {k: v for k, v in r.items() if k != "lines"}, flush=True)
            if "torch" not in skip:
                npy = os.path.join(args.work, "torch.npy")
                env = dict(os.environ)
                if not gpu:
                    env["CUDA_VISIBLE_DEVICES"] = ""
                r = measure([sys.executable, os.path.join(ROOT, "benches/neural_peers.py"), "torch", "0", "full", wav,
                             npy] + (["cuda"] if gpu else []), env)
                r["sep"] = r["lines"][0]["separate_s"]
                ref = np.load(npy)
                r["err"] = float(np.abs(ref - ours).max() / np.abs(ref).max())
                results["torch"].append(r)
                print(secs, run, "torch", {k: v for k, v in r.items() if k != "lines"}, flush=True)
            if "ort" not in skip and not gpu:
                npy = os.path.join(args.work, "ort.npy")
                r = measure([sys.executable, os.path.join(ROOT, "benches/neural_peers.py"), "ort", manifest, wav, npy])
                r["sep"] = r["lines"][0]["separate_s"]
                results["ort"].append(r)
                print(secs, run, "ort", {k: v for k, v in r.items() if k != "lines"}, flush=True)
        names = {"ours": "splitsound " + args.device, "torch": "PyTorch demucs " + ("cuda" if gpu else "cpu"),
                 "ort": "Python onnxruntime loop"}
        for key in ("ours", "torch", "ort"):
            if results[key]:
                rows.append((secs, names[key], median_of(results[key])))

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    import onnxruntime
    import torch

    dev = args.device
    if gpu:
        dev_name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                  text=True).stdout.strip()
    lines = [
        f"## HT-Demucs, full size ({'GPU' if gpu else 'CPU'})",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benches/neural.py --durations {args.durations} "
        f"--device {dev} --runs {args.runs}` (medians of {args.runs} alternating runs) on {dev_name + ', ' if gpu else ''}{cpu}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; onnxruntime {onnxruntime.__version__}, torch {torch.__version__}.",
        "Model: HTDemucs with the released htdemucs shape (48 channels, 5 transformer layers, 512 bottom channels,",
        "7.8 s segments; 41.5 M parameters), random weights (seed 0), exported by `python/tools/export_demucs.py",
        "--config full`. Input: synthetic stereo music at 44.1 kHz. shifts=0, overlap 0.25. Each run is a whole",
        "process (GNU time): wall and CPU include start-up and loading the model; \"separation\" is the time the",
        "process reports for the separation itself (ours: decode, separate and write). \"max diff\" is the largest",
        "difference between our stems and PyTorch's, relative to their peak.",
        "",
        "| input | runner | wall (s) | separation (s) | CPU (s) | peak RSS (MB) | × real time | max diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for secs, name, r in rows:
        err = f"{r['err']:.1e}" if "err" in r else ""
        lines.append(f"| {secs} s | {name} | {r['wall']:.1f} | {r['sep']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | "
                     f"{secs / r['sep']:.2f} | {err} |")
    lines.append("")
    for secs in sorted({s for s, _, _ in rows}):
        mine = next(r for s, n, r in rows if s == secs and n.startswith("splitsound"))
        peer = next((r for s, n, r in rows if s == secs and n.startswith("PyTorch")), None)
        if peer:
            lines.append(f"- {secs} s: splitsound is {peer['wall'] / mine['wall']:.2f}× faster than PyTorch demucs "
                         f"(whole process; {peer['sep'] / mine['sep']:.2f}× on the separation) and uses "
                         f"{100 * mine['rss_mb'] / peer['rss_mb']:.0f} % of its peak RSS.")
    section = "neural-gpu" if gpu else "neural-cpu"
    update_section(section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
