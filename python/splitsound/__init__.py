"""splitsound: split songs, podcasts and soundtracks into stems.

    >>> import splitsound
    >>> x, sr = splitsound.load("song.flac")          # float32 [channels, frames]
    >>> sep = splitsound.Separator("builtin:hpss")     # or a model package's path, or a model's name
    >>> stems = sep(x, sr)                             # {"harmonic": array, "percussive": array}

Heavy work runs without the GIL; Ctrl-C cancels it (raising KeyboardInterrupt).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

from . import _splitsound, models
from ._errors import (
    CancelledError,
    DecodeError,
    DownloadError,
    FileError,
    InternalError,
    InvalidArgumentError,
    ModelError,
    ModelNotInstalledError,
    RuntimeUnavailableError,
    SplitsoundError,
    UnsupportedFormatError,
)
from ._splitsound import BUILTINS, eval, info, istft, load, resample, resolve_query, stft

__version__: str = _splitsound.__version__

ProgressCallback = Callable[[str, int, int], Any]


def _progress(progress: Union[bool, ProgressCallback, None], what: str) -> tuple[Optional[ProgressCallback], Any]:
    """A callback from `progress`: True means a tqdm bar if tqdm is installed."""
    if progress is True:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            return None, None
        bar = tqdm(total=1000, desc=what, unit="‰", leave=False)

        def update(stage: str, done: int, total: int) -> None:
            bar.set_postfix_str(stage, refresh=False)
            bar.n = int(1000 * done / total) if total else 0
            bar.refresh()

        return update, bar
    if progress is False or progress is None:
        return None, None
    return progress, None


class Separator(_splitsound.Separator):
    """A separator: ``"builtin:hpss"``, ``"builtin:center"``, ``"builtin:repet"``,
    the path of a model package (HT-Demucs, Open-Unmix, MDX-Net, the msst
    families; a bare UVR MDX-Net ``.onnx``), or the name of a model in the
    cache (:mod:`splitsound.models`).

    ``device`` lists execution providers in order (``"cuda:0,cpu"``); one that
    cannot run falls back to the next unless ``strict=True``. ``provider`` says
    which runs. ``overlap``, ``shifts``, ``batch``, ``threads`` and ``seed``
    tune neural models; ``options`` takes any of them as JSON.

    A text-prompted model (a SAM-Audio package) separates any sound you
    describe: ``Separator("sam-audio.json", description="a dog barking")``
    gives ``{"target": ..., "residual": ...}``. ``ode_noise`` ([frames, 2C])
    and ``watermark_message`` ([2, bits]) repeat a reference run's draws;
    otherwise ``seed`` decides them.
    """

    def __call__(
        self,
        x: np.ndarray,
        sr: int,
        progress: Union[bool, ProgressCallback, None] = None,
    ) -> dict[str, np.ndarray]:
        """Separates `x` (see `separate`); ``progress=True`` shows a tqdm bar."""
        callback, bar = _progress(progress, self.name)
        try:
            return self.separate(x, sr, progress=callback)
        finally:
            if bar is not None:
                bar.close()


__all__ = [
    "BUILTINS",
    "CancelledError",
    "DecodeError",
    "DownloadError",
    "FileError",
    "InternalError",
    "InvalidArgumentError",
    "ModelError",
    "ModelNotInstalledError",
    "ProgressCallback",
    "RuntimeUnavailableError",
    "Separator",
    "SplitsoundError",
    "UnsupportedFormatError",
    "eval",
    "info",
    "istft",
    "load",
    "models",
    "resample",
    "resolve_query",
    "stft",
    "__version__",
]

