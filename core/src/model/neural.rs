//! [`NeuralSeparator`]: a model package behind the [`Separator`] interface.

use std::path::Path;

use super::chunked::{Counter, feed_whole};
use super::demucs::{self, ApplySettings, ShiftOffsets, SplitMix64};
use super::manifest::Family;
use super::mdx;
use super::msst;
use super::umx::{self, WienerSettings};
use super::{Engine, Fallback, Model, ModelOptions, Provider};
use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stems, check_stream_rate};
use crate::stream::{Local, Named, Reach, StemStream, StreamSpec, Whole, Windowed};

/// How a neural separator runs; `None` fields take the model's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeuralOptions {
    /// Runtime library, providers, threads, graph optimisation.
    pub model: ModelOptions,
    /// Overlap of consecutive segments, in `[0, 1)`.
    pub overlap: Option<f64>,
    /// demucs: runs on randomly shifted copies of the input (up to 0.5 s), averaged.
    pub shifts: Option<u32>,
    /// Seed of the shift offsets; the same seed gives the same output.
    pub seed: u64,
    /// Explicit shift offsets in samples, model by model and shift by shift,
    /// instead of drawing them (to replay a reference run).
    pub shift_offsets: Option<Vec<usize>>,
    /// Segments per graph run, where the graph's batch dimension is free.
    pub batch: usize,
    /// mdx: also run the network on the negated input and average
    /// (audio-separator's `enable_denoise`); twice the inference time.
    pub denoise: bool,
    /// umx: EM iterations of the multichannel Wiener filter (openunmix's default, 1).
    pub niter: u32,
    /// umx: initial estimates by soft masks instead of the mixture's phase.
    pub softmask: bool,
    /// umx: add a `residual` stem, the mix minus the targets, before the EM.
    pub residual: bool,
    /// umx: frames per independently filtered window (openunmix's 300); 0 = the whole input.
    pub wiener_win_len: usize,
    /// SAM-Audio: its chunks' length instead of the package's (rounded to
    /// whole latent frames; longer than its cross-fade).
    /// umx: separate windows of about this many seconds, each with a quarter of
    /// that again as context on both sides, instead of the whole input at once
    /// (openunmix's way, whose bidirectional LSTM reads the whole track). Memory
    /// is then bounded and the stream releases output as it goes, at a small
    /// difference from the reference (see the README). `None`: the whole input.
    pub segment_secs: Option<f64>,
    /// BS-/Mel-Band RoFormer and MDX23C: how the input is cut into chunks and
    /// put back together (other families ignore it; SCNet refuses
    /// `AudioSeparator`).
    pub chunking: Chunking,
    /// A text-prompted model (SAM-Audio): what to separate, and optionally
    /// the draws of a reference run. Other families refuse a description.
    pub prompt: TextPrompt,
}

/// What a text-prompted model separates, and the draws that make a run
/// repeatable. Absent draws come from [`NeuralOptions::seed`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextPrompt {
    /// The sound to separate, in words: "a dog barking".
    pub description: Option<String>,
    /// The ODE's initial noise over the whole input: [frames, 2C] row-major,
    /// `frames` = ⌈samples at the model's rate / hop⌉ (SAM-Audio's `noise`).
    pub ode_noise: Option<Vec<f32>>,
    /// The codec watermark's message: [2, bits] of 0/1, the target's then the residual's.
    pub watermark_message: Option<Vec<f32>>,
}

/// How an msst-family model (BS-/Mel-Band RoFormer, MDX23C, SCNet) is run over
/// an input longer than its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chunking {
    /// As msst's `demix` (the models' reference code): reflect-padded border,
    /// linear fades, `normalize`; streams in bounded memory.
    #[default]
    Msst,
    /// As audio-separator 0.47's `MDXCSeparator` (BS-/Mel-Band RoFormer and
    /// MDX23C): the mix and each stem peak-limited to 0.9, Hamming-weighted
    /// RoFormer chunks with the last one ending at the end, MDX23C's unweighted
    /// zero-padded overlap-add. It needs the whole input (the stems' peaks).
    AudioSeparator,
}

impl std::str::FromStr for Chunking {
    type Err = Error;
    /// `msst` or `audio-separator` (also `audio_separator`).
    fn from_str(s: &str) -> Result<Self> {
        Error::parse_name(
            "chunking",
            s,
            &[
                ("msst", Chunking::Msst),
                ("audio-separator", Chunking::AudioSeparator),
                ("audio_separator", Chunking::AudioSeparator),
            ],
        )
    }
}

impl Default for NeuralOptions {
    fn default() -> Self {
        Self {
            model: ModelOptions::default(),
            overlap: None,
            shifts: None,
            seed: 0,
            shift_offsets: None,
            batch: 1,
            denoise: false,
            niter: 1,
            softmask: false,
            residual: false,
            wiener_win_len: 300,
            segment_secs: None,
            chunking: Chunking::Msst,
            prompt: TextPrompt::default(),
        }
    }
}

/// Builds a [`NeuralSeparator`]: `NeuralSeparator::builder(path).providers([...]).build()?`.
#[derive(Debug, Clone)]
pub struct NeuralBuilder {
    path: std::path::PathBuf,
    opts: NeuralOptions,
}

impl NeuralBuilder {
    pub fn options(mut self, opts: NeuralOptions) -> Self {
        self.opts = opts;
        self
    }
    /// Providers in order of preference (default: CPU).
    pub fn providers(mut self, providers: impl IntoIterator<Item = Provider>) -> Self {
        self.opts.model.providers = providers.into_iter().collect();
        self
    }
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.opts.model.fallback = fallback;
        self
    }
    pub fn overlap(mut self, overlap: f64) -> Self {
        self.opts.overlap = Some(overlap);
        self
    }
    pub fn shifts(mut self, shifts: u32) -> Self {
        self.opts.shifts = Some(shifts);
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.opts.seed = seed;
        self
    }
    pub fn batch(mut self, batch: usize) -> Self {
        self.opts.batch = batch;
        self
    }
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.opts.model.intra_threads = Some(threads);
        self
    }
    /// Loads the package (its manifest, or an ONNX file with a sidecar or
    /// embedded manifest) and checks the options against it.
    pub fn build(self) -> Result<NeuralSeparator> {
        NeuralSeparator::from_model(Model::load(&self.path, &self.opts.model)?, self.opts)
    }
}

/// A separator running a model package on ONNX Runtime.
pub struct NeuralSeparator {
    model: Model,
    opts: NeuralOptions,
    pipeline: Pipeline,
    stems: Vec<String>,
}

enum Pipeline {
    /// HT-Demucs and the `waveform` family: `apply_model`'s chunking.
    Demucs(Box<dyn demucs::SegmentNet>),
    Mdx(mdx::Mdx),
    Umx(umx::Umx),
    Msst(msst::Msst),
    #[cfg(feature = "sam-audio")]
    SamAudio(Box<super::sam_audio::SamAudio>),
}

impl std::fmt::Debug for NeuralSeparator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeuralSeparator")
            .field("model", &self.model.manifest().name)
            .field("provider", &self.model.provider())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl NeuralSeparator {
    /// The way to open a package with a concrete type (for [`NeuralSeparator::model`],
    /// say); [`crate::load_separator`] opens any name or path as a `Box<dyn Separator>`.
    pub fn builder(path: impl AsRef<Path>) -> NeuralBuilder {
        NeuralBuilder { path: path.as_ref().to_path_buf(), opts: NeuralOptions::default() }
    }

    /// A separator on a model already loaded (from memory, say: [`Model::from_memory`]),
    /// checking the options against it; `opts.model` is not used again.
    pub fn from_model(model: Model, opts: NeuralOptions) -> Result<Self> {
        let m = model.manifest();
        let bad = |detail: String| Error::Model { path: model.manifest_path().to_path_buf(), detail };
        if let Some(o) = opts.overlap
            && !(0.0..1.0).contains(&o)
        {
            return Err(Error::invalid("overlap", "in [0, 1)", o));
        }
        if opts.batch == 0 {
            return Err(Error::invalid("batch", "at least 1", 0));
        }
        if let Some(s) = opts.segment_secs {
            if !matches!(m.family, Family::Umx | Family::SamAudio) {
                return Err(Error::invalid("segment_secs", "unset: this model's segment is fixed", s));
            }
            if !(s.is_finite() && s >= 1.0) {
                return Err(Error::invalid("segment_secs", "at least 1 second", s));
            }
        }
        let pipeline = match m.family {
            Family::DemucsHybrid => Pipeline::Demucs(Box::new(demucs::Hybrid::new(m).map_err(bad)?)),
            Family::Waveform => Pipeline::Demucs(Box::new(demucs::WaveNet::new(m).map_err(bad)?)),
            Family::Mdx => Pipeline::Mdx(mdx::Mdx::new(m).map_err(bad)?),
            Family::Umx => Pipeline::Umx(umx::Umx::new(m).map_err(bad)?),
            Family::BsRoformer | Family::MelBandRoformer | Family::Mdx23c | Family::Scnet => {
                Pipeline::Msst(msst::Msst::new(m).map_err(bad)?)
            }
            #[cfg(feature = "sam-audio")]
            Family::SamAudio => {
                Pipeline::SamAudio(Box::new(super::sam_audio::SamAudio::new(m, model.manifest_path()).map_err(bad)?))
            }
            #[cfg(not(feature = "sam-audio"))]
            Family::SamAudio => {
                return Err(Error::Unsupported {
                    what: "SAM-Audio models in this build".into(),
                    suggestion: Some("build splitsound-core with the `sam-audio` feature".into()),
                });
            }
        };
        let text_prompted = m.family == Family::SamAudio;
        let p = &opts.prompt;
        if !text_prompted && (p.description.is_some() || p.ode_noise.is_some() || p.watermark_message.is_some()) {
            return Err(Error::invalid(
                "description",
                "none: this model has fixed stems (a text-prompted model, such as SAM-Audio, takes a description)",
                p.description.as_deref().unwrap_or("(draws)"),
            ));
        }
        // Other families chunk as their own reference does whatever this says
        // (an ensemble gives every member the same options).
        if opts.chunking == Chunking::AudioSeparator && m.family == Family::Scnet {
            return Err(Error::invalid(
                "chunking",
                "msst for SCNet (audio-separator 0.47 does not run SCNet)",
                "audio-separator",
            ));
        }
        if let Pipeline::Msst(_) = pipeline {
            // msst's demix is set by the model's config: its overlap is
            // `num_overlap` and its batch size changes the output.
            if let Some(o) = opts.overlap {
                return Err(Error::invalid(
                    "overlap",
                    "unset: msst models overlap by the manifest's msst.num_overlap",
                    o,
                ));
            }
            if opts.batch != 1 {
                return Err(Error::invalid(
                    "batch",
                    "1: msst models batch by the manifest's msst.batch_size, which changes their windows",
                    opts.batch,
                ));
            }
        }
        let mut stems = m.stems.clone();
        if m.family == Family::Umx && opts.residual {
            if stems.iter().any(|s| s == "residual") {
                return Err(bad("a target is already named `residual`".into()));
            }
            stems.push("residual".into());
        }
        if opts.batch > 1 && m.inputs.iter().any(|t| t.shape[0] != -1) {
            return Err(Error::invalid(
                "batch",
                "1: this graph's batch dimension is fixed (export it with a free batch axis to batch segments)",
                opts.batch,
            ));
        }
        Ok(Self { model, opts, pipeline, stems })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    /// The package, to run one of its graphs directly ([`Model::run`]).
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
    /// The execution provider the model runs on.
    pub fn provider(&self) -> Provider {
        self.model.provider()
    }
    pub fn options(&self) -> &NeuralOptions {
        &self.opts
    }
}

/// `apply_model`'s settings from the options and the package's defaults.
fn apply_settings(opts: &NeuralOptions, defaults: super::manifest::Defaults) -> ApplySettings {
    let offsets = match &opts.shift_offsets {
        Some(v) => ShiftOffsets::Given(v.clone().into_iter()),
        None => ShiftOffsets::Seeded(SplitMix64::new(opts.seed)),
    };
    ApplySettings {
        overlap: opts.overlap.unwrap_or(defaults.overlap),
        shifts: opts.shifts.unwrap_or(defaults.shifts),
        batch: opts.batch,
        offsets,
    }
}

impl Separator for NeuralSeparator {
    fn name(&self) -> &str {
        &self.model.manifest().name
    }
    /// The model's channels; a text-prompted model keeps the input's (see [`TextPrompt`]).
    fn output_channels(&self, input_channels: usize) -> usize {
        if self.model.manifest().family == Family::SamAudio { input_channels } else { self.model.manifest().channels }
    }
    fn runs_on(&self) -> String {
        match self.model.engine() {
            Engine::OnnxRuntime => self.provider().to_string(),
            engine => format!("{} ({engine})", self.provider()),
        }
    }
    fn stems(&self) -> &[String] {
        &self.stems
    }
    fn sample_rate(&self) -> Option<u32> {
        Some(self.model.manifest().sample_rate)
    }
    fn text_prompted(&self) -> bool {
        self.model.manifest().family == Family::SamAudio
    }
    fn set_description(&mut self, description: &str) -> Result<()> {
        match &self.pipeline {
            #[cfg(feature = "sam-audio")]
            Pipeline::SamAudio(sa) => {
                sa.tokenize(description)?;
                self.opts.prompt.description = Some(description.to_string());
                Ok(())
            }
            _ => {
                let _ = description;
                Err(not_text_prompted("description", &self.model.manifest().name))
            }
        }
    }

    /// HT-Demucs and MDX-Net release output at most a segment after its input,
    /// msst's families a batch of chunks and demix's border after it (with
    /// audio-separator's chunking, which needs the whole input: none);
    /// Open-Unmix a window and its context when `segment_secs` is set.
    fn stream_lag(&self) -> Option<usize> {
        match self.pipeline {
            Pipeline::Demucs(_) | Pipeline::Mdx(_) => Some(self.model.manifest().segment_samples),
            // A batch of chunks, and the border demix pads by.
            // audio-separator's chunking peak-limits each stem: the whole input first.
            Pipeline::Msst(_) if self.opts.chunking == Chunking::AudioSeparator => None,
            Pipeline::Msst(ref ms) => {
                let p = ms.params();
                Some(p.chunk_size * (p.batch_size + 1) + p.chunk_size)
            }
            Pipeline::Umx(_) => self.umx_reach().map(|r| r.core + 2 * r.context),
            #[cfg(feature = "sam-audio")]
            Pipeline::SamAudio(_) => None,
        }
    }

    /// HT-Demucs and MDX-Net stream segment by segment (see [`crate::stream`]).
    /// Open-Unmix collects the input and separates it at the end (its
    /// bidirectional LSTM reads the whole track at once), unless `segment_secs`
    /// is set: then it runs on overlapping windows.
    fn stream<'s>(&'s mut self, spec: StreamSpec, opts: SeparateOptions<'s>) -> Result<Box<dyn StemStream + 's>> {
        check_stream_rate(self.sample_rate(), &spec)?;
        if matches!(self.pipeline, Pipeline::Msst(_)) && self.opts.chunking == Chunking::AudioSeparator {
            return Ok(Whole::boxed(self, spec, opts));
        }
        #[cfg(feature = "sam-audio")]
        if matches!(self.pipeline, Pipeline::SamAudio(_)) {
            // The draws cover the whole input, and the mask policy needs it.
            return Ok(Whole::boxed(self, spec, opts));
        }
        if matches!(self.pipeline, Pipeline::Umx(_)) {
            if self.umx_reach().is_some() {
                return Ok(Windowed::boxed(self, spec, opts));
            }
            return Ok(Whole::boxed(self, spec, opts));
        }
        let defaults = self.model.manifest().defaults;
        let (names, channels) = (self.stems.clone(), self.output_channels(spec.channels));
        match &mut self.pipeline {
            Pipeline::Demucs(hy) => {
                let mut set = apply_settings(&self.opts, defaults);
                let inner = demucs::DemucsStream::new(&mut self.model, hy.as_mut(), &spec, &mut set, opts.cancel)?;
                Ok(Named::boxed(names, channels, &spec, inner))
            }
            Pipeline::Mdx(mx) => {
                let overlap = self.opts.overlap.unwrap_or(defaults.overlap);
                let o = &self.opts;
                let inner = mdx::MdxStream::new(&mut self.model, mx, &spec, overlap, o.denoise, o.batch, opts.cancel)?;
                Ok(Named::boxed(names, channels, &spec, inner))
            }
            Pipeline::Msst(ms) => {
                Ok(Named::boxed(names, channels, &spec, msst::MsstStream::new(&mut self.model, ms, &spec, opts.cancel)))
            }
            Pipeline::Umx(_) => Err(Error::invalid("pipeline", "demucs or mdx", "umx")),
            #[cfg(feature = "sam-audio")]
            Pipeline::SamAudio(_) => Err(Error::invalid("pipeline", "demucs or mdx", "sam-audio")),
        }
    }

    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        if self.umx_reach().is_none() {
            return self.separate_whole(audio, opts);
        }
        // Segmented Open-Unmix: the same windows as its stream.
        let spec = StreamSpec { sample_rate: audio.sample_rate(), channels: audio.num_channels(), frames: None };
        check_stream_rate(self.sample_rate(), &spec)?;
        audio.check_finite()?;
        let names = self.stems.clone();
        let rate = audio.sample_rate();
        let mut stream = Windowed::new(self, spec, *opts);
        let out = feed_whole(&mut stream, audio.channels(), 1 << 16, names.len(), opts)?;
        let stems =
            names.into_iter().zip(out).map(|(n, c)| Ok((n, AudioBuffer::new(rate, c)?))).collect::<Result<_>>()?;
        Stems::new(stems)
    }
}

impl Local for NeuralSeparator {
    fn reach(&self, _sample_rate: u32) -> Reach {
        self.umx_reach().unwrap_or(Reach { context: 0, align: 1, core: 0 })
    }
    fn separate_window(
        &mut self,
        window: &AudioBuffer,
        _keep: std::ops::Range<usize>,
        _total: Option<usize>,
        opts: &SeparateOptions<'_>,
    ) -> Result<Stems> {
        self.separate_whole(window, opts)
    }
}

impl NeuralSeparator {
    /// Windows of segmented Open-Unmix: starts on the grid of whole Wiener
    /// windows (so those are the whole input's), a quarter of the core as context.
    fn umx_reach(&self) -> Option<Reach> {
        let (Pipeline::Umx(_), Some(secs)) = (&self.pipeline, self.opts.segment_secs) else { return None };
        let m = self.model.manifest();
        let hop = m.stft.map_or(1024, |s| s.hop_length);
        let align = hop * self.opts.wiener_win_len.max(1);
        let core = ((secs * m.sample_rate as f64) as usize).next_multiple_of(align);
        Some(Reach { context: (core / 4).next_multiple_of(align), align, core })
    }

    fn separate_whole(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        let m = self.model.manifest();
        if audio.sample_rate() != m.sample_rate {
            return Err(Error::invalid(
                "sample rate",
                format!("{} Hz (Separator::separate resamples)", m.sample_rate),
                audio.sample_rate(),
            ));
        }
        audio.check_finite()?;
        if audio.is_empty() {
            return Err(Error::Empty { what: "input audio".into() });
        }
        #[cfg(feature = "sam-audio")]
        if let Pipeline::SamAudio(sa) = &self.pipeline {
            return separate_text(&mut self.model, sa, &self.opts, audio, opts);
        }
        // Borrow the input when it already has the model's channels (a copy of a
        // long track is hundreds of MB).
        let converted;
        let input = if audio.num_channels() == m.channels {
            audio
        } else {
            converted = audio.to_channels(m.channels)?;
            &converted
        };
        let rate = m.sample_rate;
        let names = self.stems.clone();
        let defaults = m.defaults;
        let out = match &mut self.pipeline {
            Pipeline::Demucs(hy) => {
                let mut set = apply_settings(&self.opts, defaults);
                demucs::separate(&mut self.model, hy.as_mut(), input.channels(), &mut set, opts)?
            }
            Pipeline::Mdx(mx) => {
                let overlap = self.opts.overlap.unwrap_or(defaults.overlap);
                mdx::separate(&mut self.model, mx, input.channels(), overlap, self.opts.denoise, self.opts.batch, opts)?
            }
            Pipeline::Umx(ux) => {
                let w = WienerSettings {
                    niter: self.opts.niter,
                    softmask: self.opts.softmask,
                    residual: self.opts.residual,
                    win_len: self.opts.wiener_win_len,
                };
                umx::separate(&mut self.model, ux, input.channels(), w, &mut Counter::new(0, opts))?
            }
            Pipeline::Msst(ms) if self.opts.chunking == Chunking::AudioSeparator => {
                msst::separate_mdxc(&mut self.model, ms, input.channels(), opts)?
            }
            Pipeline::Msst(ms) => msst::separate(&mut self.model, ms, input.channels(), opts)?,
            #[cfg(feature = "sam-audio")]
            Pipeline::SamAudio(_) => unreachable!("separated above"),
        };
        let mut stems = Vec::with_capacity(names.len());
        for (name, chans) in names.into_iter().zip(out) {
            stems.push((name, AudioBuffer::new(rate, chans)?));
        }
        Stems::new(stems)
    }
}

/// The error of asking a model with fixed stems for what a text-prompted one does.
fn not_text_prompted(what: &'static str, model: &str) -> Error {
    Error::invalid(what, "a text-prompted model (SAM-Audio)", model)
}

/// A text-prompted model on one input: the mono downmix separated, then
/// spread over the input's channels (`sam_audio::spread`).
#[cfg(feature = "sam-audio")]
fn separate_text(
    model: &mut Model,
    sa: &super::sam_audio::SamAudio,
    o: &NeuralOptions,
    audio: &AudioBuffer,
    opts: &SeparateOptions<'_>,
) -> Result<Stems> {
    let description = o.prompt.description.as_deref().ok_or_else(|| {
        Error::invalid("description", "the sound to separate, in words (this is a text-prompted model)", "none")
    })?;
    // The reference's processor averages every channel.
    let mono: Option<Vec<f32>> = (audio.num_channels() > 1).then(|| {
        let k = 1.0 / audio.num_channels() as f32;
        (0..audio.frames()).map(|i| audio.channels().iter().map(|c| c[i]).sum::<f32>() * k).collect()
    });
    let x = mono.as_deref().unwrap_or(audio.channel(0));
    let frames = sa.frames(x.len());
    let mut draws = sa.draw(frames, o.seed);
    if let Some(n) = &o.prompt.ode_noise {
        draws.noise = n.clone();
    }
    if let Some(m) = &o.prompt.watermark_message {
        draws.message = m.clone();
    }
    let [target, residual] = sa.separate(model, x, description, &draws, o.segment_secs, opts)?;
    let rate = audio.sample_rate();
    let (t, r) = if mono.is_none() {
        (vec![target], vec![residual])
    } else {
        opts.report(crate::separator::Stage::Synthesise, 0, 1);
        let [t, r] = super::sam_audio::spread(audio.channels(), &target, &residual)?;
        opts.report(crate::separator::Stage::Synthesise, 1, 1);
        (t, r)
    };
    Stems::new(vec![("target".into(), AudioBuffer::new(rate, t)?), ("residual".into(), AudioBuffer::new(rate, r)?)])
}

#[cfg(feature = "sam-audio")]
impl NeuralSeparator {
    /// The token ids a text-prompted model's encoder receives for `description`
    /// (`</s>` included), or the error a description it cannot take gets.
    pub fn tokenize(&self, description: &str) -> Result<Vec<u32>> {
        let Pipeline::SamAudio(sa) = &self.pipeline else {
            return Err(not_text_prompted("model", &self.model.manifest().name));
        };
        sa.tokenize(description)
    }

    /// SAM-Audio's `separate()` on a batch, as its reference computes it: each
    /// item's mono audio at the model's rate with its description; `noise`
    /// [B, T, 2C] over the batch's T frames (its longest item's) and `message`
    /// [2B, bits], as the reference takes them; absent, every item gets the
    /// seed's draws, so the batch's longest item gives what `separate` gives it alone. Returns each item's target and residual in whole latent
    /// frames (`⌈N / hop⌉ · hop` samples, the reference's length), with no
    /// chunking: memory grows with the square of the longest item.
    pub fn separate_described(
        &mut self,
        items: &[super::sam_audio::Described<'_>],
        noise: Option<&[f32]>,
        message: Option<&[f32]>,
        opts: &SeparateOptions<'_>,
    ) -> Result<Vec<[Vec<f32>; 2]>> {
        let Pipeline::SamAudio(sa) = &self.pipeline else {
            return Err(not_text_prompted("model", &self.model.manifest().name));
        };
        if items.is_empty() {
            return Err(Error::Empty { what: "batch".into() });
        }
        for it in items {
            if it.audio.is_empty() {
                return Err(Error::Empty { what: "input audio".into() });
            }
            if let Some(i) = it.audio.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFinite { channel: 0, frame: i, value: it.audio[i] });
            }
        }
        let frames = sa.frames(items.iter().map(|i| i.audio.len()).max().unwrap_or(0));
        // Drawn, every item gets the seed's draws (its first frames are what
        // `separate` would draw for it alone).
        let one = sa.draw(frames, self.opts.seed);
        let n = items.len();
        let draws = super::sam_audio::Draws {
            noise: noise.map_or_else(|| one.noise.repeat(n), <[f32]>::to_vec),
            message: message.map_or_else(|| one.message.repeat(n), <[f32]>::to_vec),
        };
        sa.check_draws(&draws, n, frames)?;
        let descriptions: Vec<&str> = items.iter().map(|i| i.description).collect();
        let text = sa.encode_text(&mut self.model, &descriptions)?;
        let mut evals = super::sam_audio::Evals::new(opts, 2 * sa.params().ode_steps as u64);
        let audio: Vec<&[f32]> = items.iter().map(|i| i.audio).collect();
        sa.run_batch(&mut self.model, &audio, &text, &draws.noise, &draws.message, &mut || evals.tick())
    }
}
