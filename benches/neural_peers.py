#!/usr/bin/env python3
"""The peers benches/neural.py runs, one separation per process.

    neural_peers.py torch  SEED CONFIG IN.wav OUT.npy [cuda]  # demucs.apply.apply_model (PyTorch)
    neural_peers.py ort    MODEL.json IN.wav OUT.npy    # a Python onnxruntime loop over our graph

`torch` builds HT-Demucs as python/tools/export_demucs.py does (same seed, same
weights) and separates as `demucs.api.Separator.separate_tensor` does (mono
normalisation, apply_model with shifts=0, overlap 0.25). `ort` runs the exported
graph with numpy doing demucs's `_spec`/`_ispec` and apply_model's segmenting.
Each prints one JSON line with the separation's own wall time.
"""
import json
import os
import sys
import time

import numpy as np
import soundfile as sf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run_torch(seed, config, wav_path, out_path, device="cpu"):
    import torch

    sys.path.insert(0, os.path.join(ROOT, "python", "tools"))
    import export_demucs
    from demucs.apply import apply_model

    class Args:
        checkpoint = None

    Args.seed, Args.config = int(seed), config
    model = export_demucs.build(Args)[0].eval()
    wav = torch.from_numpy(sf.read(wav_path, dtype="float32", always_2d=True)[0].T.copy())
    t0 = time.perf_counter()
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    with torch.no_grad():
        out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True, overlap=0.25, device=device)
    out = (out * std + mean)[0].cpu().numpy()
    secs = time.perf_counter() - t0
    np.save(out_path, out)
    print(json.dumps({"separate_s": secs, "threads": torch.get_num_threads()}))


def hann(n):
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(x, n_fft, hop):
    """torch.stft(center=True, reflect, periodic Hann, normalized=True), one-sided."""
    pad = n_fft // 2
    x = np.pad(x, (pad, pad), mode="reflect")
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return (np.fft.rfft(x[idx] * hann(n_fft), axis=1) / np.sqrt(n_fft)).T  # [bins, frames]


def istft(z, n_fft, hop, length):
    w = hann(n_fft)
    frames = z.shape[1]
    full = n_fft + hop * (frames - 1)
    y = np.zeros(full)
    env = np.zeros(full)
    seg = np.fft.irfft(z.T * np.sqrt(n_fft), n=n_fft, axis=1) * w
    for t in range(frames):
        y[t * hop:t * hop + n_fft] += seg[t]
        env[t * hop:t * hop + n_fft] += w * w
    y = y / np.where(env > 1e-11, env, 1.0)
    return y[n_fft // 2:n_fft // 2 + length]


def run_ort(manifest_path, wav_path, out_path):
    import onnxruntime as ort

    m = json.load(open(manifest_path))
    sess = ort.InferenceSession(os.path.join(os.path.dirname(manifest_path), m["files"][0]["path"]),
                                providers=["CPUExecutionProvider"])
    mix = sf.read(wav_path, dtype="float32", always_2d=True)[0].T.copy()
    t0 = time.perf_counter()
    n_fft, hop, seg = m["stft"]["n_fft"], m["stft"]["hop_length"], m["segment_samples"]
    le = -(-seg // hop)
    pad = hop // 2 * 3
    ref = mix.mean(0)
    mean, std = ref.mean(), ref.std(ddof=1) + 1e-8
    x = (mix - mean) / std
    c, n = x.shape
    stride = int(0.75 * seg)
    weight = np.concatenate([np.arange(1, seg // 2 + 1), np.arange(seg - seg // 2, 0, -1)]).astype(np.float32)
    weight /= weight.max()
    s = len(m["stems"])
    out = np.zeros((s, c, n), np.float32)
    total = np.zeros(n, np.float32)
    for off in range(0, n, stride):
        chunk = min(seg, n - off)
        delta = seg - chunk
        start = off - delta // 2
        part = np.zeros((c, seg), np.float32)
        lo, hi = max(0, start), min(n, start + seg)
        part[:, lo - start:hi - start] = x[:, lo:hi]
        spec = np.zeros((1, 2 * c, n_fft // 2, le), np.float32)
        for ch in range(c):
            padded = np.pad(part[ch], (pad, pad + le * hop - seg), mode="reflect")
            z = stft(padded, n_fft, hop)[:-1, 2:2 + le]
            spec[0, 2 * ch], spec[0, 2 * ch + 1] = z.real, z.imag
        time_out, freq_out = sess.run(None, {"mix": part[None], "spec": spec})
        res = time_out[0].copy()
        for k in range(s):
            for ch in range(c):
                z = freq_out[0, k, 2 * ch] + 1j * freq_out[0, k, 2 * ch + 1]
                z = np.pad(z, ((0, 1), (2, 2)))
                lp = hop * -(-seg // hop) + 2 * pad
                res[k, ch] += istft(z, n_fft, hop, lp)[pad:pad + seg]
        trim = delta // 2
        out[..., off:off + chunk] += weight[:chunk] * res[..., trim:trim + chunk]
        total[off:off + chunk] += weight[:chunk]
    out = out / total * std + mean
    secs = time.perf_counter() - t0
    np.save(out_path, out)
    print(json.dumps({"separate_s": secs}))


if __name__ == "__main__":
    if sys.argv[1] == "torch":
        run_torch(*sys.argv[2:7])
    elif sys.argv[1] == "ort":
        run_ort(*sys.argv[2:5])
    else:
        raise SystemExit(__doc__)
