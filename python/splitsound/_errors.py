"""The exceptions splitsound raises: one base class, one subclass per kind of
failure. Each instance has ``code``, splitsound-core's stable name for the
error (``"unknown_stem"``, ``"truncated"``, …)."""

from __future__ import annotations


class SplitsoundError(Exception):
    """Base class of every splitsound error."""

    code: str = "error"


class InvalidArgumentError(SplitsoundError, ValueError):
    """An argument splitsound cannot use: a bad shape, rate, name, stem or option."""


class FileError(SplitsoundError, OSError):
    """Reading or writing a file failed (missing file, permissions, full disk)."""


class DecodeError(SplitsoundError):
    """The input is audio splitsound cannot decode: empty, truncated, corrupt or too large."""


class UnsupportedFormatError(DecodeError):
    """The bytes are not a container or codec splitsound supports."""


class ModelError(SplitsoundError):
    """A model package is malformed, or its execution provider or inference failed."""


class ModelNotInstalledError(ModelError):
    """A model name the registries list but the cache lacks (``splitsound.models.pull`` fetches it)."""


class DownloadError(SplitsoundError):
    """Fetching a model failed, or a fetched file did not match its checksum (nothing was installed)."""


class RuntimeUnavailableError(SplitsoundError):
    """ONNX Runtime's library could not be found or loaded (``pip install onnxruntime``)."""


class InternalError(SplitsoundError):
    """A bug in splitsound (a worker thread panicked, say); please report it."""


class CancelledError(SplitsoundError):
    """The work was cancelled."""


__all__ = [
    "SplitsoundError",
    "InvalidArgumentError",
    "FileError",
    "DecodeError",
    "UnsupportedFormatError",
    "ModelError",
    "ModelNotInstalledError",
    "DownloadError",
    "RuntimeUnavailableError",
    "CancelledError",
    "InternalError",
]
