#!/usr/bin/env python3
"""What streaming and pipelining gain on a 3-minute track: the CLI's file job
(decode, separate and encode on three threads, bounded queues, only the
segments in flight in memory) against the whole-buffer path of
`core/examples/separate.rs` (decode the whole track, separate it, then write),
same separator and settings, alternating runs. Writes the `pipeline` section of
benches/RESULTS.md.

    python3 benches/pipeline.py [--seconds 180] [--runs 3] [--full /path/htdemucs-random-full-seed0.json]

Needs release builds of the CLI and the example (`cargo build --release -p
splitsound-cli` and `cargo build --release -p splitsound-core --example
separate`), GNU time, numpy and soundfile. Both write 16-bit WAV stems.
"""
import argparse
import datetime
import glob
import os
import platform
import shutil
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "benches"))
from _results import update_section  # noqa: E402
from stream_memory import make_input, measure  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--full", default=None, help="manifest of the full-size HT-Demucs export")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-pipeline-bench"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    cli = os.path.join(target, "release", "splitsound")
    example = os.path.join(target, "release", "examples", "separate")
    wav = os.path.join(args.work, f"input_{args.seconds}s.wav")
    make_input(wav, args.seconds / 60)
    separators = [("hpss", "builtin:hpss")]
    if args.full:
        separators.append(("HT-Demucs full size", args.full))
    rows = []
    for label, sep in separators:
        res = {"pipelined": [], "whole": []}
        for run in range(args.runs):
            out = os.path.join(args.work, "out")
            r = measure([cli, "separate", wav, "-o", out, "-m", sep], args.work)
            shutil.rmtree(out, ignore_errors=True)
            res["pipelined"].append(r)
            print(label, run, "pipelined", r, flush=True)
            r = measure([example, wav, sep], args.work)
            for f in glob.glob(os.path.join(args.work, f"input_{args.seconds}s.*.wav")):
                os.remove(f)
            res["whole"].append(r)
            print(label, run, "whole buffer", r, flush=True)
        med = {k: {m: sorted(x[m] for x in v)[len(v) // 2] for m in ("wall", "rss_mb")} for k, v in res.items()}
        rows.append((label, med))

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [
        "## Streaming and pipelining against the whole-buffer path",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python3 benches/pipeline.py --seconds {args.seconds} "
        f"--runs {args.runs}{' --full …' if args.full else ''}` (medians of {args.runs} alternating runs) on {cpu}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}.",
        f"A {args.seconds} s 16-bit stereo 44.1 kHz WAV; both write 16-bit WAV stems (rescaled). \"pipelined\" is",
        "`splitsound separate` (decode, separate and encode overlapped on three threads, memory bounded);",
        "\"whole buffer\" is `core/examples/separate.rs` (decode all, separate all, write all). Same separator and",
        "model defaults. Wall time and peak RSS of the whole process (GNU time).",
        "",
        "| separator | pipelined: wall | whole buffer: wall | speed-up | pipelined: peak RSS | whole buffer: peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, m in rows:
        p, w = m["pipelined"], m["whole"]
        lines.append(f"| {label} | {p['wall']:.2f} s | {w['wall']:.2f} s | {w['wall'] / p['wall']:.2f}× | "
                     f"{p['rss_mb']:.0f} MB | {w['rss_mb']:.0f} MB |")
    update_section("pipeline", "\n".join(lines))


if __name__ == "__main__":
    main()
