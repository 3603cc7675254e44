#!/usr/bin/env python3
"""Build the CI MDX-Net package and the reference outputs of audio-separator's own code.

Writes core/tests/data/neural/mdx/: mdx-random.{onnx,json} (random weights, built
with `onnx`) and refs/ with inputs and the outputs of
`audio_separator.separator.architectures.mdx_separator.MDXSeparator.demix` (its
padding, Hann-weighted chunk overlap, STFT, zeroed low bins, optional denoise),
with secondary = mix − compensate · primary as `MDXSeparator.separate` computes it.
    /opt/ssref/bin/python python/tools/parity_mdx.py
Needs numpy, torch, onnx, onnxruntime and `pip install --no-deps audio-separator`
(plus six and pydub, which it imports); onnx2torch is not needed and is stubbed.
"""
import json
import logging
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs, test_signal  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "neural", "mdx")

sys.modules.setdefault("onnx2torch", types.ModuleType("onnx2torch"))
import torch  # noqa: E402
from audio_separator.separator.architectures.mdx_separator import MDXSeparator  # noqa: E402


def reference_separator(manifest, onnx_path, overlap, denoise):
    """An MDXSeparator with the attributes its __init__ would set, without the
    model download and file I/O around it."""
    sep = object.__new__(MDXSeparator)
    sep.logger = logging.getLogger("mdx-reference")
    sep.torch_device = torch.device("cpu")
    sep.n_fft = manifest["stft"]["n_fft"]
    sep.hop_length = manifest["stft"]["hop_length"]
    sep.dim_f = manifest["mdx"]["dim_f"]
    sep.dim_t = manifest["mdx"]["dim_t"]
    sep.segment_size = sep.dim_t
    sep.compensate = manifest["mdx"]["compensate"]
    sep.overlap = overlap
    sep.batch_size = 1
    sep.enable_denoise = denoise
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    sep.model_run = lambda spek: session.run(None, {"input": spek.cpu().numpy()})[0]
    return sep


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    subprocess.run([sys.executable, os.path.join(HERE, "mdx_package.py"), "random", "--out", OUT, "--seed", "0"],
                   check=True)
    with open(os.path.join(OUT, "mdx-random.json")) as f:
        manifest = json.load(f)
    onnx_path = os.path.join(OUT, "mdx-random.onnx")
    chunk = manifest["segment_samples"]
    refs = Refs(os.path.join(OUT, "refs"))
    cases = [
        # name, channels, frames, overlap, denoise
        ("stereo", 2, 2 * chunk + 4321, 0.25, False),
        ("short", 2, chunk // 5 + 3, 0.25, False),
        ("mono", 1, chunk + 999, 0.25, False),
        ("no_overlap", 2, chunk + 5000, 0.0, False),
        ("overlap", 2, chunk + 777, 0.6, False),
        ("denoise", 2, chunk + 1234, 0.25, True),
    ]
    for i, (name, channels, frames, overlap, denoise) in enumerate(cases):
        x = test_signal(channels, frames, 20 + i)
        x *= 0.8 / np.abs(x).max()  # below audio-separator's 0.9 normalisation threshold
        mix = np.concatenate([x, x]) if channels == 1 else x  # prepare_mix: mono → stereo
        sep = reference_separator(manifest, onnx_path, overlap, denoise)
        primary = sep.demix(mix.copy())
        secondary = mix - sep.compensate * primary
        out = np.stack([primary, secondary]).astype(np.float32)
        assert np.isfinite(out).all()
        refs.save(f"{name}_input", x)
        refs.save(f"{name}_output", out, overlap=overlap, denoise=denoise)
        print(f"{name}: input {x.shape}, output {out.shape}, peak {np.abs(out).max():.3f}")
    refs.close()


if __name__ == "__main__":
    main()
