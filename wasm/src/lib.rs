//! splitsound in WebAssembly: decode, resample, STFT/ISTFT, the built-in
//! separators, neural model packages (on tract, see [`Model`]), the query
//! resolver and WAV/FLAC encoding, for a web page that separates audio without
//! uploading it. Built by `scripts/build-wasm.sh` into
//! an ES module with TypeScript declarations (`wasm/pkg`).
//!
//! Only translation lives here: `Float32Array`s to core's planar buffers and
//! back, core's errors to JS `Error`s with a `code`, and a JS progress
//! function to core's progress callback.

use js_sys::{Array, Float32Array, Function, Object, Reflect, Uint8Array};
use splitsound_core as core;
use splitsound_core::{
    AudioBuffer, CancelToken, ClipMode, Error, OutputFormat, Progress, SampleEncoding, SeparateOptions, Spectrogram,
    Stft, StftConfig, WriteOptions,
};
use wasm_bindgen::prelude::*;

mod model;
pub use model::Model;

/// A core error as a JS `Error` whose `code` is core's stable name for it.
fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let _ = Reflect::set(&err, &"code".into(), &e.code().into());
    let _ = Reflect::set(&err, &"kind".into(), &e.kind().name().into());
    err.into()
}

fn invalid(name: &'static str, expected: &str, actual: impl ToString) -> JsValue {
    js_error(Error::InvalidArgument { name, expected: expected.into(), actual: actual.to_string() })
}

/// The library's version.
#[wasm_bindgen]
pub fn version() -> String {
    core::VERSION.to_string()
}

/// Planar float audio at a sample rate.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct Audio {
    buf: AudioBuffer,
}

#[wasm_bindgen]
impl Audio {
    /// Audio from one `Float32Array` per channel (copied), all of one length.
    #[wasm_bindgen(js_name = fromChannels)]
    pub fn from_channels(channels: Array, sample_rate: u32) -> Result<Audio, JsValue> {
        let mut planar = Vec::with_capacity(channels.length() as usize);
        for (i, c) in channels.iter().enumerate() {
            let c: Float32Array =
                c.dyn_into().map_err(|_| invalid("channels", "an array of Float32Array", format!("element {i}")))?;
            planar.push(c.to_vec());
        }
        Ok(Audio { buf: AudioBuffer::new(sample_rate, planar).map_err(js_error)? })
    }

    #[wasm_bindgen(getter, js_name = sampleRate)]
    pub fn sample_rate(&self) -> u32 {
        self.buf.sample_rate()
    }

    #[wasm_bindgen(getter, js_name = numberOfChannels)]
    pub fn number_of_channels(&self) -> usize {
        self.buf.num_channels()
    }

    #[wasm_bindgen(getter)]
    pub fn frames(&self) -> usize {
        self.buf.frames()
    }

    #[wasm_bindgen(getter)]
    pub fn duration(&self) -> f64 {
        self.buf.duration_secs()
    }

    /// A copy of channel `index`.
    pub fn channel(&self, index: usize) -> Result<Float32Array, JsValue> {
        let c = self
            .buf
            .channels()
            .get(index)
            .ok_or_else(|| invalid("index", &format!("below {}", self.buf.num_channels()), index))?;
        Ok(Float32Array::from(c.as_slice()))
    }
}

fn decode_options(max_bytes: Option<f64>) -> core::DecodeOptions {
    core::DecodeOptions { max_bytes: max_bytes.map(|b| b as u64), ..Default::default() }
}

/// Decodes a whole file held in memory (WAV, FLAC, MP3, AAC/M4A, Ogg Vorbis,
/// AIFF, …). `extension` (`"mp3"`) helps formats without a signature.
#[wasm_bindgen]
pub fn decode(bytes: &[u8], extension: Option<String>, max_bytes: Option<f64>) -> Result<Audio, JsValue> {
    let buf = core::decode_bytes(bytes.to_vec(), extension.as_deref(), &decode_options(max_bytes)).map_err(js_error)?;
    Ok(Audio { buf })
}

fn set(o: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(o, &key.into(), &value.into());
}

/// What a file holds, without decoding it: `{container, codec, sampleRate,
/// channels, frames, duration, bitsPerSample}` (unknown values are `null`).
#[wasm_bindgen]
pub fn probe(bytes: &[u8], extension: Option<String>) -> Result<Object, JsValue> {
    let i = core::probe_bytes(bytes.to_vec(), extension.as_deref()).map_err(js_error)?;
    let o = Object::new();
    set(&o, "container", i.container.as_str());
    set(&o, "codec", i.codec.as_str());
    set(&o, "sampleRate", i.sample_rate);
    set(&o, "channels", i.channels as u32);
    set(&o, "frames", i.frames.map_or(JsValue::NULL, |f| (f as f64).into()));
    set(&o, "duration", i.duration_secs.map_or(JsValue::NULL, JsValue::from));
    set(&o, "bitsPerSample", i.bits_per_sample.map_or(JsValue::NULL, JsValue::from));
    Ok(o)
}

/// Resamples to `rate`.
#[wasm_bindgen]
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, JsValue> {
    core::check_sample_rate(rate).map_err(js_error)?;
    Ok(Audio { buf: core::resample(&audio.buf, rate).map_err(js_error)? })
}

/// A cancellation flag: a progress callback may call `cancel()` to stop the
/// separation it reports on (JS runs one thing at a time, so only from there
/// or from another worker's message handler between calls).
#[wasm_bindgen]
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancelToken,
}

#[wasm_bindgen]
impl Cancel {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.token.cancel()
    }
    #[wasm_bindgen(getter)]
    pub fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// A JS function as core's progress callback.
struct JsProgress(Function);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread,
// so the function is never called from another.
unsafe impl Sync for JsProgress {}

impl JsProgress {
    fn call(&self, p: Progress) {
        let _ = self.0.call3(&JsValue::NULL, &p.stage.name().into(), &(p.done as f64).into(), &(p.total as f64).into());
    }
}

/// Named stems, in the separator's order.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Stems {
    stems: Vec<(String, AudioBuffer)>,
}

#[wasm_bindgen]
impl Stems {
    /// The stems' names, in order.
    pub fn names(&self) -> Array {
        self.stems.iter().map(|(n, _)| JsValue::from(n.as_str())).collect()
    }
    /// The sound a description names and the rest (`"remove the vocals"` gives
    /// `no_vocals` then `vocals`), as the CLI's `--query` writes them.
    pub fn select(&self, query: &str) -> Result<Stems, JsValue> {
        let names: Vec<String> = self.stems.iter().map(|(n, _)| n.clone()).collect();
        let stems = core::Stems::new(self.stems.clone()).map_err(js_error)?;
        let (picked, _) =
            core::select_stems(stems, &names, &core::StemSelection::Query(query.into())).map_err(js_error)?;
        Ok(Stems { stems: picked.into_vec() })
    }

    /// The stem called `name`.
    pub fn get(&self, name: &str) -> Result<Audio, JsValue> {
        self.stems.iter().find(|(n, _)| n == name).map(|(_, b)| Audio { buf: b.clone() }).ok_or_else(|| {
            js_error(Error::UnknownStem {
                stem: name.into(),
                available: self.stems.iter().map(|(n, _)| n.clone()).collect(),
            })
        })
    }
}

/// The built-in separators' names (`builtin:hpss`, …), default first.
#[wasm_bindgen]
pub fn builtins() -> Array {
    core::builtin::BUILTIN_NAMES.iter().map(|n| JsValue::from(format!("builtin:{n}"))).collect()
}

/// The stems a built-in produces, in order.
#[wasm_bindgen(js_name = stemsOf)]
pub fn stems_of(method: &str) -> Result<Array, JsValue> {
    let sep = core::load_separator(method, Default::default()).map_err(js_error)?;
    Ok(sep.stems().iter().map(|s| JsValue::from(s.as_str())).collect())
}

/// Separates `audio` with a built-in (`"builtin:hpss"`, `"builtin:center"`,
/// `"builtin:repet"`). `progress(stage, done, total)` is called as it goes.
#[wasm_bindgen]
pub fn separate(method: &str, audio: &Audio, progress: Option<Function>) -> Result<Stems, JsValue> {
    run_builtin(method, audio, progress, None)
}

/// [`separate`] that stops with an error whose `code` is `"cancelled"` once
/// `cancel.cancel()` is called (from the progress function: JS runs one thing
/// at a time).
#[wasm_bindgen(js_name = separateCancellable)]
pub fn separate_cancellable(
    method: &str,
    audio: &Audio,
    progress: Option<Function>,
    cancel: &Cancel,
) -> Result<Stems, JsValue> {
    run_builtin(method, audio, progress, Some(&cancel.token))
}

fn run_builtin(
    method: &str,
    audio: &Audio,
    progress: Option<Function>,
    cancel: Option<&CancelToken>,
) -> Result<Stems, JsValue> {
    let mut sep = core::load_separator(method, Default::default()).map_err(js_error)?;
    run_separator(sep.as_mut(), audio, progress, cancel)
}

fn run_separator(
    sep: &mut dyn core::Separator,
    audio: &Audio,
    progress: Option<Function>,
    cancel: Option<&CancelToken>,
) -> Result<Stems, JsValue> {
    let progress = progress.map(JsProgress);
    let report = |p: Progress| {
        if let Some(cb) = &progress {
            cb.call(p)
        }
    };
    let opts = SeparateOptions { progress: Some(&report), cancel };
    let stems = sep.separate(&audio.buf, &opts).map_err(js_error)?;
    Ok(Stems { stems: stems.into_vec() })
}

/// Resolves a description (`"remove the vocals"`) against stem names:
/// `{targets: string[], mode: "isolate" | "remove", notes: string[]}`.
#[wasm_bindgen(js_name = resolveQuery)]
pub fn resolve_query(query: &str, stems: Vec<String>) -> Result<Object, JsValue> {
    let r = core::resolve_query(query, &stems).map_err(js_error)?;
    let o = Object::new();
    set(&o, "targets", r.targets.iter().map(|s| JsValue::from(s.as_str())).collect::<Array>());
    set(&o, "mode", r.mode.name());
    set(&o, "notes", r.notes.iter().map(|s| JsValue::from(s.as_str())).collect::<Array>());
    Ok(o)
}

/// Encodes audio as a file: `format` `"wav"` (16, 24 or 32-bit float) or
/// `"flac"` (16 or 24); samples beyond ±1 are scaled down to fit.
#[wasm_bindgen]
pub fn encode(audio: &Audio, format: &str, bits: u32) -> Result<Uint8Array, JsValue> {
    let format: OutputFormat = format.parse().map_err(js_error)?;
    let encoding = SampleEncoding::from_bits(bits).map_err(js_error)?;
    let opts = WriteOptions { format, encoding, clip: ClipMode::Rescale, dither: false };
    Ok(Uint8Array::from(core::encode(&audio.buf, &opts).map_err(js_error)?.as_slice()))
}

/// A complex spectrogram: `bins` × `frames`, stored frame by frame as
/// interleaved real and imaginary parts.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Spectrum {
    spec: Spectrogram,
    cfg: StftConfig,
}

#[wasm_bindgen]
impl Spectrum {
    #[wasm_bindgen(getter)]
    pub fn bins(&self) -> usize {
        self.spec.bins
    }
    #[wasm_bindgen(getter)]
    pub fn frames(&self) -> usize {
        self.spec.frames
    }
    /// `[re, im, re, im, …]`, frame by frame.
    pub fn data(&self) -> Float32Array {
        let flat: Vec<f32> = self.spec.data.iter().flat_map(|c| [c.re, c.im]).collect();
        Float32Array::from(flat.as_slice())
    }
    /// Magnitudes, frame by frame (`bins` per frame), for drawing.
    pub fn magnitudes(&self) -> Float32Array {
        let mags: Vec<f32> = self.spec.data.iter().map(|c| c.norm()).collect();
        Float32Array::from(mags.as_slice())
    }
    /// The inverse transform, `length` samples long (or as many as the frames give).
    pub fn inverse(&self, length: Option<usize>) -> Result<Float32Array, JsValue> {
        let mut stft = Stft::new(self.cfg).map_err(js_error)?;
        Ok(Float32Array::from(stft.inverse(&self.spec, length).map_err(js_error)?.as_slice()))
    }
}

/// `torch.stft(x, nFft, hopLength, window=hann, center=true, pad_mode="reflect")`.
#[wasm_bindgen]
pub fn stft(samples: &[f32], n_fft: usize, hop_length: usize) -> Result<Spectrum, JsValue> {
    let cfg = StftConfig::torch(n_fft, hop_length);
    let spec = Stft::new(cfg).and_then(|mut s| s.forward(samples)).map_err(js_error)?;
    Ok(Spectrum { spec, cfg })
}
