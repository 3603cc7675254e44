"""The splitsound Python API: every function, the dtype/shape matrix, parity with the CLI."""

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import splitsound as ss


def test_load_and_info(demo):
    x, sr = ss.load(demo)
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == 2 and sr == 44100
    assert x.flags["C_CONTIGUOUS"]
    i = ss.info(demo)
    assert i["sample_rate"] == 44100 and i["channels"] == 2 and i["frames"] == x.shape[1]
    assert i["container"] == "flac" and i["duration"] == pytest.approx(x.shape[1] / sr)
    assert ss.load(str(demo))[0].shape == x.shape


def test_separator_properties():
    sep = ss.Separator("builtin:hpss")
    assert sep.name == "builtin:hpss" or sep.name == "hpss"
    assert sep.stems == ["harmonic", "percussive"]
    assert sep.sample_rate is None and sep.provider == "cpu"
    assert sep.output_channels(1) == 1 and sep.output_channels(2) == 2
    assert "builtin:hpss" in ss.BUILTINS and ss.__version__.count(".") == 2
    assert "harmonic" in repr(sep)


def test_separate_sums_to_the_mix(demo):
    x, sr = ss.load(demo)
    x = x[:, : 5 * sr]
    stems = ss.Separator("builtin:hpss")(x, sr)
    assert set(stems) == {"harmonic", "percussive"}
    total = stems["harmonic"] + stems["percussive"]
    assert total.shape == x.shape and total.dtype == np.float32
    assert np.max(np.abs(total - x)) < 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("layout", ["mono", "stereo", "fortran", "strided"])
def test_dtype_and_shape_matrix(demo, dtype, layout):
    x, sr = ss.load(demo)
    x = x[:, : 2 * sr]
    if dtype is np.int16:
        x = np.round(x * 32767).astype(np.int16).astype(np.float32) / 32768  # what int16 input means
    ref = ss.Separator("builtin:hpss")(x if layout != "mono" else x[0], sr)
    if dtype is np.int16:
        arr = np.round(x * 32768).astype(np.int16)
    else:
        arr = x.astype(dtype)
    if layout == "mono":
        arr = arr[0]
    elif layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided":
        wide = np.zeros((2, arr.shape[1] * 2), dtype=arr.dtype)
        wide[:, ::2] = arr
        arr = wide[:, ::2]
    got = ss.Separator("builtin:hpss")(arr, sr)
    for name, want in ref.items():
        assert got[name].shape == want.shape and got[name].dtype == np.float32
        tol = 1e-6 if dtype is not np.float64 else 1e-5
        assert np.max(np.abs(got[name] - want)) <= tol, name


def test_progress_callback_and_tqdm_flag(demo):
    x, sr = ss.load(demo)
    seen = []
    ss.Separator("builtin:hpss")(x[:, :sr], sr, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert seen and all(d <= t for _, d, t in seen)
    assert {s for s, _, _ in seen} <= {"decode", "resample", "analyse", "separate", "synthesise", "write"}
    # progress=True uses tqdm when installed and is silent otherwise.
    ss.Separator("builtin:hpss")(x[:, :sr], sr, progress=True)


def test_separate_file_equals_the_cli(demo, cli, tmp_path):
    sep = ss.Separator("builtin:hpss")
    written = sep.separate_file(demo, tmp_path / "py")
    assert set(written) == {"harmonic", "percussive"}
    subprocess.run([cli, "separate", demo, "-o", tmp_path / "cli", "-m", "builtin:hpss"], check=True, capture_output=True)
    for name, path in written.items():
        assert (tmp_path / "cli" / "mixture" / f"{name}.wav").read_bytes() == open(path, "rb").read()


def test_separate_equals_the_cli_in_float(demo, cli, tmp_path):
    x, sr = ss.load(demo)
    stems = ss.Separator("builtin:center")(x, sr)
    subprocess.run(
        [cli, "separate", demo, "-o", tmp_path, "-m", "builtin:center", "--bits", "32f", "--clip", "none"],
        check=True,
        capture_output=True,
    )
    for name, got in stems.items():
        want, _ = ss.load(tmp_path / "mixture" / f"{name}.wav")
        assert np.array_equal(got, want), name


def test_separate_file_options(demo, tmp_path):
    sep = ss.Separator("builtin:hpss")
    out = sep.separate_file(demo, tmp_path, format="flac", bits=24, query="remove the drums")
    assert list(out) == ["no_percussive", "percussive"] and out["percussive"].endswith(".flac")
    out = sep.separate_file(demo, tmp_path / "one", stems=["harmonic"], bits=32, clip="none")
    assert list(out) == ["harmonic"]
    i = ss.info(out["harmonic"])
    assert i["bytes"] >= 4 * i["channels"] * i["frames"]  # 32-bit samples


def test_wav_headers_read_by_libsndfile(demo, tmp_path):
    """libsndfile (soundfile) reads our WAVs as the format they declare: plain
    PCM at 16 bits, WAVE_FORMAT_EXTENSIBLE at 24 bits, IEEE float at 32."""
    import soundfile as sf

    sep = ss.Separator("builtin:hpss")
    for bits, fmt, subtype in [(16, "WAV", "PCM_16"), (24, "WAVEX", "PCM_24"), (32, "WAV", "FLOAT")]:
        out = sep.separate_file(demo, tmp_path / str(bits), stems=["harmonic"], bits=bits, clip="none")
        info = sf.info(out["harmonic"])
        assert (info.format, info.subtype, info.channels) == (fmt, subtype, 2), (bits, info)
        mine, sr = ss.load(out["harmonic"])
        theirs, sr2 = sf.read(out["harmonic"], dtype="float32", always_2d=True)
        assert sr == sr2 and np.array_equal(mine, theirs.T)


def test_resample():
    sr_in, sr_out = 44100, 16000
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = ss.resample(x, sr_in, sr_out)
    assert y.ndim == 1 and y.dtype == np.float32 and abs(len(y) - sr_out) <= 1
    want = np.sin(2 * np.pi * 1000 * np.arange(len(y)) / sr_out)
    assert np.max(np.abs(y[500:-500] - want[500:-500])) < 1e-2
    stereo = ss.resample(np.stack([x, -x]), sr_in, sr_out)
    assert stereo.shape == (2, len(y)) and np.allclose(stereo[0], -stereo[1], atol=1e-6)


def _torch_stft(x, n_fft, hop, center=True, pad_mode="reflect"):
    """torch.stft's definition, in numpy: periodic Hann, centred, onesided."""
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = 1 + (len(x) - n_fft) // hop
    cols = [np.fft.rfft(window * x[t * hop : t * hop + n_fft]) for t in range(frames)]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_stft_matches_torch_definition_and_round_trips(demo, pad_mode):
    x, sr = ss.load(demo)
    x = x[:, : sr // 2]
    s = ss.stft(x, 1024, 256, pad_mode=pad_mode)
    assert s.shape == (2, 513, 1 + x.shape[1] // 256) and s.dtype == np.complex64
    want = _torch_stft(x[0].astype(np.float64), 1024, 256, pad_mode=pad_mode)
    assert np.max(np.abs(s[0] - want)) < 1e-3 * np.max(np.abs(want))
    assert ss.stft(x[0], 1024, 256, pad_mode=pad_mode).shape == (513, s.shape[2])
    back = ss.istft(s, 1024, 256, length=x.shape[1])
    assert back.shape == x.shape and np.max(np.abs(back - x)) < 1e-5
    assert ss.istft(s[1], 1024, 256, length=x.shape[1]).shape == (x.shape[1],)


def test_eval_scores(demo):
    x, sr = ss.load(demo)
    x = x[:, : 4 * sr]
    rng = np.random.default_rng(0)
    refs = {"a": x, "b": rng.standard_normal(x.shape).astype(np.float32) * 0.1}
    good = ss.eval(refs, {"a": x + 1e-3 * refs["b"], "b": refs["b"] + 1e-3 * x}, sr)
    bad = ss.eval(refs, {"a": refs["b"], "b": x}, sr)
    assert set(good) == {"a", "b"} and set(good["a"]) >= {"sdr", "isr", "sir", "sar", "global_sdr", "si_sdr"}
    assert good["a"]["sdr"] > 30 and bad["a"]["sdr"] < good["a"]["sdr"]


def test_resolve_query():
    r = ss.resolve_query("just the piano", ["drums", "bass", "other", "vocals"])
    assert r["targets"] == ["other"] and r["mode"] == "isolate" and r["notes"]


def test_threads_give_the_same_stems(demo):
    x, sr = ss.load(demo)
    x = x[:, : 3 * sr]
    want = ss.Separator("builtin:hpss")(x, sr)["harmonic"]
    shared = ss.Separator("builtin:hpss")
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: (shared if i % 2 else ss.Separator("builtin:hpss"))(x, sr)["harmonic"], range(8)))
    assert all(np.array_equal(o, want) for o in outs)


def test_gil_is_released_during_separation(demo):
    x, sr = ss.load(demo)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    ss.Separator("builtin:repet")(x, sr)
    stop.set()
    t.join()
    assert len(ticks) > 20  # the other thread kept running while repet worked


def test_model_package(model):
    sep = ss.Separator(str(model), device="cuda:0,cpu")
    assert sep.stems == ["drums", "bass", "other", "vocals"] and sep.sample_rate == 44100
    assert sep.provider in ("cpu",) or sep.provider.startswith("cuda")
    sr = 22050
    mono = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    stems = sep(mono, sr)
    assert all(s.shape == (2, sr) and np.isfinite(s).all() for s in stems.values())
    assert sep.output_channels(1) == 2


def test_ensemble_of_models(model):
    """A list of models is an ensemble: stems matched by name, combined by
    audio-separator's algorithms (core/tests/ensemble.rs checks the numbers)."""
    msst = model.parent.parent / "msst"
    paths = [str(msst / "bs-roformer/ci.json"), str(msst / "mdx23c/ci.json"), str(model)]
    sep = ss.Separator(paths, ensemble="avg_wave", weights=[2.0, 1.0, 1.0])
    assert sep.stems == ["vocals", "instrumental", "drums", "bass", "other"]
    sr = 44100
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr // 4) / sr)).astype(np.float32)
    stems = sep(np.stack([x, x]), sr)
    singles = [ss.Separator(p)(np.stack([x, x]), sr) for p in paths]
    want = (2 * singles[0]["vocals"] + singles[1]["vocals"] + singles[2]["vocals"]) / 4
    assert np.abs(stems["vocals"] - want).max() <= 1e-6 * max(1.0, np.abs(want).max())
    np.testing.assert_array_equal(stems["drums"], singles[2]["drums"])
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator(paths, ensemble="avg")
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator(paths, ensemble="min_wave", weights=[2.0, 1.0, 1.0])
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator(str(model), ensemble="avg_wave")
