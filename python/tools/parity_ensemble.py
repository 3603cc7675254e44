#!/usr/bin/env python3
"""Reference outputs of audio-separator 0.47's `Ensembler` (every algorithm) on
fixed inputs, for core/tests/ensemble.rs.

Three "model outputs" of one stem (stereo, 6000, 6500 and 7000 samples: the
shorter ones are zero-padded, and none is a whole number of the 1024-sample
hops, so `uvr_*` lose a tail) and, separately, the first two of them (an even
count: medians of two). Each is combined with `Ensembler(logger, algorithm,
weights).ensemble(waveforms)`, with weights [3, 1, 2] ([3, 1]) for the
algorithms that use them and none for the others.
    ~/.cache/splitsound/ref-venv/bin/python python/tools/parity_ensemble.py
Needs numpy, librosa and `pip install --no-deps audio-separator==0.47.1`.
"""
import logging
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs, test_signal  # noqa: E402
from parity_mdxc import stub_unused_imports  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "core", "tests", "data", "ensemble")
ALGORITHMS = ["avg_wave", "median_wave", "min_wave", "max_wave", "avg_fft", "median_fft", "min_fft", "max_fft",
              "uvr_max_spec", "uvr_min_spec", "ensemble_wav"]
WEIGHTED = {"avg_wave", "avg_fft"}


def main():
    stub_unused_imports()
    from audio_separator.separator.ensembler import Ensembler

    log = logging.getLogger("ensemble")
    rng = np.random.default_rng(7)
    inputs = []
    for i, n in enumerate([6000, 6500, 7000]):
        # Related estimates of one stem: a shared signal, each with its own error.
        x = test_signal(2, 7000, 90)[:, :n] * (0.8 + 0.1 * i)
        x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
        inputs.append(x.astype(np.float32))
    refs = Refs(OUT)
    for i, x in enumerate(inputs):
        refs.save(f"input{i}", x)
    for count, weights in [(3, [3.0, 1.0, 2.0]), (2, [3.0, 1.0])]:
        for alg in ALGORITHMS:
            w = weights if alg in WEIGHTED else None
            out = Ensembler(log, alg, w).ensemble([x.copy() for x in inputs[:count]])
            out = np.asarray(out, dtype=np.float32)
            assert np.isfinite(out).all(), alg
            refs.save(f"{alg}_{count}", out, algorithm=alg, models=count, weights=w)
            print(f"{alg} of {count}: {out.shape}, peak {np.abs(out).max():.3f}")
    refs.close()


if __name__ == "__main__":
    main()
