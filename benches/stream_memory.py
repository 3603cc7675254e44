#!/usr/bin/env python3
"""Peak memory against input length: `splitsound separate` on a 1-minute and a
60-minute input, for the built-in separators and the CI-size HT-Demucs, MDX-Net
and (segmented) Open-Unmix models, the msst families at their released STFTs,
band layouts and chunks (the narrow `*-released` test packages), and the
full-size HT-Demucs when --full names its manifest. Writes the `streaming`
section of benches/RESULTS.md (--section for another).

    python3 benches/stream_memory.py [--minutes 1,60] [--only hpss,center,repet,demucs-ci,mdx-ci,umx-ci-segmented]
                                     [--full /path/htdemucs-random-full-seed0.json]
    python3 benches/stream_memory.py --section streaming-msst \
        --only bs-roformer-released,mel-band-roformer-released,mdx23c-released,scnet-released

Needs a release build of the CLI (`cargo build --release -p splitsound-cli`),
GNU time (`/usr/bin/time`), numpy and soundfile. Inputs are 16-bit stereo
44.1 kHz WAV files of music-like test signal (one generated minute, repeated),
written once into --work. Each separation is its own process, measured with GNU
time (peak RSS) and a wall clock; the default output (16-bit WAV, rescaled, so
stems are spooled to disk first) is written and then deleted.
"""
import argparse
import datetime
import os
import platform
import shutil
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

RATE = 44100


def make_input(path, minutes):
    """`minutes` (may be fractional) of the test signal, one generated minute repeated."""
    if os.path.exists(path):
        return
    minute = test_signal(2, 60 * RATE, 1).T
    left = int(round(minutes * 60 * RATE))
    with sf.SoundFile(path + ".tmp", "w", RATE, 2, subtype="PCM_16", format="WAV") as f:
        while left > 0:
            f.write(minute[:left])
            left -= len(minute)
    os.replace(path + ".tmp", path)


def measure(cmd, work):
    # Through GNU time: a child forked from this (large) Python process would
    # count our pages in its peak RSS until it execs.
    stats = os.path.join(work, "time.txt")
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return {"wall": time.perf_counter() - t0, "rss_mb": int(open(stats).read().split()[-1]) / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="1,60")
    ap.add_argument("--only", default="hpss,center,repet,demucs-ci,mdx-ci,umx-ci-segmented")
    ap.add_argument("--full", default=None, help="manifest of the full-size HT-Demucs export")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-stream-bench"))
    ap.add_argument("--bin", default=None, help="the splitsound binary")
    ap.add_argument("--section", default="streaming", help="the RESULTS.md section to write")
    ap.add_argument("--note", default="", help="a sentence added to the section (e.g. what else ran)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = args.bin or os.path.join(target, "release", "splitsound")
    separators = {
        "hpss": ["-m", "builtin:hpss"],
        "center": ["-m", "builtin:center"],
        "repet": ["-m", "builtin:repet"],
        "demucs-ci": ["-m", os.path.join(ROOT, "core/tests/data/neural/demucs/ci.json")],
        "mdx-ci": ["-m", os.path.join(ROOT, "core/tests/data/neural/mdx/mdx-random.json")],
        "umx-ci-segmented": ["-m", os.path.join(ROOT, "core/tests/data/neural/umx/umx-ci.json"), "--segment-secs", "10"],
    }
    for family in ("bs-roformer", "mel-band-roformer", "mdx23c", "scnet"):
        separators[f"{family}-released"] = ["-m", os.path.join(ROOT, f"core/tests/data/neural/msst/{family}-released/ci.json")]
    if args.full:
        separators["demucs-full"] = ["-m", args.full, "--shifts", "0", "--overlap", "0.25"]
    chosen = [s for s in args.only.split(",") if s] + (["demucs-full"] if args.full else [])
    minutes = [int(m) for m in args.minutes.split(",")]
    rows = []
    for name in chosen:
        row = {"name": name}
        for m in minutes:
            wav = os.path.join(args.work, f"input_{m}min.wav")
            make_input(wav, m)
            out = os.path.join(args.work, "out")
            r = measure([binary, "separate", wav, "-o", out] + separators[name], args.work)
            shutil.rmtree(out, ignore_errors=True)
            row[m] = r
            print(name, f"{m} min", r, flush=True)
        rows.append(row)

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lo, hi = minutes[0], minutes[-1]
    lines = [
        "## Peak memory against input length (streaming file path)"
        + ("" if args.section == "streaming" else f": {', '.join(chosen)}"),
        "",
        f"Measured {datetime.date.today().isoformat()} by `python3 benches/stream_memory.py --minutes {args.minutes}"
        f" --only {args.only or repr('')}{' --full …' if args.full else ''}"
        f"{'' if args.section == 'streaming' else ' --section ' + args.section}` on {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}.",
        "`splitsound separate` on 16-bit stereo 44.1 kHz WAV input, default output (16-bit WAV, rescaled: stems are",
        "spooled to disk, then encoded). Peak RSS of the whole process (GNU time), including the ONNX Runtime",
        "library and the model for the neural ones. demucs-ci, mdx-ci and umx-ci are the CI-size models of the tests",
        "(HT-Demucs with shifts 1, overlap 0.25; MDX-Net at overlap 0.25; Open-Unmix with `--segment-secs 10`);",
        "demucs-full the released htdemucs shape with random weights (shifts 0, overlap 0.25); the `*-released`",
        "ones the msst families at their released STFTs, band layouts and 8-11 s chunks with narrow networks",
        "(the tests' `*-released` packages: the buffers of the released shapes, not their weights).",
    ] + ([args.note] if args.note else []) + [
        "",
        "| separator | " + " | ".join(f"{m} min: peak RSS | {m} min: wall" for m in minutes) + f" | RSS {hi} min / {lo} min |",
        "|---|" + "---:|---:|" * len(minutes) + "---:|",
    ]
    for row in rows:
        cells = " | ".join(f"{row[m]['rss_mb']:.0f} MB | {row[m]['wall']:.1f} s" for m in minutes)
        lines.append(f"| {row['name']} | {cells} | {row[hi]['rss_mb'] / row[lo]['rss_mb']:.2f}× |")
    update_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
