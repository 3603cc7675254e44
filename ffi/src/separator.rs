//! Offline separation: options, the separator handle, buffers and files,
//! progress and cancellation.

use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use splitsound_core::model::{Fallback, NeuralOptions, Provider};
use splitsound_core::{
    AudioBuffer, CancelToken, ClipMode, FileJobOptions, FileJobReport, OutputFormat, Progress, SampleEncoding,
    SeparateOptions, Separator, Stage, StemSelection,
    ensemble::EnsembleAlgorithm,
    realtime::{ThreadedOptions, Underrun},
};

use crate::audio::{decode_options, splitsound_decode_limits};
use crate::handle::{free_handle, get, get_str, give, handle, handle_mut, new_default, with_mut};
use crate::status::{Failure, guard, splitsound_status};
use crate::strings::{arg_path, arg_str, arg_strs, float_ptrs, need, nth};

/// How to open a separator: execution providers, threads, overlap, shifts, …
/// (ignored by the built-ins), and the real-time worker's settings.
/// Thread safety: not shared; once built, it may be passed to any thread.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Default)]
pub struct splitsound_options {
    pub(crate) neural: NeuralOptions,
    pub(crate) rt: ThreadedOptions,
}

/// A separator: a built-in or a neural model, ready to separate.
/// Thread safety: one thread at a time (it may move between threads).
#[allow(non_camel_case_types)]
pub struct splitsound_separator {
    pub(crate) inner: Box<dyn Separator>,
}

/// A cancellation flag. Thread safety: `splitsound_cancel_request` may be
/// called from any thread, including a progress callback, while a separation
/// that was given the flag runs.
#[allow(non_camel_case_types)]
#[derive(Debug, Default)]
pub struct splitsound_cancel {
    token: CancelToken,
}

impl splitsound_cancel {
    pub(crate) fn token(&self) -> &CancelToken {
        &self.token
    }
}

/// Options of `splitsound_separator_separate_file`: output format, sample
/// encoding, clipping, which stems, decoding limits.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Default)]
pub struct splitsound_file_options {
    opts: FileJobOptions,
}

/// What `splitsound_separator_separate_file` wrote.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct splitsound_report {
    report: FileJobReport,
}

/// What a progress report refers to.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum splitsound_stage {
    Decode = 0,
    Resample = 1,
    /// Spectral analysis (STFT).
    Analyse = 2,
    /// Masking, filtering or model inference.
    Separate = 3,
    /// Inverse transform and overlap-add.
    Synthesise = 4,
    Write = 5,
}

/// Output file formats, for `splitsound_file_options_set_format`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum splitsound_format {
    Wav = 0,
    Flac = 1,
}

/// What to do with samples beyond ±1, for `splitsound_file_options_set_clip`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum splitsound_clip {
    /// Scale each stem down so its peak fits (the default).
    Rescale = 0,
    /// Clamp samples to ±1.
    Clamp = 1,
    /// Write as they are (32-bit float WAV keeps them; integers clamp).
    None = 2,
}

/// Called with progress: `done` out of `total` units of `stage`. Calls are
/// serialised but may come from a thread splitsound started; keep it short.
/// To cancel from here, call `splitsound_cancel_request`.
#[allow(non_camel_case_types)]
pub type splitsound_progress_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, stage: splitsound_stage, done: u64, total: u64)>;

// ----- options ------------------------------------------------------------------------------

/// New options with every default: providers `cpu`, the model's overlap and shifts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_new(out: *mut *mut splitsound_options) -> splitsound_status {
    new_default(out)
}

/// Frees options; NULL is a no-op. Separators made from them keep their own copy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_free(p: *mut splitsound_options) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

fn with_options(
    opts: *mut splitsound_options,
    f: impl FnOnce(&mut splitsound_options) -> Result<(), Failure>,
) -> splitsound_status {
    with_mut(opts, "options", f)
}

/// Execution providers in order of preference, comma-separated: `"cuda:0,cpu"`.
/// Known names: `cpu`, `cuda[:N]`, `tensorrt[:N]`, `coreml`, `directml[:N]`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_providers(
    opts: *mut splitsound_options,
    providers: *const c_char,
) -> splitsound_status {
    with_options(opts, |o| {
        // SAFETY: a string or NULL.
        let list = unsafe { arg_str(providers, "providers") }?;
        o.neural.model.providers = Provider::parse_list(list)?;
        Ok(())
    })
}

/// `true`: fail with `SPLITSOUND_STATUS_PROVIDER_UNAVAILABLE` when the first
/// provider cannot run. `false` (default): fall back along the list to the CPU.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_strict_providers(
    opts: *mut splitsound_options,
    strict: bool,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.model.fallback = if strict { Fallback::Error } else { Fallback::NextThenCpu };
        Ok(())
    })
}

/// Threads for one operator; 0 lets ONNX Runtime choose.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_threads(
    opts: *mut splitsound_options,
    threads: usize,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.model.intra_threads = (threads > 0).then_some(threads);
        Ok(())
    })
}

/// Overlap of consecutive segments in [0, 1); negative restores the model's default.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_overlap(
    opts: *mut splitsound_options,
    overlap: f64,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.overlap = (overlap >= 0.0 || overlap.is_nan()).then_some(overlap);
        Ok(())
    })
}

/// HT-Demucs: randomly shifted runs to average (the model's default when never set).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_shifts(
    opts: *mut splitsound_options,
    shifts: u32,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.shifts = Some(shifts);
        Ok(())
    })
}

/// Seed of the shift offsets: the same seed gives the same output.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_seed(opts: *mut splitsound_options, seed: u64) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.seed = seed;
        Ok(())
    })
}

/// Text-prompted models (SAM-Audio): the sound to separate, in words ("a dog
/// barking"); its stems are `target` and `residual`. NULL clears it. Other
/// models refuse a description when the separator is made.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_description(
    opts: *mut splitsound_options,
    description: *const c_char,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.prompt.description =
            // SAFETY: a string or NULL.
            if description.is_null() { None } else { Some(unsafe { arg_str(description, "description") }?.to_string()) };
        Ok(())
    })
}

/// `len` floats from `p`, or None for NULL with `len` 0.
unsafe fn floats(p: *const f32, len: usize, name: &str) -> Result<Option<Vec<f32>>, Failure> {
    match (p.is_null(), len) {
        (true, 0) => Ok(None),
        (true, _) => Err(Failure::invalid(format!("{name} is NULL with a length of {len}"))),
        (false, 0) => Err(Failure::invalid(format!("{name}: a length of 0"))),
        // SAFETY: the caller passes `len` readable floats.
        (false, n) => Ok(Some(unsafe { std::slice::from_raw_parts(p, n) }.to_vec())),
    }
}

/// Text-prompted models: the ODE's initial noise over the whole input,
/// `[frames, 2C]` row-major (`frames` = ceil(samples at the model's rate /
/// its hop)), as a reference run drew it; NULL and 0 restore drawing it from
/// the seed. The shape is checked when separating.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_ode_noise(
    opts: *mut splitsound_options,
    noise: *const f32,
    len: usize,
) -> splitsound_status {
    with_options(opts, |o| {
        // SAFETY: `len` floats, or NULL and 0.
        o.neural.prompt.ode_noise = unsafe { floats(noise, len, "noise") }?;
        Ok(())
    })
}

/// Text-prompted models: the codec watermark's message, `[2, bits]` of 0 or 1
/// (the target's row, then the residual's); NULL and 0 restore drawing it from the seed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_watermark_message(
    opts: *mut splitsound_options,
    bits: *const f32,
    len: usize,
) -> splitsound_status {
    with_options(opts, |o| {
        // SAFETY: `len` floats, or NULL and 0.
        o.neural.prompt.watermark_message = unsafe { floats(bits, len, "message") }?;
        Ok(())
    })
}

/// Segments per inference call (graphs exported with a free batch axis).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_batch(
    opts: *mut splitsound_options,
    batch: usize,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.batch = batch;
        Ok(())
    })
}

/// The ONNX Runtime library to load (`libonnxruntime.so.1.22.0`, …); NULL
/// restores the search (SPLITSOUND_ORT_LIB, ORT_DYLIB_PATH, the Python
/// package, the system's library names).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_runtime_library(
    opts: *mut splitsound_options,
    path: *const c_char,
) -> splitsound_status {
    with_options(opts, |o| {
        o.neural.model.runtime_library =
            // SAFETY: a string or NULL.
            if path.is_null() { None } else { Some(unsafe { arg_path(path, "path") }?.to_path_buf()) };
        Ok(())
    })
}

/// Replaces all model options with a JSON object in the schema of
/// splitsound-core's `NeuralOptions` (fields left out take their defaults):
/// `{"overlap": 0.5, "denoise": true, "model": {"providers": ["cuda:0"]}}`.
/// Unknown fields are an error. The real-time settings are kept.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_json(
    opts: *mut splitsound_options,
    json: *const c_char,
) -> splitsound_status {
    with_options(opts, |o| {
        // SAFETY: a string or NULL.
        let text = unsafe { arg_str(json, "json") }?;
        o.neural = serde_json::from_str(text).map_err(|e| Failure::invalid(format!("model options JSON: {e}")))?;
        Ok(())
    })
}

/// Real time, neural models: seconds of extra buffering the worker gets to
/// absorb slow inference (negative: the default, one segment).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_rt_headroom(
    opts: *mut splitsound_options,
    secs: f64,
) -> splitsound_status {
    with_options(opts, |o| {
        if secs.is_nan() {
            return Err(Failure::invalid("headroom is NaN"));
        }
        o.rt.headroom_secs = (secs >= 0.0).then_some(secs);
        Ok(())
    })
}

/// Real time, neural models: what a block the worker has not finished holds:
/// silence (`stem` NULL, the default), or, in the named stem, the input delayed
/// by the latency (the other stems silent).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_options_set_rt_underrun(
    opts: *mut splitsound_options,
    stem: *const c_char,
) -> splitsound_status {
    with_options(opts, |o| {
        o.rt.underrun = if stem.is_null() {
            Underrun::Silence
        } else {
            // SAFETY: a string.
            Underrun::DryTo(unsafe { arg_str(stem, "stem") }?.to_string())
        };
        Ok(())
    })
}

// ----- cancellation -------------------------------------------------------------------------

/// A new, unset cancellation flag.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_cancel_new(out: *mut *mut splitsound_cancel) -> splitsound_status {
    new_default(out)
}

/// Frees a flag; NULL is a no-op. Not while a separation that was given it runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_cancel_free(p: *mut splitsound_cancel) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

/// Sets the flag: separations given it stop at their next safe point with
/// `SPLITSOUND_STATUS_CANCELLED`, writing no output. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_cancel_request(cancel: *const splitsound_cancel) -> splitsound_status {
    guard(|| {
        // SAFETY: a live handle or NULL.
        unsafe { handle(cancel, "cancel") }?.token.cancel();
        Ok(())
    })
}

/// Whether the flag is set. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_cancel_is_requested(
    cancel: *const splitsound_cancel,
    out: *mut bool,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(cancel, "cancel", out, |c| Ok(c.token.is_cancelled())) }
}

// ----- the separator ------------------------------------------------------------------------

/// Opens a separator: `model` is a built-in's name (`"builtin:hpss"`,
/// `"builtin:center"`, `"builtin:repet"`, or the bare name), the path of a
/// model package (its manifest `.json`, or an `.onnx` with one beside it or
/// inside it, or a bare UVR MDX-Net `.onnx`), or the name of a model in the
/// cache (`splitsound_model_pull`). `options` may be NULL for the defaults; it is copied.
///
/// Thread safety: any thread. Loading a model takes time; not for an audio thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_new(
    model: *const c_char,
    options: *const splitsound_options,
    out: *mut *mut splitsound_separator,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a string or NULL; a live handle or NULL.
        let (spec, opts) = unsafe { (arg_str(model, "model")?, options.as_ref()) };
        need(out, "out")?;
        let neural = opts.map(|o| o.neural.clone()).unwrap_or_default();
        let inner = splitsound_core::load_separator(spec, neural)?;
        give(splitsound_separator { inner }, out);
        Ok(())
    })
}

/// Opens an ensemble: the `n_models` separators named in `models` (as
/// `splitsound_separator_new` names them, each with `options`) run on the same
/// input, their stems matched by name and combined by `algorithm`
/// (audio-separator's names: `"avg_wave"`, `"median_wave"`, `"min_wave"`,
/// `"max_wave"`, `"avg_fft"`, `"median_fft"`, `"min_fft"`, `"max_fft"`,
/// `"uvr_max_spec"`, `"uvr_min_spec"`, `"ensemble_wav"`; NULL: `"avg_wave"`).
/// `weights` (NULL, or `n_weights` = `n_models` values) weigh the models for
/// `avg_wave` and `avg_fft`. At least two models. The result is a separator
/// like any other (it needs the whole input: no real time).
///
/// An ensemble saved as a JSON file (`{"ensemble": {"models": [...],
/// "algorithm": "...", "weights": [...]}}`) also opens with `splitsound_separator_new`.
///
/// Thread safety: any thread. Loading models takes time; not for an audio thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_ensemble_new(
    models: *const *const c_char,
    n_models: usize,
    algorithm: *const c_char,
    weights: *const f64,
    n_weights: usize,
    options: *const splitsound_options,
    out: *mut *mut splitsound_separator,
) -> splitsound_status {
    guard(|| {
        // SAFETY: `n_models` strings; a string or NULL; a live handle or NULL.
        let (specs, opts) = unsafe { (arg_strs(models, n_models, "models")?, options.as_ref()) };
        need(out, "out")?;
        let algorithm = if algorithm.is_null() {
            EnsembleAlgorithm::default()
        } else {
            // SAFETY: a string.
            unsafe { arg_str(algorithm, "algorithm") }?.parse()?
        };
        let weights = match (weights.is_null(), n_weights) {
            (true, 0) => None,
            (true, _) => return Err(Failure::null("weights")),
            (false, n) if n != n_models => {
                return Err(Failure::invalid(format!("{n} weights for {n_models} models: one per model")));
            }
            // SAFETY: the caller's `n_weights` doubles, as many as the models.
            (false, n) => Some(unsafe { std::slice::from_raw_parts(weights, n) }.to_vec()),
        };
        let neural = opts.map(|o| o.neural.clone()).unwrap_or_default();
        let inner = splitsound_core::load_ensemble(&specs, algorithm, weights, neural)?;
        give(splitsound_separator { inner }, out);
        Ok(())
    })
}

/// A text-prompted separator (SAM-Audio): what the next separations separate
/// ("a dog barking"). `SPLITSOUND_STATUS_INVALID_ARGUMENT` for a description
/// its tokenizer cannot encode, and for any separator with fixed stems.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_set_description(
    sep: *mut splitsound_separator,
    description: *const c_char,
) -> splitsound_status {
    with_mut(sep, "separator", |s| {
        // SAFETY: a string or NULL.
        let d = unsafe { arg_str(description, "description") }?;
        s.inner.set_description(d)?;
        Ok(())
    })
}

/// Frees a separator; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_free(p: *mut splitsound_separator) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

/// The separator's name (`"hpss"`, the model's name) into `buf` of `len` bytes,
/// with a NUL; its length into `*out_n` (may be NULL). See the string convention.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_name(
    sep: *const splitsound_separator,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(sep, "separator", buf, len, out_n, |s| Ok(s.inner.name().to_string())) }
}

/// Number of stems it produces.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_stem_count(
    sep: *const splitsound_separator,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(sep, "separator", out, |s| Ok(s.inner.stems().len())) }
}

/// The name of stem `index` (`"vocals"`, `"harmonic"`, …), in output order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_stem_name(
    sep: *const splitsound_separator,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(sep, "separator", buf, len, out_n, |s| Ok(nth(s.inner.stems(), index, "stem")?.clone())) }
}

/// The sample rate the separator works at, or 0 when it works at any rate.
/// Buffers at other rates are resampled to it and back.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_sample_rate(
    sep: *const splitsound_separator,
    out: *mut u32,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(sep, "separator", out, |s| Ok(s.inner.sample_rate().unwrap_or(0))) }
}

/// Channels of each output stem for an input of `input_channels` channels: the
/// input's own count for the built-ins, the model's (2) for a neural model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_output_channels(
    sep: *const splitsound_separator,
    input_channels: usize,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe {
        get(sep, "separator", out, |s| {
            if input_channels == 0 {
                return Err(Failure::invalid("input_channels must be at least 1"));
            }
            Ok(s.inner.output_channels(input_channels))
        })
    }
}

/// Where it computes: `"cpu"`, or the execution provider a model actually
/// runs on after any fallback (`"cuda:0"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_provider(
    sep: *const splitsound_separator,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(sep, "separator", buf, len, out_n, |s| Ok(s.inner.runs_on())) }
}

/// A C progress callback as the `Fn` core calls, serialised.
struct CProgress {
    f: unsafe extern "C" fn(*mut c_void, splitsound_stage, u64, u64),
    userdata: *mut c_void,
    lock: Mutex<()>,
}

// SAFETY: the caller's contract is that the callback may be called from another
// thread; the mutex makes the calls one at a time.
unsafe impl Sync for CProgress {}

impl CProgress {
    fn call(&self, p: Progress) {
        let stage = match p.stage {
            Stage::Decode => splitsound_stage::Decode,
            Stage::Resample => splitsound_stage::Resample,
            Stage::Analyse => splitsound_stage::Analyse,
            Stage::Separate => splitsound_stage::Separate,
            Stage::Synthesise => splitsound_stage::Synthesise,
            Stage::Write => splitsound_stage::Write,
        };
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the function and userdata the caller gave for this call.
        unsafe { (self.f)(self.userdata, stage, p.done, p.total) }
    }
}

/// Runs `f` with core's per-call options built from the C ones.
///
/// # Safety
/// `cancel` is NULL or a live handle.
unsafe fn with_call<R>(
    progress: splitsound_progress_callback,
    userdata: *mut c_void,
    cancel: *const splitsound_cancel,
    f: impl FnOnce(&SeparateOptions<'_>) -> R,
) -> R {
    let cb = progress.map(|f| CProgress { f, userdata, lock: Mutex::new(()) });
    let report = |p: Progress| {
        if let Some(cb) = &cb {
            cb.call(p)
        }
    };
    // SAFETY: forwarded contract.
    let token = unsafe { cancel.as_ref() }.map(|c| c.token.clone());
    f(&SeparateOptions { progress: cb.as_ref().map(|_| &report as _), cancel: token.as_ref() })
}

/// Separates a buffer: `input` holds `input_channels` pointers to `frames`
/// floats each at `sample_rate`; `outputs` holds `output_count` pointers to
/// `frames` floats each, which receive the stems stem-major
/// (`outputs[stem * out_channels + c]`, `out_channels` from
/// `splitsound_separator_output_channels`), at the input's rate. Outputs may
/// alias the input. `progress`, `userdata` and `cancel` may be NULL.
///
/// On failure the outputs may hold partial results. A wrong `output_count` is
/// `SPLITSOUND_STATUS_CHANNEL_MISMATCH`; NaN or infinite input is
/// `SPLITSOUND_STATUS_NON_FINITE`; no frames is `SPLITSOUND_STATUS_EMPTY`.
///
/// Thread safety: one thread per separator at a time. Not real-time safe
/// (see `splitsound_rt` for that).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_separate(
    sep: *mut splitsound_separator,
    input: *const *const f32,
    input_channels: usize,
    frames: usize,
    sample_rate: u32,
    outputs: *const *mut f32,
    output_count: usize,
    progress: splitsound_progress_callback,
    userdata: *mut c_void,
    cancel: *const splitsound_cancel,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a live, unshared handle or NULL.
        let sep = unsafe { handle_mut(sep, "separator") }?.inner.as_mut();
        if input_channels == 0 {
            return Err(Failure::invalid("input_channels must be at least 1"));
        }
        // SAFETY: `input_channels` pointers of `frames` floats by contract.
        let ins = unsafe { float_ptrs(input, input_channels, "input") }?;
        let out_channels = sep.output_channels(input_channels);
        let expected = sep.stems().len() * out_channels;
        if output_count != expected {
            return Err(Failure::new(
                splitsound_status::ChannelMismatch,
                format!(
                    "{output_count} output buffers; this separator needs {expected} ({} stems × {out_channels} channels)",
                    sep.stems().len()
                ),
            ));
        }
        // SAFETY: `output_count` pointers by contract (checked as const; written below).
        let outs = unsafe { float_ptrs(outputs.cast(), output_count, "outputs") }?;
        // SAFETY: each input pointer holds `frames` floats; copied before any output is written.
        let channels = ins.iter().map(|&p| unsafe { std::slice::from_raw_parts(p, frames) }.to_vec()).collect();
        let audio = AudioBuffer::new(sample_rate, channels)?;
        // SAFETY: `cancel` is NULL or live.
        let stems = unsafe { with_call(progress, userdata, cancel, |call| sep.separate(&audio, call)) }?;
        for (s, (_, buf)) in stems.iter().enumerate() {
            for (c, ch) in buf.channels().iter().enumerate() {
                let n = ch.len().min(frames);
                // SAFETY: each output holds `frames` floats; `ch` is ours, so no overlap.
                unsafe { std::ptr::copy_nonoverlapping(ch.as_ptr(), outs[s * out_channels + c].cast_mut(), n) };
            }
        }
        Ok(())
    })
}

// ----- files --------------------------------------------------------------------------------

/// New file options: 16-bit WAV, rescaled to fit, every stem, no limits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_new(out: *mut *mut splitsound_file_options) -> splitsound_status {
    new_default(out)
}

/// Frees file options; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_free(p: *mut splitsound_file_options) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

fn with_file_options(
    opts: *mut splitsound_file_options,
    f: impl FnOnce(&mut FileJobOptions) -> Result<(), Failure>,
) -> splitsound_status {
    with_mut(opts, "file_options", |o| f(&mut o.opts))
}

/// One of `splitsound_format` (`SPLITSOUND_FORMAT_WAV`, `SPLITSOUND_FORMAT_FLAC`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_format(
    opts: *mut splitsound_file_options,
    format: u32,
) -> splitsound_status {
    with_file_options(opts, |o| {
        o.write.format = match format {
            f if f == splitsound_format::Wav as u32 => OutputFormat::Wav,
            f if f == splitsound_format::Flac as u32 => OutputFormat::Flac,
            f => return Err(Failure::invalid(format!("format {f} is not a splitsound_format"))),
        };
        Ok(())
    })
}

/// Bits per sample: 16, 24, or 32 (32-bit float, WAV only).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_bits(
    opts: *mut splitsound_file_options,
    bits: u32,
) -> splitsound_status {
    with_file_options(opts, |o| {
        o.write.encoding = SampleEncoding::from_bits(bits)?;
        Ok(())
    })
}

/// One of `splitsound_clip`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_clip(
    opts: *mut splitsound_file_options,
    clip: u32,
) -> splitsound_status {
    with_file_options(opts, |o| {
        o.write.clip = match clip {
            c if c == splitsound_clip::Rescale as u32 => ClipMode::Rescale,
            c if c == splitsound_clip::Clamp as u32 => ClipMode::Clamp,
            c if c == splitsound_clip::None as u32 => ClipMode::None,
            c => return Err(Failure::invalid(format!("clip {c} is not a splitsound_clip"))),
        };
        Ok(())
    })
}

/// TPDF dither when writing 16-bit integers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_dither(
    opts: *mut splitsound_file_options,
    dither: bool,
) -> splitsound_status {
    with_file_options(opts, |o| {
        o.write.dither = dither;
        Ok(())
    })
}

/// Writes only these `count` stems (checked against the separator when it
/// runs); `count` 0 writes every stem. Replaces a query.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_stems(
    opts: *mut splitsound_file_options,
    stems: *const *const c_char,
    count: usize,
) -> splitsound_status {
    with_file_options(opts, |o| {
        // SAFETY: `count` strings by contract.
        let names = unsafe { arg_strs(stems, count, "stems") }?;
        o.selection = if names.is_empty() { StemSelection::All } else { StemSelection::Stems(names) };
        Ok(())
    })
}

/// Writes the sound a description names (`"remove the vocals"`) as
/// `<stems>.wav` and the rest as `no_<stems>.wav`; NULL writes every stem.
/// Replaces a stem list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_query(
    opts: *mut splitsound_file_options,
    query: *const c_char,
) -> splitsound_status {
    with_file_options(opts, |o| {
        o.selection = if query.is_null() {
            StemSelection::All
        } else {
            // SAFETY: a string.
            StemSelection::Query(unsafe { arg_str(query, "query") }?.to_string())
        };
        Ok(())
    })
}

/// Decoding limits for the input (NULL: none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_file_options_set_limits(
    opts: *mut splitsound_file_options,
    limits: *const splitsound_decode_limits,
) -> splitsound_status {
    with_file_options(opts, |o| {
        // SAFETY: NULL or valid.
        let block = o.decode.block_frames;
        o.decode = decode_options(unsafe { limits.as_ref() })?;
        o.decode.block_frames = block;
        Ok(())
    })
}

/// Separates the file `input` and writes its stems to
/// `output_dir/<input name>/<stem>.wav` (or `.flac`), each written to a temporary
/// file and renamed only when all succeeded: an error or a cancellation leaves
/// no partial output. Streams: memory does not grow with the input's length.
/// `options`, `progress`, `userdata`, `cancel` and `out_report` may be NULL;
/// `*out_report`, when asked for, is freed with `splitsound_report_free`.
///
/// Thread safety: one thread per separator at a time; it starts two helper
/// threads (decoding, encoding) that end before it returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_separator_separate_file(
    sep: *mut splitsound_separator,
    input: *const c_char,
    output_dir: *const c_char,
    options: *const splitsound_file_options,
    progress: splitsound_progress_callback,
    userdata: *mut c_void,
    cancel: *const splitsound_cancel,
    out_report: *mut *mut splitsound_report,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a live, unshared handle or NULL; strings or NULL; options NULL or live.
        let (sep, input, out_dir, opts) = unsafe {
            (
                handle_mut(sep, "separator")?.inner.as_mut(),
                arg_path(input, "input")?,
                arg_path(output_dir, "output_dir")?,
                options.as_ref().map(|o| o.opts.clone()).unwrap_or_default(),
            )
        };
        // SAFETY: `cancel` is NULL or live.
        let report = unsafe {
            with_call(progress, userdata, cancel, |call| {
                splitsound_core::separate_file(sep, input, out_dir, &opts, call)
            })
        }?;
        if !out_report.is_null() {
            give(splitsound_report { report }, out_report);
        }
        Ok(())
    })
}

/// Frees a report; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_report_free(p: *mut splitsound_report) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

/// Number of files written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_report_stem_count(
    report: *const splitsound_report,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(report, "report", out, |r| Ok(r.report.stems.len())) }
}

/// Name of written stem `index` (`"vocals"`, or `"vocals"` / `"no_vocals"` for a query).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_report_stem_name(
    report: *const splitsound_report,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(report, "report", buf, len, out_n, |r| Ok(nth(&r.report.stems, index, "stem")?.name.clone())) }
}

/// Path of written stem `index`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_report_stem_path(
    report: *const splitsound_report,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe {
        get_str(report, "report", buf, len, out_n, |r| {
            Ok(nth(&r.report.stems, index, "stem")?.path.to_string_lossy().into_owned())
        })
    }
}
