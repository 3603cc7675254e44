"""Reference arrays the Rust parity tests read: raw little-endian float32 `.bin`
files (C order) plus an `index.json` with each array's shape and parameters."""
import json
import os

import numpy as np


class Refs:
    def __init__(self, out_dir):
        self.dir = out_dir
        self.index = {}
        os.makedirs(out_dir, exist_ok=True)

    def save(self, name, arr, **params):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        arr.astype("<f4").tofile(os.path.join(self.dir, name + ".bin"))
        self.index[name] = {"file": name + ".bin", "shape": list(arr.shape), "dtype": "float32", "params": params}

    def close(self):
        with open(os.path.join(self.dir, "index.json"), "w") as f:
            json.dump({"arrays": self.index}, f, indent=1, sort_keys=True)
            f.write("\n")


def windows(frames, edges, half=4096):
    """Merged [a, b) ranges of `half` samples either side of each edge, within
    [0, frames): where chunked outputs can go wrong (fades, joins, the tail),
    kept instead of a whole output of tens of MB."""
    ranges = []
    for e in sorted(set(edges) | {0, frames}):
        a, b = max(0, e - half), min(frames, e + half)
        if ranges and a <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], b)
        else:
            ranges.append([a, b])
    return ranges


def kept(stems, ranges):
    """[stems, channels, N] cut to `ranges`, concatenated along time."""
    return np.concatenate([stems[:, :, a:b] for a, b in ranges], axis=2)


def test_signal(channels, n, seed, sr=44100):
    """Music-like test input: a few partials with vibrato, a bass line, noise
    bursts like drum hits, and a different mix per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    out = np.zeros((channels, n))
    for c in range(channels):
        f0 = 220.0 * (1 + 0.01 * c)
        tone = sum(0.15 / k * np.sin(2 * np.pi * k * f0 * t + 0.3 * np.sin(2 * np.pi * 5 * t) + k) for k in range(1, 6))
        bass = 0.25 * np.sin(2 * np.pi * 55.0 * t + c)
        hits = np.zeros(n)
        for start in range(int(0.1 * sr), n, int(0.37 * sr)):
            m = min(n - start, int(0.08 * sr))
            hits[start:start + m] += 0.4 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.015 * sr))
        out[c] = tone + bass + hits
    return out.astype(np.float32)
