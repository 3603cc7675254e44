#!/usr/bin/env python3
"""Build the CI HT-Demucs packages and the reference outputs our parity tests compare against.

Writes core/tests/data/neural/demucs/:
  ci.json + ci.onnx          one shrunk HT-Demucs, random weights (seed 0)
  bag.json + ci1.onnx        a bag of two (seeds 0 and 1) with per-stem weights
  released.json + .onnx      a small HT-Demucs at the released segment, nfft, dconv_comp and heads (seed 2)
  refs/                      inputs and `demucs.api.Separator.separate_tensor`'s outputs:
                             global normalisation by the mono mix's mean/std, then
                             `demucs.apply.apply_model` (segments, overlap, shifts, bags)
The random shift offsets drawn by apply_model are recorded with each case, so the
Rust test replays the same offsets. CI only reads the committed files.
    /opt/ssref/bin/python python/tools/parity_demucs.py     # needs torch, onnxruntime, demucs (no-deps)
"""
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs, test_signal  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "neural", "demucs")
BAG_WEIGHTS = [[1.0, 0.5, 0.0, 2.0], [1.0, 1.5, 1.0, 1.0]]


def export(seed, name, config="ci"):
    tmp = os.path.join(OUT, "tmp")
    subprocess.run(
        [sys.executable, os.path.join(HERE, "export_demucs.py"), "--config", config, "--seed", str(seed),
         "--attention-block", "64",
         "--name", name, "--out", tmp],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return tmp


def build_model(seed, config="ci"):
    # The same construction export_demucs.py performs, so the weights are identical.
    from demucs.htdemucs import HTDemucs
    sys.path.insert(0, HERE)
    import export_demucs

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = HTDemucs(sources=export_demucs.SOURCES, audio_channels=2, samplerate=44100, **export_demucs.CONFIGS[config])
    return model.eval()


def check_graph(model, onnx_path):
    """The exported graph must reproduce the network: run both on one segment."""
    length = int(model.segment * model.samplerate)
    x = torch.from_numpy(test_signal(2, length, 99))[None]
    with torch.no_grad():
        want = model(x)
        z = model._spec(x)
        spec = model._magnitude(z)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    time, freq = sess.run(None, {"mix": x.numpy(), "spec": spec.numpy()})
    b, s, c2, fq, t = freq.shape
    zout = torch.view_as_complex(torch.from_numpy(freq).view(b, s, -1, 2, fq, t).permute(0, 1, 2, 4, 5, 3).contiguous())
    got = torch.from_numpy(time) + model._ispec(zout, length)
    err = (got - want).abs().max().item() / want.abs().max().item()
    assert err < 1e-5, f"ONNX graph differs from torch by {err}"
    print(f"graph check: max error {err:.2e} of peak")


def separate(models, weights, wav, shifts, overlap, seed):
    """demucs.api.Separator.separate_tensor, recording the shift offsets."""
    from demucs.apply import BagOfModels, apply_model

    model = models[0] if len(models) == 1 else BagOfModels(models, weights)
    offsets = []
    real_randint = random.randint

    def recording(a, b):
        v = real_randint(a, b)
        offsets.append(v)
        return v

    random.seed(seed)
    random.randint = recording
    try:
        ref = wav.mean(0)
        mean = ref.mean()
        std = ref.std() + 1e-8
        with torch.no_grad():
            out = apply_model(model, ((wav - mean) / std)[None], shifts=shifts, split=True, overlap=overlap)
        out = out * std + mean
    finally:
        random.randint = real_randint
    return out[0].numpy(), offsets


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tmp = export(0, "ci")
    shutil.move(os.path.join(tmp, "ci.onnx"), os.path.join(OUT, "ci.onnx"))
    shutil.move(os.path.join(tmp, "ci.json"), os.path.join(OUT, "ci.json"))
    shutil.rmtree(tmp)
    tmp = export(1, "ci1")
    shutil.move(os.path.join(tmp, "ci1.onnx"), os.path.join(OUT, "ci1.onnx"))
    shutil.rmtree(tmp)
    tmp = export(2, "released", "released")
    for f in ("released.onnx", "released.json"):
        shutil.move(os.path.join(tmp, f), os.path.join(OUT, f))
    shutil.rmtree(tmp)
    import json

    with open(os.path.join(OUT, "ci.json")) as f:
        manifest = json.load(f)
    manifest["name"] = "bag"
    manifest["files"] = [
        {"path": "ci.onnx", "stem_weights": BAG_WEIGHTS[0]},
        {"path": "ci1.onnx", "stem_weights": BAG_WEIGHTS[1]},
    ]
    with open(os.path.join(OUT, "bag.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    m0, m1, released = build_model(0), build_model(1), build_model(2, "released")
    check_graph(m0, os.path.join(OUT, "ci.onnx"))
    check_graph(m1, os.path.join(OUT, "ci1.onnx"))
    check_graph(released, os.path.join(OUT, "released.onnx"))

    sr = 44100
    seg = int(m0.segment * sr)
    cases = [
        # name, channels, frames, package, shifts, overlap
        ("stereo", 2, 3 * seg + 1234, "ci", 0, 0.25),
        ("short", 2, seg // 3 + 7, "ci", 0, 0.25),
        ("mono", 1, seg + 999, "ci", 0, 0.25),
        ("shifts", 2, 30001, "ci", 2, 0.25),
        ("overlap", 2, 30077, "ci", 0, 0.5),
        ("bag", 2, 29321, "bag", 1, 0.25),
        # The released segment (one 7.8 s segment, the input padded into it).
        ("released", 2, 2 * sr + 321, "released", 0, 0.25),
    ]
    refs = Refs(os.path.join(OUT, "refs"))
    for i, (name, channels, frames, package, shifts, overlap) in enumerate(cases):
        x = test_signal(channels, frames, 10 + i)
        wav = torch.from_numpy(x)
        if channels == 1:
            wav = wav.expand(2, frames)  # demucs.audio.convert_audio_channels
        models, weights = {"ci": ([m0], None), "bag": ([m0, m1], BAG_WEIGHTS), "released": ([released], None)}[package]
        out, offsets = separate(models, weights, wav, shifts, overlap, seed=1234 + i)
        refs.save(f"{name}_input", x)
        refs.save(f"{name}_output", out, package=package, shifts=shifts, overlap=overlap, offsets=offsets)
        print(f"{name}: input {x.shape}, output {out.shape}, offsets {offsets}")
    refs.close()


if __name__ == "__main__":
    main()
