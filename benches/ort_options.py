#!/usr/bin/env python3
"""ONNX Runtime options of the CLI on full-size HT-Demucs (random weights): the
default, `--io-binding` and `--no-arena`, alternating runs, each a whole process
under GNU time. Writes the `ort-options` section of benches/RESULTS.md.

    /opt/ssref/bin/python benches/ort_options.py [--secs 30] [--runs 3] [--device cpu]

Needs what benches/neural.py needs for the model (it exports it once into --work)
and a release build of the CLI.
"""
import argparse
import datetime
import os
import platform
import sys
import tempfile

import soundfile as sf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python", "tools"))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from _refio import test_signal  # noqa: E402
from _results import update_section  # noqa: E402
from neural import cli_binary, full_model, measure  # noqa: E402

VARIANTS = [("default", []), ("--io-binding", ["--io-binding"]), ("--no-arena", ["--no-arena"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-neural-bench"))
    ap.add_argument("--bin", default=None)
    args = ap.parse_args()
    manifest, binary = full_model(args.work), cli_binary(args.bin)
    wav = os.path.join(args.work, f"input_{args.secs}s.wav")
    if not os.path.exists(wav):
        sf.write(wav, test_signal(2, args.secs * 44100, args.secs).T, 44100, subtype="FLOAT")
    results = {name: [] for name, _ in VARIANTS}
    for run in range(args.runs):
        for name, flags in VARIANTS:
            cmd = [binary, "separate", "-m", manifest, wav, "-o", os.path.join(args.work, "out"), "--shifts", "0",
                   "--overlap", "0.25", "--bits", "32f", "--json", "--device", args.device] + flags
            r = measure(cmd)
            r["sep"] = next(x["elapsed_secs"] for x in r["lines"] if "elapsed_secs" in x)
            results[name].append(r)
            print(run, name, {k: v for k, v in r.items() if k != "lines"}, flush=True)

    def median(name, key):
        vals = sorted(r[key] for r in results[name])
        return vals[len(vals) // 2]

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [
        "## ONNX Runtime options (full-size HT-Demucs)",
        "",
        f"Measured {datetime.date.today()} by `python benches/ort_options.py --secs {args.secs} --runs {args.runs} "
        f"--device {args.device}` (medians of {args.runs} alternating runs, whole processes under GNU time) on "
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}. The model and input of the "
        "`neural-cpu` section; shifts=0, overlap 0.25. The outputs are the same in every case "
        "(core/tests/ort_options.rs checks it sample for sample).",
        "",
        "| options | wall (s) | separation (s) | CPU (s) | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, _ in VARIANTS:
        lines.append(f"| {name} | {median(name, 'wall'):.1f} | {median(name, 'sep'):.1f} | {median(name, 'cpu'):.1f} "
                     f"| {median(name, 'rss_mb'):.0f} |")
    base = median("default", "sep")
    lines.append("")
    for name, _ in VARIANTS[1:]:
        lines.append(f"- {name}: separation {100 * (median(name, 'sep') / base - 1):+.1f} % against the default, peak RSS "
                     f"{median(name, 'rss_mb') - median('default', 'rss_mb'):+.0f} MB.")
    lines += [
        "",
        "On the CPU the outputs already land in host memory, so I/O binding only saves re-allocating them; its",
        "purpose is CUDA, where the outputs are copied straight into page-locked memory (to be measured on a",
        "GPU). Without the arena every tensor is allocated and freed on its own: slower, and a higher peak here.",
    ]
    update_section("ort-options", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
