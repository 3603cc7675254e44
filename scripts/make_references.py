#!/usr/bin/env python3
"""Produce reference outputs of torch and librosa that the Rust tests compare against.

Writes core/tests/data/refs/index.json plus raw little-endian float32 .bin files
(complex arrays as interleaved re, im; arrays in C order, shapes in the index).
Run it again after changing a case; CI only reads the committed outputs, so it
needs neither torch nor librosa.
    python3 scripts/make_references.py        # needs numpy, torch, librosa, soundfile
"""
import json
import os

import librosa
import numpy as np
import soundfile as sf
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "refs")
index = {}


def save(name, arr, **params):
    arr = np.ascontiguousarray(arr)
    if np.iscomplexobj(arr):
        raw = np.stack([arr.real, arr.imag], axis=-1).astype("<f4")
        kind = "complex64"
    else:
        raw = arr.astype("<f4")
        kind = "float32"
    raw.tofile(os.path.join(OUT, name + ".bin"))
    index[name] = {"file": name + ".bin", "shape": list(arr.shape), "dtype": kind, "params": params}


def signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100.0
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3130.5 * t + 0.3) + 0.1 * rng.standard_normal(n)
    return x.astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    # --- STFT/ISTFT, torch conventions ------------------------------------------------
    for n_fft, hop, n, normalized in [(512, 128, 5000, False), (512, 128, 5003, True), (4096, 1024, 20000, True)]:
        x = signal(n, n_fft + n)
        win = torch.hann_window(n_fft)
        spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=win, center=True, pad_mode="reflect",
                          normalized=normalized, onesided=True, return_complex=True).numpy()
        tag = f"torch_stft_{n_fft}_{hop}_{n}_{'norm' if normalized else 'raw'}"
        save(tag + "_input", x)
        save(tag, spec, n_fft=n_fft, hop=hop, normalized=normalized, convention="torch")
        # istft of an arbitrary (not STFT-consistent) spectrogram.
        rng = np.random.default_rng(n)
        z = (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)).astype(np.complex64)
        y = torch.istft(torch.from_numpy(z), n_fft, hop, window=win, center=True, normalized=normalized,
                        onesided=True, length=n).numpy()
        save(tag + "_istft_input", z)
        save(tag + "_istft", y, n_fft=n_fft, hop=hop, normalized=normalized, length=n, convention="torch")

    # --- STFT/ISTFT, librosa conventions ----------------------------------------------
    for n_fft, hop, n in [(2048, 512, 9001), (512, 128, 777)]:
        x = signal(n, n_fft * 7 + n)
        spec = librosa.stft(x, n_fft=n_fft, hop_length=hop)
        tag = f"librosa_stft_{n_fft}_{hop}_{n}"
        save(tag + "_input", x)
        save(tag, spec, n_fft=n_fft, hop=hop, convention="librosa")
        rng = np.random.default_rng(n)
        z = (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)).astype(np.complex64)
        y = librosa.istft(z, n_fft=n_fft, hop_length=hop, length=n)
        save(tag + "_istft_input", z)
        save(tag + "_istft", y, n_fft=n_fft, hop=hop, length=n, convention="librosa")

    # --- HPSS -------------------------------------------------------------------------
    mix, sr = sf.read(os.path.join(ROOT, "examples", "data", "demo", "mixture.flac"), dtype="float32")
    y = np.ascontiguousarray(mix[3 * sr: 5 * sr, 0])
    save("hpss_input", y, sample_rate=sr)
    for tag, kw in [
        ("hpss_default", dict()),
        ("hpss_k17_9_p1", dict(kernel_size=(17, 9), power=1.0)),
        ("hpss_margin", dict(margin=(1.0, 3.0))),
    ]:
        h, p = librosa.effects.hpss(y, **kw)
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        save(tag + "_harmonic", h, **params)
        save(tag + "_percussive", p, **params)

    versions = {"torch": torch.__version__, "librosa": librosa.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"versions": versions, "arrays": index}, f, indent=1, sort_keys=True)
    print(f"wrote {len(index)} arrays to {OUT}")


if __name__ == "__main__":
    main()
