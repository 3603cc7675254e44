//! The one interface every separator implements, built-in or neural, and the
//! values that travel with a call: progress, cancellation, and the named stems.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::stream::{StemStream, StreamSpec, Whole};

/// A cancellation flag shared between the caller and a running separation.
/// Separators check it at safe points (between channels, frames blocks and
/// stages) and return [`Error::Cancelled`], producing no output.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// `Err(Error::Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }
}

/// The stage a progress report refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Decode,
    Resample,
    /// Spectral analysis (STFT) or feature extraction.
    Analyse,
    /// Masking, filtering or model inference.
    Separate,
    /// Inverse transform and overlap-add.
    Synthesise,
    Write,
}

impl Stage {
    /// Its name as serialised (`"analyse"`), for bindings that report stages as strings.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Resample => "resample",
            Stage::Analyse => "analyse",
            Stage::Separate => "separate",
            Stage::Synthesise => "synthesise",
            Stage::Write => "write",
        }
    }
}

/// A progress report: `done` out of `total` units of `stage`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

/// Per-call options of [`Separator::separate`].
#[derive(Default, Clone, Copy)]
pub struct SeparateOptions<'a> {
    /// Called from the separating thread; keep it cheap.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    pub cancel: Option<&'a CancelToken>,
}

impl std::fmt::Debug for SeparateOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeparateOptions")
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl SeparateOptions<'_> {
    pub fn report(&self, stage: Stage, done: u64, total: u64) {
        if let Some(p) = self.progress {
            p(Progress { stage, done, total });
        }
    }
    pub fn check_cancel(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), CancelToken::check)
    }
}

/// Named stems, in the separator's order, all with the input's length and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Stems {
    stems: Vec<(String, AudioBuffer)>,
}

impl Stems {
    pub fn new(stems: Vec<(String, AudioBuffer)>) -> Result<Self> {
        if let Some((_, first)) = stems.first()
            && let Some((name, _)) =
                stems.iter().find(|(_, b)| b.spec() != first.spec() || b.frames() != first.frames())
        {
            return Err(Error::InvalidChannels { detail: format!("stem `{name}` differs in shape from the others") });
        }
        Ok(Self { stems })
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stems.iter().map(|(n, _)| n.as_str())
    }
    pub fn get(&self, name: &str) -> Option<&AudioBuffer> {
        self.stems.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AudioBuffer)> {
        self.stems.iter().map(|(n, b)| (n.as_str(), b))
    }
    pub fn len(&self) -> usize {
        self.stems.len()
    }
    pub fn is_empty(&self) -> bool {
        self.stems.is_empty()
    }
    pub fn into_vec(self) -> Vec<(String, AudioBuffer)> {
        self.stems
    }
    /// Appends the frames of `next`, the same stems in the same order (what a
    /// [`crate::stream::StemStream`] returns block after block).
    pub fn append(&mut self, next: &Stems) -> Result<()> {
        if !self.names().eq(next.names()) {
            return Err(Error::invalid(
                "stems",
                format!("{:?}", self.names().collect::<Vec<_>>()),
                format!("{:?}", next.names().collect::<Vec<_>>()),
            ));
        }
        // All or nothing: every shape is checked before any stem grows.
        if let Some((name, _)) = self.stems.iter().zip(&next.stems).find(|((_, a), (_, b))| a.spec() != b.spec()) {
            return Err(Error::InvalidChannels { detail: format!("stem `{}` changes shape", name.0) });
        }
        self.stems.iter_mut().zip(&next.stems).try_for_each(|((_, a), (_, b))| a.append(b))
    }
}

/// A source separator: audio in, named stems out.
///
/// Call [`Separator::separate`]: it takes audio at any rate. Implementations
/// provide [`Separator::separate_native`], which sees input at
/// [`Separator::sample_rate`] only, adapt the input's channel count with the
/// documented policy in [`AudioBuffer::to_channels`] when they need to, and
/// return stems of the input's length.
pub trait Separator: Send {
    /// Name as accepted by [`crate::load_separator`].
    fn name(&self) -> &str;
    /// Stems produced, in order.
    fn stems(&self) -> &[String];
    /// The rate the separator needs, or `None` if it works at any rate.
    fn sample_rate(&self) -> Option<u32> {
        None
    }
    /// Channels of each stem for an input of `input_channels` channels: the
    /// input's own count for the built-ins, the model's for a neural model (its
    /// input is adapted with [`AudioBuffer::to_channels`]).
    fn output_channels(&self, input_channels: usize) -> usize {
        input_channels
    }
    /// Where it computes: `cpu` for the built-ins, the execution provider a
    /// neural model actually runs on (`cuda:0`, …) after any fallback, with its
    /// engine when that is not ONNX Runtime (`cpu (tract)`).
    fn runs_on(&self) -> String {
        "cpu".into()
    }
    /// Separates `audio`, at any rate, into stems at its rate and of its length.
    ///
    /// It refuses empty input and NaN or infinite samples, then resamples to
    /// [`Separator::sample_rate`] and back when the separator has a rate of its
    /// own (reported as [`Stage::Resample`]), around
    /// [`Separator::separate_native`]. Implementations keep this provided method.
    fn separate(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        audio.check_finite()?;
        if audio.is_empty() {
            return Err(Error::Empty { what: "input audio".into() });
        }
        let Some(rate) = self.sample_rate().filter(|&r| r != audio.sample_rate()) else {
            return self.separate_native(audio, opts);
        };
        opts.report(Stage::Resample, 0, 2);
        let input = crate::resample::resample(audio, rate)?;
        opts.check_cancel()?;
        let stems = self.separate_native(&input, opts)?;
        opts.report(Stage::Resample, 1, 2);
        let mut back = Vec::with_capacity(stems.len());
        for (name, s) in stems.into_vec() {
            opts.check_cancel()?;
            let mut r = crate::resample::resample(&s, audio.sample_rate())?;
            // Rounding can differ by a frame after the round trip; match the input.
            if r.frames() != audio.frames() {
                let mut ch = r.into_channels();
                ch.iter_mut().for_each(|c| c.resize(audio.frames(), 0.0));
                r = AudioBuffer::new(audio.sample_rate(), ch)?;
            }
            back.push((name, r));
        }
        opts.report(Stage::Resample, 2, 2);
        Stems::new(back)
    }

    /// Separates `audio`, which is at [`Separator::sample_rate`] when the
    /// separator has one, finite and not empty: what an implementation
    /// provides, and what [`Separator::separate`] calls.
    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems>;

    /// Whether it separates what a description says (a text-prompted model,
    /// SAM-Audio) rather than fixed stems.
    fn text_prompted(&self) -> bool {
        false
    }

    /// What a text-prompted separator separates next ("a dog barking"); one
    /// it cannot encode is an [`Error::InvalidArgument`], as is any
    /// description for a separator with fixed stems.
    fn set_description(&mut self, _description: &str) -> Result<()> {
        Err(Error::invalid("description", "a text-prompted model (SAM-Audio)", self.name()))
    }

    /// The most input frames (at [`Separator::sample_rate`]) its stream needs
    /// beyond an output frame before releasing it, when that is bounded and
    /// small enough for live use (a neural model's segment); `None` otherwise.
    fn stream_lag(&self) -> Option<usize> {
        None
    }

    /// A [`StemStream`] over input that arrives in blocks at [`Separator::sample_rate`]
    /// (see [`crate::stream`]). This default collects the input and separates it
    /// at the end; separators that can do better override it.
    fn stream<'s>(&'s mut self, spec: StreamSpec, opts: SeparateOptions<'s>) -> Result<Box<dyn StemStream + 's>> {
        check_stream_rate(self.sample_rate(), &spec)?;
        Ok(Whole::boxed(self, spec, opts))
    }
}

/// Fails unless the stream's rate is the separator's (when it has one).
pub(crate) fn check_stream_rate(rate: Option<u32>, spec: &StreamSpec) -> Result<()> {
    crate::audio::check_sample_rate(spec.sample_rate)?;
    if spec.channels == 0 {
        return Err(Error::invalid("channels", "at least 1", 0));
    }
    match rate {
        Some(r) if r != spec.sample_rate => {
            Err(Error::invalid("sample rate", format!("{r} Hz, the separator's (resample first)"), spec.sample_rate))
        }
        _ => Ok(()),
    }
}
