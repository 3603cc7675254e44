"""Models by name: the registries and the local cache (``splitsound model …`` on the command line).

    >>> from splitsound import models
    >>> [m["name"] for m in models.list()]                  # what the registries offer
    >>> path = models.pull("uvr-mdx-net-voc-ft", progress=True)  # resumable, sha256-checked
    >>> sep = splitsound.Separator("uvr-mdx-net-voc-ft")   # an installed name loads offline

The cache is ``$SPLITSOUND_MODELS``, else the platform's cache folder;
``$SPLITSOUND_REGISTRY`` (files or URLs, space-separated) and ``registry=``
add registries after the compiled-in one. A separator never downloads: a name
the cache lacks raises :class:`ModelNotInstalledError` naming what to fetch.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Callable, Optional, Union

from . import _splitsound
from ._errors import DownloadError, ModelNotInstalledError

PullProgress = Callable[[int, int], Any]


def list(installed: bool = False, registry: Optional[builtins.list[str]] = None) -> builtins.list[dict[str, Any]]:
    """The models the registries offer (only those in the cache with
    ``installed=True``): name, family, stems, description, license, sdr,
    files, size (bytes), installed, path."""
    rows: builtins.list[dict[str, Any]] = json.loads(_splitsound._models_list(installed, registry))
    return rows


def pull(
    model: str,
    registry: Optional[builtins.list[str]] = None,
    progress: Union[bool, PullProgress, None] = None,
) -> str:
    """Fetches ``model`` (a name, or the URL of a file a registry lists) into the
    cache and returns the path that opens it. An interrupted download resumes;
    each file's SHA-256 is checked before anything is installed
    (:class:`DownloadError` otherwise). ``progress(done, total)`` gets bytes;
    ``True`` shows a tqdm bar if tqdm is installed. Ctrl-C cancels."""
    bar = None
    callback: Optional[PullProgress]
    if progress is True:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            callback = None
        else:
            bar = tqdm(unit="B", unit_scale=True, desc=model, leave=False)

            def callback(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

    elif progress is False or progress is None:
        callback = None
    else:
        callback = progress
    try:
        path: str = _splitsound._models_pull(model, registry, callback)
        return path
    finally:
        if bar is not None:
            bar.close()


def remove(model: str) -> bool:
    """Removes ``model`` from the cache; False if it was not there."""
    removed: bool = _splitsound._models_remove(model)
    return removed


def verify(model: Optional[str] = None) -> dict[str, builtins.list[dict[str, Any]]]:
    """Checks the cached files of ``model`` (every installed model by default)
    against their sizes and SHA-256: ``{model: [{"status": "ok" | "missing" |
    "wrong_size" | "wrong_sha256", "file": …}, …]}``."""
    checks: dict[str, builtins.list[dict[str, Any]]] = json.loads(_splitsound._models_verify(model))
    return checks


def cache_dir() -> str:
    """The cache folder."""
    path: str = _splitsound._models_cache_dir()
    return path


__all__ = ["DownloadError", "ModelNotInstalledError", "PullProgress", "cache_dir", "list", "pull", "remove", "verify"]
