#!/usr/bin/env python3
"""The SAM-Audio parity data the Rust tests read, taken from the reference
data Meta's code computed on a tiny seeded model (FACTS.md in that folder):
the two mixtures and prompts, the ODE noise and watermark message it drew, the
token ids, and its decoded targets and residuals (whole latent frames). Our
package of the same weights comes from export_sam_audio.py:

    python3 python/tools/export_sam_audio.py --dir REF --out core/tests/data/neural/sam-audio \\
        --name sam-audio-tiny --check REF
    python3 python/tools/parity_sam_audio.py --ref REF --out core/tests/data/neural/sam-audio/refs

Needs numpy only.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Refs  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="the reference data folder (sam-audio-tiny)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    L = lambda n: np.load(os.path.join(args.ref, n + ".npy"))  # noqa: E731
    cfg = json.load(open(os.path.join(args.ref, "config.json")))
    refs = Refs(args.out)
    prompts = cfg["prompts"]
    ids = L("t5_input_ids")
    mask = L("t5_attention_mask")
    for i, prompt in enumerate(prompts):
        n = int(mask[i].sum())
        refs.save(f"tokens_{i}", ids[i, :n], prompt=prompt)
        refs.save(f"input_{i}", L(f"input_wav_{i}"), prompt=prompt, sample_rate=48000)
        refs.save(f"target_{i}", L(f"target_{i}"))
        refs.save(f"residual_{i}", L(f"residual_{i}"))
    refs.save("ode_noise", L("ode_initial_noise"))
    refs.save("watermark_message", L("watermark_message"))
    refs.close()


if __name__ == "__main__":
    main()
