#!/usr/bin/env python3
"""Build the `waveform` family's test packages and the references of demucs-onnx's chunking.

Writes core/tests/data/neural/waveform/:
  ci.json + ci.onnx              the CI HT-Demucs of parity_demucs.py (seed 0) with its
                                 STFT inside the graph (export_demucs.py --stft-in-graph);
                                 `apply_model`'s chunking, so demucs/refs are its references
  released.json + .onnx          the same for the small model at the released segment (seed 2)
  demucs-onnx.json               released.onnx chunked as demucs-onnx's inference does (linear
                                 fades of a quarter segment, zeros after the end, no normalisation)
  released-bare.onnx             released.onnx without its embedded manifest, as a third party ships one
  refs/                          inputs and the outputs of demucs-onnx 0.3.4's own
                                 `inference._chunked_separate_single` on released.onnx
                                 (windows of 8192 samples around every chunk's start and end)
CI only reads the committed files.
    ~/.cache/splitsound/ref-venv/bin/python python/tools/parity_waveform.py
        # needs torch, onnxruntime, demucs and demucs-onnx (pip install --no-deps demucs-onnx)
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs, kept, test_signal, windows  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "neural", "waveform")
SOURCES = ["drums", "bass", "other", "vocals"]


def main():
    from demucs_onnx import inference

    os.makedirs(OUT, exist_ok=True)
    for config, seed in (("ci", 0), ("released", 2)):
        subprocess.run(
            [sys.executable, os.path.join(HERE, "export_demucs.py"), "--config", config, "--seed", str(seed),
             "--stft-in-graph", "--name", config, "--out", OUT],
            check=True,
        )
    with open(os.path.join(OUT, "released.json")) as f:
        manifest = json.load(f)
    n = manifest["segment_samples"]
    if n != inference.N_SAMPLES:
        raise SystemExit(f"demucs-onnx runs {inference.N_SAMPLES}-sample segments, the graph {n}")
    manifest["name"] = "demucs-onnx"
    manifest["normalisation"] = "none"
    # _make_transition_window: linspace fades of int(0.25 N) at both ends; chunks
    # zero-padded after the end; stride N − N // 4.
    manifest["waveform"] = {"window": "linear", "fade_samples": int(n * 0.25), "partial": "zero_right"}
    manifest["defaults"] = {"overlap": 0.25, "shifts": 0}
    if int((1 - 0.25) * n) != n - n // 4:
        raise SystemExit("the stride differs from demucs-onnx's")
    with open(os.path.join(OUT, "demucs-onnx.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    # The graph as demucs-onnx ships one: no manifest inside (splitsound's --waveform-* flags describe it).
    import onnx

    bare = onnx.load(os.path.join(OUT, "released.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, os.path.join(OUT, "released-bare.onnx"))

    session = ort.InferenceSession(os.path.join(OUT, "released.onnx"), providers=["CPUExecutionProvider"])
    refs = Refs(os.path.join(OUT, "refs"))
    # Three chunks, the last a short tail; shorter than a segment.
    for name, frames, seed in (("three_chunks", 2 * (n - n // 4) + 777, 2), ("short", n // 3, 3)):
        mix = test_signal(2, frames, seed)
        out = inference._chunked_separate_single(session, SOURCES, mix, progress=False)
        refs.save(f"{name}_input", mix)
        # The whole output would be tens of MB: keep windows around every place
        # where chunks start or end (the fades, the zero-weight first sample, the tail).
        stride = n - n // 4
        starts = range(0, frames, stride)
        ranges = windows(frames, [s for s in starts] + [min(s + n, frames) for s in starts])
        stems = kept(np.stack([out[s] for s in SOURCES]), ranges)
        refs.save(f"{name}_output", stems, package="demucs-onnx", ranges=ranges)
        print(f"{name}: {frames} frames")
    refs.close()


if __name__ == "__main__":
    main()
