#!/usr/bin/env python3
"""Synthesise the bundled demo mix and its true stems.

Writes examples/data/demo/{mixture,drums,bass,other,vocals}.flac (MUSDB18 layout):
12 s, stereo, 44.1 kHz, 16-bit. Drums, bass and chords are synthesised here; the
voice is espeak-ng panned to the centre. The stems are quantised to 16 bits first
and the mixture is their exact integer sum, so the stems sum to the mix.

Needs numpy, soundfile and the espeak-ng program. Deterministic for a given
espeak-ng version (the committed files came from espeak-ng 1.51).
    python3 scripts/make_demo.py [OUT_DIR]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

SR = 44100
SECONDS = 12.0
BPM = 100
N = int(SR * SECONDS)
rng = np.random.default_rng(20261123)
beat = 60.0 / BPM


def env_exp(n, tau):
    return np.exp(-np.arange(n) / (tau * SR))


def place(track, sig, start):
    i = int(start * SR)
    if i >= track.shape[-1]:
        return
    j = min(track.shape[-1], i + sig.shape[-1])
    track[..., i:j] += sig[..., : j - i]


def lowpass(x, cutoff):
    # One-pole low-pass, applied twice.
    a = np.exp(-2 * np.pi * cutoff / SR)
    for _ in range(2):
        y = np.empty_like(x)
        acc = 0.0
        for i, v in enumerate(x):
            acc = (1 - a) * v + a * acc
            y[i] = acc
        x = y
    return x


def pan(mono, p):
    """Constant-power pan, p in [-1, 1]."""
    th = (p + 1) * np.pi / 4
    return np.stack([mono * np.cos(th), mono * np.sin(th)])


def drums():
    out = np.zeros((2, N))
    n = int(0.5 * SR)
    t = np.arange(n) / SR
    kick = np.sin(2 * np.pi * (45 * t + 60 * (1 - np.exp(-t / 0.03)) * 0.03 * 40)) * env_exp(n, 0.12)
    snare_noise = rng.standard_normal(n) * env_exp(n, 0.07)
    snare = 0.5 * np.sin(2 * np.pi * 190 * t) * env_exp(n, 0.05) + 0.6 * (snare_noise - lowpass(snare_noise, 1500))
    hat_noise = rng.standard_normal(int(0.1 * SR))
    hat = (hat_noise - lowpass(hat_noise, 7000)) * env_exp(len(hat_noise), 0.015)
    step = beat / 2
    k = 0
    while k * step < SECONDS:
        s = k * step
        if k % 8 in (0, 3, 5):
            place(out, pan(0.8 * kick, 0.0), s)
        if k % 8 in (2, 6):
            place(out, pan(0.7 * snare, -0.35), s)
        place(out, pan(0.25 * hat * (1.0 if k % 2 else 0.6), 0.7), s)
        k += 1
    # A little stereo room: a short decorrelated echo on each side.
    room = np.zeros_like(out)
    room[0, 331:] = 0.25 * out[1, :-331]
    room[1, 577:] = 0.25 * out[0, :-577]
    return out + room


CHORDS = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]  # Am F C G (MIDI)


def midi_hz(m):
    return 440.0 * 2 ** ((m - 69) / 12)


def bass():
    out = np.zeros(N)
    bar = 4 * beat
    for b in range(int(SECONDS / bar) + 1):
        root = CHORDS[b % 4][0] - 24
        for q in range(4):
            start = b * bar + q * beat
            n = int(beat * 0.9 * SR)
            t = np.arange(n) / SR
            f = midi_hz(root + (7 if q == 3 else 0))
            tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
            place(out, 0.45 * tone * env_exp(n, 0.4) * np.minimum(1, t / 0.005), start)
    return pan(out, 0.0)


def other():
    """Detuned saw pads, each voice in its own stereo position: wide, not centred."""
    out = np.zeros((2, N))
    bar = 4 * beat
    for b in range(int(SECONDS / bar) + 1):
        n = int(bar * SR)
        t = np.arange(n) / SR
        envl = np.minimum(1, t / 0.08) * np.minimum(1, (bar - t) / 0.1)
        for v, m in enumerate(CHORDS[b % 4]):
            f = midi_hz(m)
            for side, det in ((0, 0.997), (1, 1.003)):
                saw = 2 * ((f * det * t + 0.13 * v) % 1.0) - 1
                place(out[side], 0.09 * saw * envl, b * bar)
    out[0] = lowpass(out[0], 2500)
    out[1] = lowpass(out[1], 2500)
    return out


def vocals():
    text = (
        "Split the sound into stems. The voice sits in the middle, "
        "the drums keep time, the bass holds the floor, and the chords fill the room."
    )
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "v.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-p", "60", "-w", wav, text], check=True)
        v, sr = sf.read(wav, dtype="float64")
    # Resample espeak's 22.05 kHz output by FFT (exact factor 2).
    spec = np.fft.rfft(v)
    v = np.fft.irfft(np.concatenate([spec, np.zeros(len(v) - len(spec) + 1)]), 2 * len(v)) * 2
    out = np.zeros(N)
    place(out, 1.0 * v / np.max(np.abs(v)), 0.8)
    return pan(out, 0.0)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "examples", "data", "demo")
    os.makedirs(out_dir, exist_ok=True)
    stems = {"drums": drums(), "bass": bass(), "other": other(), "vocals": vocals()}
    ints = {k: np.clip(np.round(v * 32767 * 0.55), -32768, 32767).astype(np.int32) for k, v in stems.items()}
    mix = sum(ints.values())
    peak = np.max(np.abs(mix))
    assert peak <= 32767, f"mixture clips ({peak}); lower the levels"
    for name, x in list(ints.items()) + [("mixture", mix)]:
        sf.write(os.path.join(out_dir, f"{name}.flac"), x.T.astype(np.int16), SR, subtype="PCM_16")
    print(f"wrote {out_dir}: {SECONDS}s, mixture peak {peak / 32768:.3f}")


if __name__ == "__main__":
    main()
