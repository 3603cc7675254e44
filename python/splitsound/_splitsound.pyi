# Type stubs of the extension module (python/src/lib.rs). mypy.stubtest checks them
# against the built module in the tests, so they cannot drift.
from os import PathLike
from typing import Any, Callable, Optional, Union

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_Path = Union[str, PathLike[str]]
_Audio = npt.NDArray[Any]
_Progress = Optional[Callable[[str, int, int], Any]]

__all__ = [
    "__version__",
    "BUILTINS",
    "Separator",
    "eval",
    "info",
    "istft",
    "load",
    "resample",
    "resolve_query",
    "stft",
    "_models_cache_dir",
    "_models_list",
    "_models_pull",
    "_models_remove",
    "_models_verify",
]

__version__: str
BUILTINS: list[str]

def load(path: _Path) -> tuple[npt.NDArray[np.float32], int]: ...
def info(path: _Path) -> dict[str, Any]: ...
def resample(x: _Audio, sr_in: int, sr_out: int) -> npt.NDArray[np.float32]: ...
def stft(
    x: _Audio,
    n_fft: int,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    normalized: bool = False,
) -> npt.NDArray[np.complex64]: ...
def istft(
    spec: npt.NDArray[np.complex64],
    n_fft: int,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: str = "hann",
    center: bool = True,
    normalized: bool = False,
    length: Optional[int] = None,
) -> npt.NDArray[np.float32]: ...
def eval(references: dict[str, _Audio], estimates: dict[str, _Audio], sr: int) -> dict[str, dict[str, float]]: ...
def resolve_query(query: str, stems: list[str]) -> dict[str, Any]: ...
def _models_list(installed: bool = False, registry: Optional[list[str]] = None) -> str: ...
def _models_pull(
    target: str, registry: Optional[list[str]] = None, progress: Optional[Callable[[int, int], Any]] = None
) -> str: ...
def _models_remove(name: str) -> bool: ...
def _models_verify(name: Optional[str] = None) -> str: ...
def _models_cache_dir() -> str: ...

@disjoint_base
class Separator:
    def __new__(
        cls,
        model: Union[str, list[str]] = "builtin:hpss",
        device: Optional[str] = None,
        *,
        strict: bool = False,
        overlap: Optional[float] = None,
        shifts: Optional[int] = None,
        batch: int = 1,
        threads: Optional[int] = None,
        seed: int = 0,
        options: Optional[str] = None,
        ensemble: Optional[str] = None,
        weights: Optional[list[float]] = None,
        description: Optional[str] = None,
        ode_noise: Optional[npt.ArrayLike] = None,
        watermark_message: Optional[npt.ArrayLike] = None,
    ) -> Separator: ...
    @property
    def name(self) -> str: ...
    @property
    def stems(self) -> list[str]: ...
    @property
    def sample_rate(self) -> Optional[int]: ...
    @property
    def provider(self) -> str: ...
    def set_description(self, description: str) -> None: ...
    def output_channels(self, channels: int) -> int: ...
    def separate(self, x: _Audio, sr: int, progress: _Progress = None) -> dict[str, npt.NDArray[np.float32]]: ...
    def separate_file(
        self,
        path: _Path,
        out_dir: _Path,
        *,
        format: str = "wav",
        bits: int = 16,
        clip: str = "rescale",
        stems: Optional[list[str]] = None,
        query: Optional[str] = None,
        progress: _Progress = None,
    ) -> dict[str, str]: ...
