"""Bad input raises the right SplitsoundError subclass, never crashes."""

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import splitsound as ss


def test_hierarchy():
    for cls in (
        ss.InvalidArgumentError,
        ss.FileError,
        ss.DecodeError,
        ss.UnsupportedFormatError,
        ss.ModelError,
        ss.RuntimeUnavailableError,
        ss.CancelledError,
        ss.InternalError,
        ss.ModelNotInstalledError,
        ss.DownloadError,
    ):
        assert issubclass(cls, ss.SplitsoundError)
    assert issubclass(ss.UnsupportedFormatError, ss.DecodeError)
    assert issubclass(ss.InvalidArgumentError, ValueError) and issubclass(ss.FileError, OSError)


def test_files(tmp_path):
    with pytest.raises(ss.FileError) as e:
        ss.load(tmp_path / "missing.wav")
    assert e.value.code == "io" and "missing.wav" in str(e.value)
    text = tmp_path / "notes.wav"
    text.write_bytes(b"this is not audio, only text that pretends to be " * 20)
    with pytest.raises(ss.UnsupportedFormatError):
        ss.load(text)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(ss.DecodeError) as e:
        ss.info(empty)
    assert e.value.code == "empty"
    # A WAV header that promises 1000 frames over 100 frames of data.
    header = b"RIFF" + (36 + 2000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    header += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    header += (16000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + (2000).to_bytes(4, "little")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(header + bytes(200))
    with pytest.raises(ss.DecodeError) as e:
        ss.load(truncated)
    assert e.value.code == "truncated"


def test_arrays():
    sep = ss.Separator("builtin:hpss")
    x = np.zeros((2, 44100), dtype=np.float32)
    with pytest.raises(ss.InvalidArgumentError):
        sep(np.zeros((1, 2, 3), dtype=np.float32), 44100)
    with pytest.raises(TypeError):
        sep(x.astype(np.complex64), 44100)
    with pytest.raises(TypeError):
        sep([0.0, 1.0], 44100)  # a list, not an array
    with pytest.raises(ss.InvalidArgumentError) as e:
        sep(x, 5)
    assert e.value.code == "unsupported_sample_rate"
    bad = x.copy()
    bad[1, 7] = np.nan
    with pytest.raises(ss.InvalidArgumentError) as e:
        sep(bad, 44100)
    assert e.value.code == "non_finite"
    with pytest.raises(ss.DecodeError):
        sep(np.zeros((2, 0), dtype=np.float32), 44100)
    with pytest.raises(ss.InvalidArgumentError):
        ss.stft(x, 1024, 256, window="kaiser")
    with pytest.raises(ss.InvalidArgumentError):
        ss.istft(np.zeros((100, 4), dtype=np.complex64), 1024, 256)
    with pytest.raises(ss.InvalidArgumentError):
        ss.resample(x, 44100, 3)


def test_names_and_options(demo, tmp_path, model):
    with pytest.raises(ss.InvalidArgumentError) as e:
        ss.Separator("builtin:nope")
    assert e.value.code == "unknown_separator"
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator("builtin:hpss", device="tpu")
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator("builtin:hpss", options='{"overlap": ')
    sep = ss.Separator("builtin:hpss")
    with pytest.raises(ss.InvalidArgumentError) as e:
        sep.separate_file(demo, tmp_path, stems=["vocals"])
    assert e.value.code == "unknown_stem"
    with pytest.raises(ss.InvalidArgumentError):
        sep.separate_file(demo, tmp_path, format="mp3")
    with pytest.raises(ss.InvalidArgumentError):
        sep.separate_file(demo, tmp_path, format="flac", bits=32)
    with pytest.raises(ss.InvalidArgumentError):
        sep.separate_file(demo, tmp_path, query="the weather tomorrow")
    assert not any(tmp_path.rglob("*.wav")) and not any(tmp_path.rglob("*.flac"))
    with pytest.raises(ss.ModelError):
        ss.Separator(str(demo))  # a FLAC file is not a model package
    with pytest.raises(ss.ModelError) as e:
        ss.Separator(str(model), device="tensorrt:0", strict=True)
    assert e.value.code == "provider_unavailable"
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator(str(model), overlap=1.5)


def test_runtime_unavailable(model):
    # In a fresh interpreter: ONNX Runtime is loaded once per process.
    code = (
        "import splitsound as ss\n"
        "try:\n"
        f"    ss.Separator({str(model)!r}, options='{{\"model\": {{\"runtime_library\": \"/no/libonnxruntime.so\"}}}}')\n"
        "except ss.RuntimeUnavailableError as e:\n"
        "    print('raised', e.code)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPLITSOUND_ORT_LIB", "ORT_DYLIB_PATH")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "raised runtime_unavailable" in out.stdout, out.stdout + out.stderr


def test_finds_the_onnxruntime_wheel_in_this_interpreter(model):
    # No SPLITSOUND_ORT_LIB: the library of the onnxruntime wheel installed in
    # this interpreter (scripts/test-python.sh installs it), found without a subprocess.
    code = (
        "import splitsound as ss\n"
        f"sep = ss.Separator({str(model)!r})\n"
        "print('provider', sep.provider)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPLITSOUND_ORT_LIB", "ORT_DYLIB_PATH")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "provider cpu" in out.stdout, out.stdout + out.stderr


def test_exception_in_progress_cancels(demo, tmp_path):
    class Stop(Exception):
        pass

    def progress(stage, done, total):
        raise Stop()

    with pytest.raises(Stop):
        ss.Separator("builtin:hpss").separate_file(demo, tmp_path, progress=progress)
    assert not any(tmp_path.rglob("*.wav"))


def test_ctrl_c_cancels(demo, tmp_path):
    x, sr = ss.load(demo)
    long = np.tile(x, (1, 10))  # 2 minutes: repet takes seconds
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ss.Separator("builtin:repet")(long, sr)
    timer.join()
