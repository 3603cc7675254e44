"""Type-checked by mypy in scripts/test-python.sh: the API as a typed caller uses it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import splitsound as ss


def split(path: str) -> dict[str, npt.NDArray[np.float32]]:
    x, sr = ss.load(path)
    sep = ss.Separator("builtin:hpss", device="cpu", overlap=0.25)
    names: list[str] = sep.stems
    rate: int | None = sep.sample_rate
    assert names and (rate is None or rate > 0) and sep.provider
    spec = ss.stft(x, 2048, 512)
    back: npt.NDArray[np.float32] = ss.istft(spec, 2048, 512, length=x.shape[1])
    assert back.shape == x.shape
    files: dict[str, str] = sep.separate_file(path, "out", format="flac", bits=24)
    assert files
    scores: dict[str, dict[str, float]] = ss.eval({"a": x}, {"a": x}, sr)
    assert scores["a"]["sdr"] > 0
    try:
        return sep(x, sr, progress=lambda stage, done, total: None)
    except ss.SplitsoundError as e:
        raise RuntimeError(e.code) from e
