#!/usr/bin/env python3
"""Scores of the built-in separators on the demo mix, as the README shows them.

Each built-in's stems are compared with the demo's true stems combined the way
that stem is defined (percussive = drums; harmonic = bass + other + vocals;
vocals / foreground = vocals; accompaniment / background = drums + bass + other),
with `splitsound eval` (museval's BSS Eval v4 medians, MDX global SDR).
    python3 scripts/demo_scores.py [path/to/splitsound]     # needs numpy, soundfile
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEMO = os.path.join(ROOT, "examples", "data", "demo")
COMBOS = {
    "builtin:hpss": {"percussive": ["drums"], "harmonic": ["bass", "other", "vocals"]},
    "builtin:center": {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
    "builtin:repet": {"foreground": ["vocals"], "background": ["drums", "bass", "other"]},
}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "splitsound")
    stems = {s: sf.read(os.path.join(DEMO, f"{s}.flac"), dtype="float32") for s in ["drums", "bass", "other", "vocals"]}
    rate = stems["drums"][1]
    print("| separator | stem | SDR | SIR | ISR | SAR | global SDR |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, combos in COMBOS.items():
            ref = os.path.join(tmp, name.split(":")[1], "ref")
            os.makedirs(ref)
            for stem, parts in combos.items():
                sf.write(os.path.join(ref, f"{stem}.wav"), sum(stems[p][0] for p in parts), rate, subtype="FLOAT")
            out = os.path.join(tmp, name.split(":")[1], "out")
            subprocess.run([binary, "separate", os.path.join(DEMO, "mixture.flac"), "-m", name, "-o", out,
                            "--bits", "32f", "--clip", "none"], check=True, capture_output=True)
            r = subprocess.run([binary, "eval", "--reference", ref, "--estimate", os.path.join(out, "mixture"),
                                "--json"], check=True, capture_output=True, text=True)
            for s in json.loads(r.stdout):
                print(f"| {name} | {s['stem']} | {s['sdr']:.2f} | {s['sir']:.2f} | {s['isr']:.2f} | {s['sar']:.2f} "
                      f"| {s['global_sdr']:.2f} |")


if __name__ == "__main__":
    main()
