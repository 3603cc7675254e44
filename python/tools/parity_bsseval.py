#!/usr/bin/env python3
"""Reference BSS Eval v4 scores from sigsep's museval for our parity test.

Writes core/tests/data/bsseval/: for each case, the references and estimates
(float32, [source, channel, sample]) and museval.evaluate's framewise SDR, ISR,
SIR and SAR (float64 in the index params; NaN as null). Cases: several sources,
lengths that are not whole windows, a silent stretch, mono and stereo, an
estimate shorter than its reference, filtered and leaking estimates.
    /opt/ssref/bin/python python/tools/parity_bsseval.py
Needs numpy, scipy, pandas, simplejson, jsonschema and `pip install --no-deps museval`
(musdb, which museval imports for dataset I/O, is stubbed).
"""
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs  # noqa: E402

sys.modules.setdefault("musdb", types.ModuleType("musdb"))
import museval  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "bsseval")


def sources(rng, nsrc, nchan, n):
    t = np.arange(n)
    out = np.zeros((nsrc, nchan, n))
    for j in range(nsrc):
        f = 0.01 + 0.013 * j
        env = 0.5 + 0.5 * np.sin(2 * np.pi * t / (3000 + 700 * j))
        base = np.sin(2 * np.pi * f * t + j) * env + 0.3 * rng.standard_normal(n)
        for c in range(nchan):
            # Channels share the source's tone but not all of its noise, as real
            # stereo does; identical filtered copies would make the least-squares
            # problem singular and every implementation's answer arbitrary.
            own = 0.3 * rng.standard_normal(n)
            out[j, c] = np.convolve(base, rng.standard_normal(5) * (0.6 + 0.2 * c), mode="same") + own
    return out


def estimates(rng, refs):
    nsrc = refs.shape[0]
    est = np.zeros_like(refs)
    for j in range(nsrc):
        # Its own source through a short filter, leakage from the others, noise.
        h = np.array([0.9, 0.15, -0.05])
        for c in range(refs.shape[1]):
            est[j, c] = np.convolve(refs[j, c], h, mode="full")[: refs.shape[2]]
        for k in range(nsrc):
            if k != j:
                est[j] += 0.1 * (k + 1) / nsrc * refs[k]
        est[j] += 0.05 * rng.standard_normal(est[j].shape)
    return est


def main():
    refs_out = Refs(OUT)
    rng = np.random.default_rng(7)
    window = 4000
    cases = [
        # name, nsrc, nchan, frames, estimate frames, silent (source, start, stop)
        ("stereo3", 3, 2, 13300, 13300, (1, 3900, 8100)),
        ("mono2", 2, 1, 10250, 10250, None),
        ("stereo4_short_est", 4, 2, 9100, 8600, None),
    ]
    for name, nsrc, nchan, n, n_est, silent in cases:
        r = sources(rng, nsrc, nchan, n)
        if silent:
            j, a, b = silent
            r[j, :, a:b] = 0.0
        e = estimates(rng, r)[:, :, :n_est]
        if silent:
            j, a, b = silent
            e[j, :, a + 500:b - 500] = 0.0
        r = r.astype(np.float32)
        e = e.astype(np.float32)
        # museval takes [source, sample, channel].
        sdr, isr, sir, sar = museval.evaluate(r.transpose(0, 2, 1), e.transpose(0, 2, 1), win=window, hop=window)

        def listed(a):
            return [[None if np.isnan(v) else float(v) for v in row] for row in a]

        refs_out.save(f"{name}_references", r)
        refs_out.save(f"{name}_estimates", e, window=window, hop=window, filter_len=512,
                      sdr=listed(sdr), isr=listed(isr), sir=listed(sir), sar=listed(sar))
        print(name, "frames", sdr.shape[1], "median SDR", np.nanmedian(sdr, axis=1))
    refs_out.close()


if __name__ == "__main__":
    main()
