//! Python bindings of splitsound: the `splitsound._splitsound` extension
//! module, wrapped by the `splitsound` package (`python/splitsound/`).
//!
//! Only translation lives here: numpy arrays to and from core's planar
//! buffers, core's errors to the exception classes of `splitsound._errors`,
//! and long calls run on a worker thread without the GIL while the calling
//! thread relays progress and turns Ctrl-C into a cancellation.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use numpy::ndarray::{ArrayViewD, Axis};
use numpy::{Complex32, IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use splitsound_core as core;
use splitsound_core::model::{Fallback, NeuralOptions, Provider};
use splitsound_core::registry::{ModelCache, PullProgress, Registry};
use splitsound_core::{
    AudioBuffer, CancelToken, ClipMode, Error, ErrorKind, FileJobOptions, OutputFormat, PadMode, Progress,
    SampleEncoding, SeparateOptions, Spectrogram, StemSelection, Stft, StftConfig, WindowKind,
};

/// The exception class of `splitsound._errors` for a core error: one per
/// [`ErrorKind`], the same kinds every binding uses.
fn exception_name(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::File => "FileError",
        ErrorKind::Decode => "DecodeError",
        ErrorKind::UnsupportedFormat => "UnsupportedFormatError",
        ErrorKind::Model => "ModelError",
        ErrorKind::ModelNotInstalled => "ModelNotInstalledError",
        ErrorKind::Download => "DownloadError",
        ErrorKind::RuntimeUnavailable => "RuntimeUnavailableError",
        ErrorKind::Cancelled => "CancelledError",
        ErrorKind::Internal => "InternalError",
        _ => "SplitsoundError",
    }
}

/// A core error as an instance of its `splitsound._errors` class, with `.code`.
fn py_err(py: Python<'_>, e: Error) -> PyErr {
    let raise = || -> PyResult<PyErr> {
        let class = py.import("splitsound._errors")?.getattr(exception_name(&e))?;
        let instance = class.call1((e.to_string(),))?;
        instance.setattr("code", e.code())?;
        Ok(PyErr::from_value(instance))
    };
    raise().unwrap_or_else(|import_failed| import_failed)
}

fn invalid(py: Python<'_>, name: &'static str, expected: &str, actual: impl ToString) -> PyErr {
    py_err(py, Error::InvalidArgument { name, expected: expected.into(), actual: actual.to_string() })
}

/// Planar channels from a numpy array: float32, float64 or int16 (scaled by
/// 1/32768), 1-D (mono) or 2-D `[channels, frames]`, any memory order.
fn channels_of(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<(Vec<Vec<f32>>, usize)> {
    fn rows<T: Copy>(py: Python<'_>, a: ArrayViewD<'_, T>, f: impl Fn(T) -> f32) -> PyResult<(Vec<Vec<f32>>, usize)> {
        match a.ndim() {
            1 => Ok((vec![a.iter().map(|&v| f(v)).collect()], 1)),
            2 => Ok((a.axis_iter(Axis(0)).map(|row| row.iter().map(|&v| f(v)).collect()).collect(), 2)),
            n => Err(invalid(py, "x", "a 1-D (mono) or 2-D [channels, frames] array", format!("{n} dimensions"))),
        }
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        return rows(py, a.as_array(), |v| v);
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        return rows(py, a.as_array(), |v| v as f32);
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, i16>>() {
        return rows(py, a.as_array(), |v| f32::from(v) / 32768.0);
    }
    let kind = x.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| x.get_type().to_string());
    Err(PyTypeError::new_err(format!("expected a numpy array of float32, float64 or int16, got {kind}")))
}

/// A numpy array of float32, float64 or integers as row-major `f32`s; at most
/// `rank` dimensions, leading ones of size 1 allowed beyond that.
fn flat_of(py: Python<'_>, x: &Bound<'_, PyAny>, name: &'static str, rank: usize) -> PyResult<Vec<f32>> {
    fn flat<T: Copy>(a: ArrayViewD<'_, T>, f: impl Fn(T) -> f32) -> (Vec<usize>, Vec<f32>) {
        (a.shape().to_vec(), a.iter().map(|&v| f(v)).collect())
    }
    let (shape, v) = if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        flat(a.as_array(), |v| v)
    } else if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        flat(a.as_array(), |v| v as f32)
    } else if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, i64>>() {
        flat(a.as_array(), |v| v as f32)
    } else if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, i32>>() {
        flat(a.as_array(), |v| v as f32)
    } else {
        let kind = x.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| x.get_type().to_string());
        return Err(PyTypeError::new_err(format!("{name}: expected a numpy array of floats or integers, got {kind}")));
    };
    if shape.len() > rank && shape[..shape.len() - rank].iter().any(|&d| d != 1) {
        return Err(invalid(
            py,
            name,
            &format!("at most {rank} dimensions (plus leading ones of size 1)"),
            format!("shape {shape:?}"),
        ));
    }
    Ok(v)
}

/// Planar channels as a numpy array: `[channels, frames]`, or 1-D when `dims` is 1.
fn to_numpy<'py>(py: Python<'py>, channels: Vec<Vec<f32>>, dims: usize) -> PyResult<Bound<'py, PyAny>> {
    if dims == 1 && channels.len() == 1 {
        let only = channels.into_iter().next().unwrap_or_default();
        return Ok(only.into_pyarray(py).into_any());
    }
    let (c, n) = (channels.len(), channels.first().map_or(0, Vec::len));
    let flat: Vec<f32> = channels.into_iter().flatten().collect();
    Ok(PyArray1::from_vec(py, flat).reshape([c, n])?.into_any())
}

fn audio_of(py: Python<'_>, x: &Bound<'_, PyAny>, sr: u32) -> PyResult<(AudioBuffer, usize)> {
    let (channels, dims) = channels_of(py, x)?;
    Ok((AudioBuffer::new(sr, channels).map_err(|e| py_err(py, e))?, dims))
}

/// Runs `work` on a worker thread without the GIL. The calling thread hands
/// each message `work` reports to `relay`, and turns Ctrl-C (KeyboardInterrupt)
/// or an error from `relay` into a cancellation, re-raising it once the worker
/// has stopped.
fn relayed<M: Send, T: Send>(
    py: Python<'_>,
    mut relay: impl FnMut(M) -> PyResult<()>,
    work: impl FnOnce(&(dyn Fn(M) + Sync), &CancelToken) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel::<M>();
    // Only this thread receives; the mutex makes the receiver shareable with `detach`.
    let rx = Mutex::new(rx);
    let mut raised: Option<PyErr> = None;
    let result = std::thread::scope(|scope| {
        let token = cancel.clone();
        let worker = scope.spawn(move || {
            let report = move |m: M| {
                let _ = tx.send(m);
            };
            work(&report, &token)
        });
        loop {
            let next =
                py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(Duration::from_millis(50)));
            match next {
                Ok(m) => {
                    if raised.is_none()
                        && let Err(e) = relay(m)
                    {
                        raised = Some(e);
                        cancel.cancel();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if raised.is_none()
                && let Err(e) = py.check_signals()
            {
                raised = Some(e);
                cancel.cancel();
            }
        }
        py.detach(|| worker.join())
    });
    let result = result.map_err(|_| py_err(py, Error::Internal { detail: "the worker thread panicked".into() }))?;
    if let Some(e) = raised {
        return Err(e);
    }
    result.map_err(|e| py_err(py, e))
}

/// [`relayed`] for a separation: progress goes to `progress(stage, done, total)`.
fn interruptible<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&SeparateOptions<'_>) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let relay = |p: Progress| match progress {
        Some(cb) => cb.call1((p.stage.name(), p.done, p.total)).map(drop),
        None => Ok(()),
    };
    relayed(py, relay, |report, cancel| work(&SeparateOptions { progress: Some(report), cancel: Some(cancel) }))
}

/// Decodes a file: `(audio, sample_rate)` with `audio` float32 `[channels, frames]`.
#[pyfunction]
fn load<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(Bound<'py, PyAny>, u32)> {
    let audio = py.detach(|| core::decode_file(&path, &core::DecodeOptions::default())).map_err(|e| py_err(py, e))?;
    let rate = audio.sample_rate();
    Ok((to_numpy(py, audio.into_channels(), 2)?, rate))
}

/// What a file holds, without decoding it.
#[pyfunction]
fn info<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let i = py.detach(|| core::probe(&path)).map_err(|e| py_err(py, e))?;
    let d = PyDict::new(py);
    d.set_item("container", &i.container)?;
    d.set_item("codec", &i.codec)?;
    d.set_item("sample_rate", i.sample_rate)?;
    d.set_item("channels", i.channels)?;
    d.set_item("frames", i.frames)?;
    d.set_item("duration", i.duration_secs)?;
    d.set_item("bits_per_sample", i.bits_per_sample)?;
    d.set_item("tracks", i.tracks)?;
    d.set_item("bytes", i.bytes)?;
    Ok(d)
}

/// Resamples `x` (1-D or `[channels, frames]`) from `sr_in` to `sr_out`.
#[pyfunction]
fn resample<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, sr_in: u32, sr_out: u32) -> PyResult<Bound<'py, PyAny>> {
    let (audio, dims) = audio_of(py, x, sr_in)?;
    core::check_sample_rate(sr_out).map_err(|e| py_err(py, e))?;
    let out = py.detach(|| core::resample(&audio, sr_out)).map_err(|e| py_err(py, e))?;
    to_numpy(py, out.into_channels(), dims)
}

// The Python keyword arguments of `stft`/`istft`, one by one.
#[allow(clippy::too_many_arguments)]
fn stft_config(
    py: Python<'_>,
    n_fft: usize,
    hop_length: Option<usize>,
    win_length: Option<usize>,
    window: &str,
    center: bool,
    pad_mode: &str,
    normalized: bool,
) -> PyResult<StftConfig> {
    let window: WindowKind = window.parse().map_err(|e| py_err(py, e))?;
    let pad_mode: PadMode = pad_mode.parse().map_err(|e| py_err(py, e))?;
    Ok(StftConfig {
        n_fft,
        hop_length: hop_length.unwrap_or(n_fft / 4),
        win_length,
        window,
        center,
        pad_mode,
        normalized,
    })
}

/// `torch.stft(x, n_fft, hop_length, win_length, window=torch.hann_window(win_length),
/// center, pad_mode, normalized, onesided=True, return_complex=True)`: complex64
/// `[freq, frames]`, or `[channels, freq, frames]` for a 2-D input.
#[pyfunction]
#[pyo3(signature = (x, n_fft, hop_length=None, win_length=None, window="hann", center=true, pad_mode="reflect", normalized=false))]
#[allow(clippy::too_many_arguments)]
fn stft<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_fft: usize,
    hop_length: Option<usize>,
    win_length: Option<usize>,
    window: &str,
    center: bool,
    pad_mode: &str,
    normalized: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = stft_config(py, n_fft, hop_length, win_length, window, center, pad_mode, normalized)?;
    let (channels, dims) = channels_of(py, x)?;
    let specs = py
        .detach(|| {
            let mut stft = Stft::new(cfg)?;
            channels.iter().map(|c| stft.forward(c)).collect::<Result<Vec<Spectrogram>, Error>>()
        })
        .map_err(|e| py_err(py, e))?;
    let (bins, frames) = (cfg.bins(), specs.first().map_or(0, |s| s.frames));
    let mut out = Vec::with_capacity(specs.len() * bins * frames);
    for s in &specs {
        for b in 0..bins {
            out.extend((0..frames).map(|t| s.get(b, t)));
        }
    }
    let arr = PyArray1::<Complex32>::from_vec(py, out);
    Ok(if dims == 1 {
        arr.reshape([bins, frames])?.into_any()
    } else {
        arr.reshape([specs.len(), bins, frames])?.into_any()
    })
}

/// `torch.istft` with the same options: float32 `[samples]` or `[channels, samples]`.
#[pyfunction]
#[pyo3(signature = (spec, n_fft, hop_length=None, win_length=None, window="hann", center=true, normalized=false, length=None))]
#[allow(clippy::too_many_arguments)]
fn istft<'py>(
    py: Python<'py>,
    spec: PyReadonlyArrayDyn<'py, Complex32>,
    n_fft: usize,
    hop_length: Option<usize>,
    win_length: Option<usize>,
    window: &str,
    center: bool,
    normalized: bool,
    length: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = stft_config(py, n_fft, hop_length, win_length, window, center, "reflect", normalized)?;
    let a = spec.as_array();
    let (dims, a3) = match a.ndim() {
        2 => (1, a.insert_axis(Axis(0))),
        3 => (2, a),
        n => return Err(invalid(py, "spec", "a complex [freq, frames] or [channels, freq, frames] array", n)),
    };
    let shape = a3.shape().to_vec();
    if shape[1] != cfg.bins() {
        return Err(invalid(py, "spec", &format!("{} frequency bins (n_fft / 2 + 1)", cfg.bins()), shape[1]));
    }
    let specs: Vec<Spectrogram> = a3
        .axis_iter(Axis(0))
        .map(|ch| {
            let mut s = Spectrogram::zeros(shape[1], shape[2]);
            for t in 0..shape[2] {
                for (b, v) in s.frame_mut(t).iter_mut().enumerate() {
                    *v = ch[[b, t]];
                }
            }
            s
        })
        .collect();
    let out = py
        .detach(|| {
            let mut stft = Stft::new(cfg)?;
            specs.iter().map(|s| stft.inverse(s, length)).collect::<Result<Vec<Vec<f32>>, Error>>()
        })
        .map_err(|e| py_err(py, e))?;
    to_numpy(py, out, dims)
}

/// BSS Eval v4 (museval's defaults) and global SDR per stem:
/// `{stem: {"sdr", "isr", "sir", "sar", "global_sdr", "si_sdr"}}`.
#[pyfunction]
fn eval<'py>(
    py: Python<'py>,
    references: &Bound<'py, PyDict>,
    estimates: &Bound<'py, PyDict>,
    sr: u32,
) -> PyResult<Bound<'py, PyDict>> {
    let (mut names, mut refs, mut ests) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v) in references.iter() {
        let name: String = k.extract()?;
        let est = estimates
            .get_item(&name)?
            .ok_or_else(|| invalid(py, "estimates", "the same stems as references", format!("no `{name}`")))?;
        refs.push(audio_of(py, &v, sr)?.0);
        ests.push(audio_of(py, &est, sr)?.0);
        names.push(name);
    }
    let scores = py.detach(|| core::eval::score_stems(&names, &refs, &ests)).map_err(|e| py_err(py, e))?;
    let out = PyDict::new(py);
    for s in scores {
        let d = PyDict::new(py);
        d.set_item("sdr", s.sdr)?;
        d.set_item("isr", s.isr)?;
        d.set_item("sir", s.sir)?;
        d.set_item("sar", s.sar)?;
        d.set_item("global_sdr", s.global_sdr)?;
        d.set_item("si_sdr", s.si_sdr)?;
        out.set_item(s.stem, d)?;
    }
    Ok(out)
}

/// The `onnxruntime` wheel's library, found in this interpreter without
/// importing it (`importlib.util.find_spec`), unless the environment names a
/// library (`SPLITSOUND_ORT_LIB`, `ORT_DYLIB_PATH`), which then comes first.
fn onnxruntime_wheel(py: Python<'_>) -> Option<PathBuf> {
    if ["SPLITSOUND_ORT_LIB", "ORT_DYLIB_PATH"].iter().any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty())) {
        return None;
    }
    let spec = py.import("importlib.util").ok()?.call_method1("find_spec", ("onnxruntime",)).ok()?;
    let origin: PathBuf = spec.getattr("origin").ok()?.extract().ok()?;
    core::model::package_library(origin.parent()?)
}

/// `model`: one name or path, or a list of them for an ensemble.
#[derive(FromPyObject)]
enum ModelArg {
    One(String),
    Many(Vec<String>),
}

impl From<String> for ModelArg {
    fn from(s: String) -> Self {
        ModelArg::One(s)
    }
}

/// A separator: a built-in or a model package, ready to separate arrays and files.
#[pyclass(module = "splitsound._splitsound", name = "Separator", subclass, frozen)]
struct PySeparator {
    inner: Mutex<Box<dyn core::Separator>>,
    name: String,
    stems: Vec<String>,
    sample_rate: Option<u32>,
    provider: String,
}

#[pymethods]
impl PySeparator {
    #[new]
    #[pyo3(
        signature = (model="builtin:hpss".to_string().into(), device=None, *, strict=false, overlap=None, shifts=None, batch=1, threads=None, seed=0, options=None, ensemble=None, weights=None, description=None, ode_noise=None, watermark_message=None),
        text_signature = "(model='builtin:hpss', device=None, *, strict=False, overlap=None, shifts=None, batch=1, threads=None, seed=0, options=None, ensemble=None, weights=None, description=None, ode_noise=None, watermark_message=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: ModelArg,
        device: Option<&str>,
        strict: bool,
        overlap: Option<f64>,
        shifts: Option<u32>,
        batch: usize,
        threads: Option<usize>,
        seed: u64,
        options: Option<&str>,
        ensemble: Option<&str>,
        weights: Option<Vec<f64>>,
        description: Option<String>,
        ode_noise: Option<&Bound<'_, PyAny>>,
        watermark_message: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut opts: NeuralOptions = match options {
            Some(json) => serde_json::from_str(json).map_err(|e| invalid(py, "options", "NeuralOptions JSON", e))?,
            None => NeuralOptions::default(),
        };
        if let Some(d) = device {
            opts.model.providers = Provider::parse_list(d).map_err(|e| py_err(py, e))?;
        }
        if opts.model.runtime_library.is_none() {
            opts.model.runtime_library = onnxruntime_wheel(py);
        }
        if strict {
            opts.model.fallback = Fallback::Error;
        }
        opts.overlap = overlap.or(opts.overlap);
        opts.shifts = shifts.or(opts.shifts);
        opts.batch = batch;
        opts.seed = seed;
        opts.model.intra_threads = threads.or(opts.model.intra_threads);
        // A text-prompted model (SAM-Audio): what to separate, and the draws of a reference run.
        let has_description = description.is_some();
        if description.is_some() {
            opts.prompt.description = description;
        }
        if let Some(a) = ode_noise {
            opts.prompt.ode_noise = Some(flat_of(py, a, "ode_noise", 3)?);
        }
        if let Some(a) = watermark_message {
            opts.prompt.watermark_message = Some(flat_of(py, a, "watermark_message", 2)?);
        }
        let sep = match model {
            ModelArg::One(spec) => {
                if ensemble.is_some() || weights.is_some() {
                    return Err(invalid(py, "ensemble", "a list of models", "one model"));
                }
                py.detach(move || core::load_separator(&spec, opts))
            }
            ModelArg::Many(specs) => {
                let algorithm = match ensemble {
                    Some(a) => a.parse().map_err(|e| py_err(py, e))?,
                    None => core::ensemble::EnsembleAlgorithm::default(),
                };
                py.detach(move || core::load_ensemble(&specs, algorithm, weights, opts))
            }
        }
        .map_err(|e| py_err(py, e))?;
        if has_description && !sep.text_prompted() {
            return Err(invalid(py, "description", "a text-prompted model (SAM-Audio)", sep.name()));
        }
        Ok(Self {
            name: sep.name().to_string(),
            stems: sep.stems().to_vec(),
            sample_rate: sep.sample_rate(),
            provider: sep.runs_on(),
            inner: Mutex::new(sep),
        })
    }

    /// The separator's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
    /// Stems it produces, in order.
    #[getter]
    fn stems(&self) -> Vec<String> {
        self.stems.clone()
    }
    /// The rate it works at (inputs are resampled to it and back), or None for any rate.
    #[getter]
    fn sample_rate(&self) -> Option<u32> {
        self.sample_rate
    }
    /// Where it computes: "cpu", or the execution provider a model runs on.
    #[getter]
    fn provider(&self) -> &str {
        &self.provider
    }

    /// A text-prompted model (SAM-Audio): what the next separations separate
    /// ("a dog barking"). Other separators raise InvalidArgumentError.
    fn set_description(&self, py: Python<'_>, description: &str) -> PyResult<()> {
        let mut sep = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        sep.set_description(description).map_err(|e| py_err(py, e))
    }

    /// Channels of each stem for an input of `channels` channels.
    fn output_channels(&self, py: Python<'_>, channels: usize) -> PyResult<usize> {
        let sep = py.detach(|| self.inner.lock().unwrap_or_else(|e| e.into_inner()).output_channels(channels));
        Ok(sep)
    }

    /// Separates `x` (1-D or `[channels, frames]`, float32/float64/int16) at
    /// `sr`: `{stem: float32 array}` at `sr`, shaped like `x` for the
    /// built-ins. `progress(stage, done, total)` is called on this thread.
    #[pyo3(signature = (x, sr, progress=None))]
    fn separate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        sr: u32,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (audio, dims) = audio_of(py, x, sr)?;
        let stems = interruptible(py, progress, |call| {
            let mut sep = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            sep.separate(&audio, call)
        })?;
        let out = PyDict::new(py);
        for (name, buf) in stems.into_vec() {
            let chans = buf.into_channels();
            let d = if chans.len() == 1 { dims } else { 2 };
            out.set_item(name, to_numpy(py, chans, d)?)?;
        }
        Ok(out)
    }

    /// Separates a file into `out_dir/<input name>/<stem>.<format>` (streaming,
    /// written atomically): `{stem: path}`.
    #[pyo3(signature = (path, out_dir, *, format="wav", bits=16, clip="rescale", stems=None, query=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn separate_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        out_dir: PathBuf,
        format: &str,
        bits: u32,
        clip: &str,
        stems: Option<Vec<String>>,
        query: Option<String>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut opts = FileJobOptions::default();
        let err = |e| py_err(py, e);
        opts.write.format = format.parse::<OutputFormat>().map_err(err)?;
        opts.write.encoding = SampleEncoding::from_bits(bits).map_err(err)?;
        opts.write.clip = clip.parse::<ClipMode>().map_err(err)?;
        opts.selection = match (stems, query) {
            (Some(_), Some(_)) => return Err(invalid(py, "stems", "stems or query, not both", "both")),
            (Some(s), None) => StemSelection::Stems(s),
            (None, Some(q)) => StemSelection::Query(q),
            (None, None) => StemSelection::All,
        };
        let report = interruptible(py, progress, |call| {
            let mut sep = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            core::separate_file(sep.as_mut(), &path, &out_dir, &opts, call)
        })?;
        let out = PyDict::new(py);
        for s in report.stems {
            out.set_item(s.name, s.path.to_string_lossy().into_owned())?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("Separator({:?}, stems={:?}, provider={:?})", self.name, self.stems, self.provider)
    }
}

/// Resolves a description (`"remove the vocals"`) against stem names:
/// `{"targets": [...], "mode": "isolate" | "remove", "notes": [...]}`.
#[pyfunction]
fn resolve_query<'py>(py: Python<'py>, query: &str, stems: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
    let r = core::resolve_query(query, &stems).map_err(|e| py_err(py, e))?;
    let d = PyDict::new(py);
    d.set_item("targets", r.targets)?;
    d.set_item("mode", r.mode.name())?;
    d.set_item("notes", r.notes)?;
    Ok(d)
}

/// The registries: the compiled-in one, $SPLITSOUND_REGISTRY's, then `registry`'s.
fn registries(py: Python<'_>, registry: Option<Vec<String>>) -> PyResult<Registry> {
    let sources = registry.unwrap_or_default();
    py.detach(|| Registry::load(&sources)).map_err(|e| py_err(py, e))
}

fn model_cache(py: Python<'_>) -> PyResult<ModelCache> {
    ModelCache::from_env().map_err(|e| py_err(py, e))
}

/// The models (JSON): those the registries offer, or only the installed ones.
#[pyfunction]
#[pyo3(signature = (installed=false, registry=None))]
fn _models_list(py: Python<'_>, installed: bool, registry: Option<Vec<String>>) -> PyResult<String> {
    let cache = model_cache(py)?;
    let reg = if installed { None } else { Some(registries(py, registry)?) };
    let rows = py.detach(|| core::registry::list(&cache, reg.as_ref())).map_err(|e| py_err(py, e))?;
    Ok(serde_json::to_string(&rows).expect("listings serialise"))
}

/// Fetches a model by name or URL into the cache; the path that opens it.
/// `progress(done, total)` (bytes) is called on this thread.
#[pyfunction]
#[pyo3(signature = (target, registry=None, progress=None))]
fn _models_pull(
    py: Python<'_>,
    target: &str,
    registry: Option<Vec<String>>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let cache = model_cache(py)?;
    let reg = registries(py, registry)?;
    let entry = reg.lookup(target).map_err(|e| py_err(py, e))?.clone();
    let relay = |p: PullProgress| match progress {
        Some(cb) => cb.call1((p.done, p.total)).map(drop),
        None => Ok(()),
    };
    let installed = relayed(py, relay, |report, cancel| cache.pull(&entry, &mut |p| report(p.clone()), cancel))?;
    Ok(installed.load_path().to_string_lossy().into_owned())
}

/// Removes a model from the cache; False when it was not installed.
#[pyfunction]
fn _models_remove(py: Python<'_>, name: &str) -> PyResult<bool> {
    let cache = model_cache(py)?;
    py.detach(|| cache.remove(name)).map_err(|e| py_err(py, e))
}

/// `{model: [file checks]}` (JSON) for one installed model, or all of them.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn _models_verify(py: Python<'_>, name: Option<&str>) -> PyResult<String> {
    let cache = model_cache(py)?;
    let checks = py.detach(|| cache.verify_models(name)).map_err(|e| py_err(py, e))?;
    let out: serde_json::Map<String, serde_json::Value> =
        checks.into_iter().map(|(n, c)| (n, serde_json::to_value(c).expect("checks serialise"))).collect();
    Ok(serde_json::Value::Object(out).to_string())
}

/// The cache folder ($SPLITSOUND_MODELS, else the platform's cache dir).
#[pyfunction]
fn _models_cache_dir(py: Python<'_>) -> PyResult<String> {
    Ok(model_cache(py)?.root().to_string_lossy().into_owned())
}

#[pymodule]
fn _splitsound(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", core::VERSION)?;
    m.add("BUILTINS", core::builtin::BUILTIN_NAMES.iter().map(|n| format!("builtin:{n}")).collect::<Vec<_>>())?;
    m.add_class::<PySeparator>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(stft, m)?)?;
    m.add_function(wrap_pyfunction!(istft, m)?)?;
    m.add_function(wrap_pyfunction!(eval, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_query, m)?)?;
    m.add_function(wrap_pyfunction!(_models_list, m)?)?;
    m.add_function(wrap_pyfunction!(_models_pull, m)?)?;
    m.add_function(wrap_pyfunction!(_models_remove, m)?)?;
    m.add_function(wrap_pyfunction!(_models_verify, m)?)?;
    m.add_function(wrap_pyfunction!(_models_cache_dir, m)?)?;
    Ok(())
}
