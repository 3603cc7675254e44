#!/usr/bin/env python3
"""BSS Eval v4 on a 3-minute, 4-stem stereo track: `splitsound eval` against
museval.evaluate on the same files, each in its own process (wall and CPU time,
peak RSS), and the largest difference between their median SDR/ISR/SIR/SAR.
Writes the `eval` section of benches/RESULTS.md.

    /opt/ssref/bin/python benches/eval.py [--seconds 180] [--bin PATH]
Needs numpy, soundfile, scipy, pandas, simplejson, jsonschema and
`pip install --no-deps museval` (musdb is stubbed).
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
sys.path.insert(0, os.path.join(ROOT, "benches"))
from _results import update_section  # noqa: E402

STEMS = ["bass", "drums", "other", "vocals"]

MUSEVAL = r"""
import sys, types, json, time, numpy as np, soundfile as sf
sys.modules.setdefault("musdb", types.ModuleType("musdb"))
import museval
ref_dir, est_dir = sys.argv[1], sys.argv[2]
stems = ["bass", "drums", "other", "vocals"]
t0 = time.perf_counter()
refs = np.stack([sf.read(f"{ref_dir}/{s}.wav", dtype="float32")[0] for s in stems])
ests = np.stack([sf.read(f"{est_dir}/{s}.wav", dtype="float32")[0] for s in stems])
sdr, isr, sir, sar = museval.evaluate(refs, ests, win=44100, hop=44100)
out = {s: {k: float(np.nanmedian(v[i])) for k, v in (("sdr", sdr), ("isr", isr), ("sir", sir), ("sar", sar))}
       for i, s in enumerate(stems)}
print(json.dumps({"seconds": time.perf_counter() - t0, "scores": out}))
"""


def measure(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    _, status, ru = os.wait4(p.pid, 0) if p.returncode is None else (0, p.returncode, None)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return wall, out.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "splitsound-eval-bench"))
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = args.bin or os.path.join(target, "release", "splitsound")
    ref_dir, est_dir = os.path.join(args.work, "ref"), os.path.join(args.work, "est")
    os.makedirs(ref_dir, exist_ok=True)
    os.makedirs(est_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    n = args.seconds * 44100
    t = np.arange(n) / 44100
    refs = []
    for j, s in enumerate(STEMS):
        tone = np.sin(2 * np.pi * (55 * (j + 1)) * t + j) * (0.5 + 0.5 * np.sin(2 * np.pi * t / (3 + j)))
        x = np.stack([0.3 * tone + 0.1 * rng.standard_normal(n), 0.25 * tone + 0.1 * rng.standard_normal(n)], axis=1)
        x[int(40 * 44100 * (j + 1) / 4):int(40 * 44100 * (j + 1) / 4) + 3 * 44100] = 0  # a silent stretch
        refs.append(x)
    for j, s in enumerate(STEMS):
        est = 0.9 * refs[j] + sum(0.05 * refs[k] for k in range(4) if k != j) + 0.02 * rng.standard_normal(refs[j].shape)
        sf.write(os.path.join(ref_dir, f"{s}.wav"), refs[j].astype(np.float32), 44100, subtype="FLOAT")
        sf.write(os.path.join(est_dir, f"{s}.wav"), est.astype(np.float32), 44100, subtype="FLOAT")

    runs = []
    for i in range(3):
        wall, out = measure([binary, "eval", "--reference", ref_dir, "--estimate", est_dir, "--json"])
        ours = {s["stem"]: s for s in json.loads(out)}
        wall_m, out_m = measure([sys.executable, "-c", MUSEVAL, ref_dir, est_dir])
        theirs = json.loads(out_m)
        runs.append((wall, wall_m, theirs["seconds"]))
        print(f"run {i}: splitsound {wall:.2f} s, museval {wall_m:.2f} s (evaluate {theirs['seconds']:.2f} s)", flush=True)
    diff = max(abs(ours[s][k] - theirs["scores"][s][k]) for s in STEMS for k in ("sdr", "isr", "sir", "sar"))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    ours_s, theirs_s, theirs_eval = med([r[0] for r in runs]), med([r[1] for r in runs]), med([r[2] for r in runs])
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    lines = [
        "## BSS Eval v4 (museval)",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benches/eval.py --seconds {args.seconds}` on {cpu}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}: a {args.seconds} s, 4-stem stereo track "
        "(synthetic, with a silent stretch per stem), 1 s windows and hops, 512-tap filters. Whole processes, "
        "median of 3 alternating runs; both read the same float WAV files.",
        "",
        "| runner | wall (s) | speed-up |",
        "|---|---|---|",
        f"| `splitsound eval --reference --estimate` | {ours_s:.2f} | {theirs_s / ours_s:.1f}× |",
        f"| museval.evaluate (process) | {theirs_s:.2f} | 1× |",
        f"| museval.evaluate (the call alone) | {theirs_eval:.2f} | |",
        "",
        f"Largest difference between the two tools' median SDR/ISR/SIR/SAR over the four stems: {diff:.2e} dB.",
    ]
    update_section("eval", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
