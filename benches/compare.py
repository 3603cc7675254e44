#!/usr/bin/env python3
"""Runs splitsound's core operations and their peers on the same machine, in one
run, and writes benches/RESULTS.md (machine, commands, date, medians).

    python3 benches/compare.py [--runs 5]

Needs: ffmpeg (Debian), numpy, scipy, soundfile, soxr, librosa (PyPI), and a
release build of the bench_ops example (built here with cargo).
Peers: ffmpeg -threads 1 (decode), python-soxr HQ/VHQ (resample), scipy and
librosa (STFT+ISTFT), librosa.effects.hpss (HPSS).
"""
import argparse
import datetime
import json
import os
import sys
import platform
import resource
import subprocess
import tempfile
import time

import librosa
import numpy as np
import scipy
import scipy.signal
import soundfile as sf
import soxr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 44100


def median_time(fn, runs):
    """Median CPU time of this thread (the peers here are single-threaded)."""
    ts = []
    for _ in range(runs):
        t = time.thread_time()
        fn()
        ts.append(time.thread_time() - t)
    return float(np.median(ts))


def ours(op, path, *extra, runs):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "examples", "bench_ops")
    out = subprocess.run([exe, op, path, *map(str, extra), "--runs", str(runs)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["median_cpu_s"]


def sweep(rate, secs, f0, f1):
    t = np.arange(int(round(secs * rate))) / rate
    k = np.log(f1 / f0) / secs
    g = np.clip(np.minimum(t, secs - t) / 0.05, 0, 1)
    g = 0.5 - 0.5 * np.cos(np.pi * g)
    return 0.5 * g * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def snr(want, got):
    n = min(len(want), len(got))
    e = want[:n] - got[:n]
    return 10 * np.log10(np.sum(want[:n] ** 2) / np.sum(e ** 2))


def ripple_db(resample_fn):
    """Peak-to-peak gain variation (dB) for sines from 20 Hz to 20 kHz, 44.1 -> 48 kHz."""
    gains = []
    for f in np.geomspace(20, 20000, 25):
        x = np.sin(2 * np.pi * f * np.arange(SR) / SR).astype(np.float32)
        y = resample_fn(x).astype(np.float64)
        # Least-squares amplitude of the known frequency over the middle half.
        i = np.arange(len(y) // 4, 3 * len(y) // 4)
        basis = np.stack([np.sin(2 * np.pi * f * i / 48000), np.cos(2 * np.pi * f * i / 48000)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, y[i], rcond=None)
        gains.append(20 * np.log10(np.hypot(*coef)))
    return max(gains) - min(gains)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    runs = args.runs
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "splitsound-core", "--example", "bench_ops"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="splitsound-bench-")
    demo, _ = sf.read(os.path.join(ROOT, "examples/data/demo/mixture.flac"), dtype="float32")
    track = np.tile(demo, (15, 1))  # 3 minutes, stereo
    wav = os.path.join(tmp, "track.wav")
    sf.write(wav, track, SR, subtype="PCM_16")
    mp3, flac = os.path.join(tmp, "track.mp3"), os.path.join(tmp, "track.flac")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-c:a", "libmp3lame", "-b:a", "192k", mp3], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-c:a", "flac", flac], check=True)
    rows = []

    # Decode: whole processes on both sides (ours includes reading and collecting
    # f32), run alternately so both see the same machine load; CPU time (user +
    # system) of the child, which a busy neighbour disturbs less than wall time.
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "examples", "bench_ops")
    for name, path in [("decode MP3 192k, 3 min", mp3), ("decode FLAC, 3 min", flac)]:
        cmds = [[exe, "decode", path, "--runs", "1"],
                ["ffmpeg", "-v", "error", "-threads", "1", "-i", path, "-f", "f32le", "-y", "/dev/null"]]
        cpu = [[], []]
        for _ in range(runs):
            for k, cmd in enumerate(cmds):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(cmd, check=True, capture_output=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[k].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        rows.append((name, float(np.median(cpu[0])), float(np.median(cpu[1])), "ffmpeg -threads 1 -f f32le", 1.0))

    # Resample 44.1 -> 48 kHz, in-process on both sides, with quality.
    x = track.astype(np.float32)
    o = ours("resample", wav, 48000, runs=runs)
    for q in ["HQ", "VHQ"]:
        s = median_time(lambda: soxr.resample(x, SR, 48000, quality=q), runs)
        rows.append((f"resample 44.1→48 kHz, 3 min stereo", o, s, f"python-soxr {q}", 1.0))
    sw = sweep(SR, 2.0, 20, 20000).astype(np.float32)
    want = sweep(48000, 2.0, 20, 20000)
    raw_in, raw_out = os.path.join(tmp, "sw.f32"), os.path.join(tmp, "sw48.f32")

    def ours_resample(v):
        v.astype("<f4").tofile(raw_in)
        subprocess.run([exe, "resample-raw", raw_in, str(SR), "48000", raw_out], check=True)
        return np.fromfile(raw_out, dtype="<f4")

    quality = {
        "splitsound": (snr(want, ours_resample(sw)), ripple_db(ours_resample)),
        "soxr HQ": (snr(want, soxr.resample(sw, SR, 48000, quality="HQ")), ripple_db(lambda v: soxr.resample(v, SR, 48000, quality="HQ"))),
        "soxr VHQ": (snr(want, soxr.resample(sw, SR, 48000, quality="VHQ")), ripple_db(lambda v: soxr.resample(v, SR, 48000, quality="VHQ"))),
    }

    # STFT + ISTFT, n_fft 4096, hop 1024, stereo, 3 min.
    o = ours("stft", wav, runs=runs)
    win = scipy.signal.get_window("hann", 4096)

    def scipy_stft():
        for ch in x.T:
            _, _, z = scipy.signal.stft(ch, window=win, nperseg=4096, noverlap=3072, boundary="even", padded=True)
            scipy.signal.istft(z, window=win, nperseg=4096, noverlap=3072, boundary=True)

    def librosa_stft():
        for ch in x.T:
            z = librosa.stft(ch, n_fft=4096, hop_length=1024)
            librosa.istft(z, n_fft=4096, hop_length=1024, length=len(ch))

    rows.append(("STFT+ISTFT 4096/1024, 3 min stereo", o, median_time(scipy_stft, runs), "scipy.signal stft/istft", 2.0))
    rows.append(("STFT+ISTFT 4096/1024, 3 min stereo", o, median_time(librosa_stft, runs), "librosa stft/istft", 2.0))

    # HPSS on 30 s stereo (librosa's median filters are slow; 30 s keeps the run short).
    short = os.path.join(tmp, "short.wav")
    sf.write(short, track[: 30 * SR], SR, subtype="PCM_16")
    y30, _ = sf.read(short, dtype="float32")
    o = ours("hpss", short, runs=max(1, runs // 2))
    l = median_time(lambda: librosa.effects.hpss(np.ascontiguousarray(y30.T)), max(1, runs // 2))
    rows.append(("HPSS (librosa defaults), 30 s stereo", o, l, "librosa.effects.hpss", 5.0))

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ffv = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    lines = [
        "## Core operations",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python3 benches/compare.py --runs {runs}` on "
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{ffv}; soxr {soxr.__version__}, scipy {scipy.__version__}, librosa {librosa.__version__}, numpy {np.__version__}.",
        "Times are medians of CPU seconds (this VM's wall time is disturbed by its neighbours; every",
        "operation here runs on one thread on both sides). Decode: whole processes on both sides, run",
        "alternately. The rest: in-process thread CPU time (ours: the `bench_ops` example of",
        "splitsound-core, `cargo run --release -p splitsound-core --example bench_ops -- OP FILE`).",
        "",
        "| operation | splitsound (s) | peer | peer (s) | speed-up | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, o, p, peer, target in rows:
        sp = p / o
        lines.append(f"| {name} | {o:.3f} | {peer} | {p:.3f} | {sp:.2f}× | ≥ {target:g}× | {'yes' if sp >= target else 'no'} |")
    lines += [
        "",
        "Resampling quality, 44.1 → 48 kHz: SNR of a 20 Hz–20 kHz log sweep against the analytic",
        "signal at 48 kHz, and peak-to-peak gain of sines from 20 Hz to 20 kHz:",
        "",
        "| resampler | sweep SNR (dB) | passband ripple (dB) |",
        "|---|---|---|",
    ]
    for k, (s, r) in quality.items():
        lines.append(f"| {k} | {s:.1f} | {r:.4f} |")
    lines += [
        "",
        "Per-operation statistics of our side alone (30 s stereo): `cargo bench -p splitsound-core`",
        "(Criterion, `benches/core.rs`).",
        "",
    ]
    sys.path.insert(0, os.path.join(ROOT, "benches"))
    from _results import update_section

    update_section("core", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
