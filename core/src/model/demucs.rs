//! HT-Demucs (`demucs-hybrid`), as `demucs.api.Separator.separate_tensor` runs it:
//! normalisation by the mono mix's mean and standard deviation, then
//! `demucs.apply.apply_model` — segments with triangular overlap weights, the last
//! segment padded with its real neighbours, random shifts, bags with per-stem
//! weights — around a graph that holds the network without its STFT and ISTFT,
//! which are computed here exactly as `HTDemucs._spec` and `HTDemucs._ispec` do.
//!
//! The `waveform` family runs through the same chunking ([`SegmentNet`]): its
//! graph maps segments to stems whole, and its manifest may change the window,
//! the partial segment and the normalisation to those of another exporter's
//! inference code.

use ndarray::{Array3, Array4, ArrayViewD, Axis, Ix5};

use super::Model;
use super::chunked::{Tape, feed_whole, to_model_channels};
use super::manifest::{Manifest, Normalisation, Partial, WaveWindow};
use crate::error::{Error, Result};
use crate::separator::SeparateOptions;
use crate::stft::{PadMode, Spectrogram, Stft, StftConfig, WindowKind};
use crate::stream::{FrameStream, StemAudio, StreamSpec, check_block};
use realfft::num_complex::Complex32;

/// Separation settings of `apply_model`.
#[derive(Debug, Clone)]
pub(crate) struct ApplySettings {
    pub overlap: f64,
    pub shifts: u32,
    /// Segments per graph run.
    pub batch: usize,
    /// Where each shift starts, drawn in order (model by model, shift by shift).
    pub offsets: ShiftOffsets,
}

/// The random shift offsets, in `0..=max_shift`.
#[derive(Debug, Clone)]
pub(crate) enum ShiftOffsets {
    Seeded(SplitMix64),
    /// Given offsets, e.g. those a reference run recorded.
    Given(std::vec::IntoIter<usize>),
}

impl ShiftOffsets {
    fn next(&mut self, max_shift: usize) -> Result<usize> {
        match self {
            ShiftOffsets::Seeded(rng) => Ok(rng.below(max_shift as u64 + 1) as usize),
            ShiftOffsets::Given(it) => match it.next() {
                Some(o) if o <= max_shift => Ok(o),
                Some(o) => Err(Error::invalid("shift offset", format!("at most {max_shift}"), o)),
                None => Err(Error::invalid("shift offsets", "one per shift and model", "too few")),
            },
        }
    }
}

/// A small, fast, seedable generator (SplitMix64); shifts need reproducibility,
/// not cryptographic quality.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Standard normal (Box–Muller on two 53-bit uniforms, the first in (0, 1]).
    #[cfg_attr(not(feature = "sam-audio"), allow(dead_code))]
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Uniform in `0..n` (Lemire's method without the rejection step's bias).
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// The spectral front and back ends of one HT-Demucs graph, with scratch.
pub(crate) struct Hybrid {
    stft: Stft,
    segment: usize,
    channels: usize,
    stems: usize,
    hop: usize,
    /// Frames per segment: `ceil(segment / hop)`.
    frames: usize,
    /// Frequency bins fed to the network (`n_fft / 2`, the Nyquist bin dropped).
    bins: usize,
    spec: Spectrogram,
    padded: Vec<f32>,
    wave: Vec<f32>,
    chunks: Segments,
}

impl Hybrid {
    pub fn new(m: &Manifest) -> std::result::Result<Self, String> {
        let cfg = m.stft.ok_or("demucs-hybrid needs `stft` in the manifest")?;
        let want = StftConfig {
            n_fft: cfg.n_fft,
            hop_length: cfg.n_fft / 4,
            win_length: None,
            window: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Reflect,
            normalized: true,
        };
        if cfg != want {
            return Err(format!("demucs-hybrid uses {want:?} (hop = n_fft/4, periodic Hann, normalised); got {cfg:?}"));
        }
        let hop = cfg.hop_length;
        let frames = m.segment_samples.div_ceil(hop);
        let bins = cfg.n_fft / 2;
        let s = m.stems.len() as i64;
        let c = m.channels as i64;
        let (l, f, t) = (m.segment_samples as i64, bins as i64, frames as i64);
        let expect = [("mix", vec![c, l]), ("spec", vec![2 * c, f, t])];
        let expect_out = [("time", vec![s, c, l]), ("freq", vec![s, 2 * c, f, t])];
        for (specs, want) in [(&m.inputs, &expect[..]), (&m.outputs, &expect_out[..])] {
            if specs.len() != want.len() {
                return Err(format!("demucs-hybrid has inputs mix, spec and outputs time, freq; got {specs:?}"));
            }
            for (t, (name, dims)) in specs.iter().zip(want) {
                if t.name != *name || t.shape.len() != dims.len() + 1 || t.shape[1..] != dims[..] {
                    return Err(format!("`{}` {:?}: expected `{name}` [batch, {dims:?}]", t.name, t.shape));
                }
            }
        }
        if m.segment_samples <= 3 * hop / 2 {
            return Err(format!("segment_samples must exceed {} for the reflect padding", 3 * hop / 2));
        }
        Ok(Self {
            stft: Stft::new(cfg).map_err(|e| e.to_string())?,
            segment: m.segment_samples,
            channels: m.channels,
            stems: m.stems.len(),
            hop,
            frames,
            bins,
            spec: Spectrogram::default(),
            padded: Vec::new(),
            wave: Vec::new(),
            chunks: Segments::apply_model(m.segment_samples),
        })
    }

    /// `HTDemucs._magnitude(HTDemucs._spec(x))` for one channel of one segment,
    /// written into `out` ([2, bins, frames]: real then imaginary).
    fn spec_into(&mut self, x: &[f32], re: &mut ndarray::ArrayViewMut2<f32>, im: &mut ndarray::ArrayViewMut2<f32>) {
        let hl = self.hop;
        let le = self.frames;
        let pad = hl / 2 * 3;
        // Reflect padding by `pad` left and `pad + le·hl − L` right (demucs's pad1d).
        let n = x.len();
        let right = pad + le * hl - n;
        self.padded.clear();
        self.padded.extend((1..=pad).rev().map(|i| x[i]));
        self.padded.extend_from_slice(x);
        self.padded.extend((1..=right).map(|i| x[n - 1 - i]));
        let padded = std::mem::take(&mut self.padded);
        let r = self.stft.forward_into(&padded, &mut self.spec);
        self.padded = padded;
        r.expect("the segment is longer than the padding, checked at load");
        debug_assert_eq!(self.spec.frames, le + 4);
        for t in 0..le {
            let frame = self.spec.frame(t + 2);
            for f in 0..self.bins {
                re[[f, t]] = frame[f].re;
                im[[f, t]] = frame[f].im;
            }
        }
    }

    /// Builds the graph inputs for a batch of padded segments.
    fn inputs(&mut self, segments: &[Vec<Vec<f32>>]) -> (Array3<f32>, Array4<f32>) {
        let b = segments.len();
        let mut mix = Array3::<f32>::zeros((b, self.channels, self.segment));
        let mut spec = Array4::<f32>::zeros((b, 2 * self.channels, self.bins, self.frames));
        for (i, seg) in segments.iter().enumerate() {
            for (c, ch) in seg.iter().enumerate() {
                mix.slice_mut(ndarray::s![i, c, ..]).as_slice_mut().expect("contiguous").copy_from_slice(ch);
                let mut pair = spec.slice_mut(ndarray::s![i, 2 * c..2 * c + 2, .., ..]);
                let (mut re, mut im) = pair.view_mut().split_at(Axis(0), 1);
                let mut re = re.index_axis_mut(Axis(0), 0);
                let mut im = im.index_axis_mut(Axis(0), 0);
                self.spec_into(ch, &mut re, &mut im);
            }
        }
        (mix, spec)
    }
}

/// How segments are weighted and fed: `apply_model`'s, or a `waveform`
/// manifest's.
#[derive(Debug, Clone)]
pub(crate) struct Segments {
    /// The overlap-add weight of each sample of a segment.
    pub weight: Vec<f32>,
    pub partial: Partial,
    /// Normalise by the mono mix's mean and standard deviation.
    pub normalise: bool,
}

impl Segments {
    /// `apply_model`'s: the triangle, real context around the last segment, normalised.
    fn apply_model(segment: usize) -> Self {
        Self { weight: window(WaveWindow::Triangular, segment, 1.0, None), partial: Partial::Context, normalise: true }
    }
}

/// The weights of `kind` over `seg` samples.
fn window(kind: WaveWindow, seg: usize, power: f32, fade: Option<usize>) -> Vec<f32> {
    match kind {
        WaveWindow::Triangular => {
            // torch.cat([arange(1, seg//2 + 1), arange(seg - seg//2, 0, -1)]) / max, ** power
            let peak = (seg / 2).max(seg - seg / 2) as f32;
            (0..seg)
                .map(|i| {
                    let w = if i < seg / 2 { i + 1 } else { seg - i } as f32 / peak;
                    if power == 1.0 { w } else { w.powf(power) }
                })
                .collect()
        }
        WaveWindow::Linear => {
            // np.linspace(0, 1, fade) rising at the start, falling at the end.
            let fade = fade.unwrap_or(0).min(seg);
            let mut w = vec![1.0f32; seg];
            if fade > 1 {
                for i in 0..fade {
                    let r = (i as f64 / (fade - 1) as f64) as f32;
                    w[i] *= r;
                    w[seg - fade + i] *= 1.0 - r;
                }
            } else if fade == 1 {
                w[0] = 0.0;
                w[seg - 1] = 0.0;
            }
            w
        }
        WaveWindow::Hann => {
            // np.hanning(seg): 0.5 − 0.5 cos(2πn / (seg − 1)).
            if seg == 1 {
                return vec![1.0];
            }
            (0..seg)
                .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / (seg - 1) as f64).cos()) as f32)
                .collect()
        }
    }
}

/// A graph that maps segments of the (normalised) mix to stem segments, and
/// how its segments are chunked.
pub(crate) trait SegmentNet: Send {
    /// Samples per segment, channels, and the chunking.
    fn shape(&self) -> (usize, usize, &Segments);
    fn segment(&self) -> usize {
        self.shape().0
    }
    fn channels(&self) -> usize {
        self.shape().1
    }
    fn segments(&self) -> &Segments {
        self.shape().2
    }
    /// Runs file `file` of the package on `segments` (each `segment()` long).
    fn run(&mut self, model: &mut Model, file: usize, segments: &[Vec<Vec<f32>>]) -> Result<Vec<StemAudio>>;
}

impl SegmentNet for Hybrid {
    fn shape(&self) -> (usize, usize, &Segments) {
        (self.segment, self.channels, &self.chunks)
    }
    fn run(&mut self, model: &mut Model, file: usize, segments: &[Vec<Vec<f32>>]) -> Result<Vec<StemAudio>> {
        run_batch(model, file, self, segments)
    }
}

/// A `waveform` graph: `input` [B, C, L] to `output` [B, S, C, L].
pub(crate) struct WaveNet {
    input: String,
    output: String,
    segment: usize,
    channels: usize,
    stems: usize,
    chunks: Segments,
}

impl WaveNet {
    pub fn new(m: &Manifest) -> std::result::Result<Self, String> {
        let p = m.waveform.ok_or("the waveform family needs a `waveform` section in the manifest")?;
        let (c, s, l) = (m.channels as i64, m.stems.len() as i64, m.segment_samples as i64);
        let ([input], [output]) = (&m.inputs[..], &m.outputs[..]) else {
            return Err(format!(
                "a waveform graph has one input [batch, {c}, {l}] and one output [batch, {s}, {c}, {l}]; got {:?} and {:?}",
                m.inputs, m.outputs
            ));
        };
        if input.shape.len() != 3 || input.shape[1..] != [c, l] {
            return Err(format!("input `{}` {:?}: expected [batch, {c}, {l}]", input.name, input.shape));
        }
        if output.shape.len() != 4 || output.shape[1..] != [s, c, l] {
            return Err(format!("output `{}` {:?}: expected [batch, {s}, {c}, {l}]", output.name, output.shape));
        }
        if !(p.transition_power.is_finite() && p.transition_power > 0.0) {
            return Err(format!("waveform.transition_power must be positive, got {}", p.transition_power));
        }
        match (p.window, p.fade_samples) {
            (WaveWindow::Linear, None) => return Err("a linear window needs waveform.fade_samples".into()),
            (WaveWindow::Linear, Some(f)) if 2 * f > m.segment_samples => {
                return Err(format!("waveform.fade_samples {f} is more than half the segment"));
            }
            (WaveWindow::Triangular | WaveWindow::Hann, Some(_)) => {
                return Err("waveform.fade_samples is for the linear window only".into());
            }
            _ => {}
        }
        Ok(Self {
            input: input.name.clone(),
            output: output.name.clone(),
            segment: m.segment_samples,
            channels: m.channels,
            stems: m.stems.len(),
            chunks: Segments {
                weight: window(p.window, m.segment_samples, p.transition_power, p.fade_samples),
                partial: p.partial,
                normalise: m.normalisation == Normalisation::MonoMeanStd,
            },
        })
    }
}

impl SegmentNet for WaveNet {
    fn shape(&self) -> (usize, usize, &Segments) {
        (self.segment, self.channels, &self.chunks)
    }
    fn run(&mut self, model: &mut Model, file: usize, segments: &[Vec<Vec<f32>>]) -> Result<Vec<StemAudio>> {
        let (b, c, l, s) = (segments.len(), self.channels, self.segment, self.stems);
        let mut mix = Array3::<f32>::zeros((b, c, l));
        for (i, seg) in segments.iter().enumerate() {
            for (ci, ch) in seg.iter().enumerate() {
                mix.slice_mut(ndarray::s![i, ci, ..]).as_slice_mut().expect("contiguous").copy_from_slice(ch);
            }
        }
        let name = self.output.clone();
        model.run_with(file, vec![(self.input.clone(), mix.into_dyn())], |out| {
            let Some((_, y)) = out.into_iter().find(|(n, _)| *n == name) else {
                return Err(Error::Inference { detail: format!("the graph did not return `{name}`") });
            };
            let y =
                y.into_dimensionality::<ndarray::Ix4>().ok().filter(|a| a.shape() == [b, s, c, l]).ok_or_else(
                    || Error::Inference { detail: format!("output `{name}` is not [{b}, {s}, {c}, {l}]") },
                )?;
            Ok((0..b)
                .map(|i| {
                    (0..s).map(|k| (0..c).map(|ci| y.slice(ndarray::s![i, k, ci, ..]).to_vec()).collect()).collect()
                })
                .collect())
        })
    }
}

/// Runs one graph of the package on padded segments, `batch` at a time.
fn run_batch(model: &mut Model, file: usize, hy: &mut Hybrid, segments: &[Vec<Vec<f32>>]) -> Result<Vec<StemAudio>> {
    let (mix, spec) = hy.inputs(segments);
    let b = segments.len();
    model.run_with(file, vec![("mix".into(), mix.into_dyn()), ("spec".into(), spec.into_dyn())], |out| {
        let mut time = None;
        let mut freq = None;
        for (name, a) in out {
            match name {
                "time" => time = Some(a),
                "freq" => freq = Some(a),
                _ => {}
            }
        }
        let (Some(time), Some(freq)) = (time, freq) else {
            return Err(Error::Inference { detail: "the graph did not return `time` and `freq`".into() });
        };
        hy.combine(time, freq, b)
    })
}

impl Hybrid {
    /// `time + HTDemucs._ispec(HTDemucs._mask(z, freq), L)` for every segment of the batch.
    fn combine(&mut self, time: ArrayViewD<'_, f32>, freq: ArrayViewD<'_, f32>, b: usize) -> Result<Vec<StemAudio>> {
        let (s, c, l, f, t) = (self.stems, self.channels, self.segment, self.bins, self.frames);
        let time = time
            .into_dimensionality::<ndarray::Ix4>()
            .ok()
            .filter(|a| a.shape() == [b, s, c, l])
            .ok_or_else(|| Error::Inference { detail: format!("output `time` is not [{b}, {s}, {c}, {l}]") })?;
        let freq =
            freq.into_dimensionality::<Ix5>().ok().filter(|a| a.shape() == [b, s, 2 * c, f, t]).ok_or_else(|| {
                Error::Inference { detail: format!("output `freq` is not [{b}, {s}, {}, {f}, {t}]", 2 * c) }
            })?;
        let hl = self.hop;
        let pad = hl / 2 * 3;
        let le = hl * l.div_ceil(hl) + 2 * pad;
        let mut out = Vec::with_capacity(b);
        let mut z = Spectrogram::zeros(f + 1, t + 4);
        for i in 0..b {
            let mut stems = Vec::with_capacity(s);
            for si in 0..s {
                let mut chans = Vec::with_capacity(c);
                for ci in 0..c {
                    // The Nyquist bin and two frames on each side are zeros (F.pad).
                    z.data.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
                    let re = freq.slice(ndarray::s![i, si, 2 * ci, .., ..]);
                    let im = freq.slice(ndarray::s![i, si, 2 * ci + 1, .., ..]);
                    for ti in 0..t {
                        let frame = z.frame_mut(ti + 2);
                        for fi in 0..f {
                            frame[fi] = Complex32::new(re[[fi, ti]], im[[fi, ti]]);
                        }
                    }
                    self.stft.inverse_into(&z, Some(le), &mut self.wave)?;
                    let tb = time.slice(ndarray::s![i, si, ci, ..]);
                    chans.push(tb.iter().zip(&self.wave[pad..pad + l]).map(|(a, b)| a + b).collect());
                }
                stems.push(chans);
            }
            out.push(stems);
        }
        Ok(out)
    }
}

/// Mean and standard deviation of the mono mix, accumulated block by block
/// (Chan et al.'s pairwise update, in f64), as `separate_tensor` normalises.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MixStats {
    n: u64,
    mean: f64,
    m2: f64,
}

impl MixStats {
    pub fn add(&mut self, block: &[Vec<f32>]) {
        let nb = block.first().map_or(0, Vec::len);
        if nb == 0 {
            return;
        }
        let c = block.len() as f64;
        let mono = |i: usize| block.iter().map(|ch| ch[i] as f64).sum::<f64>() / c;
        let mean_b = (0..nb).map(mono).sum::<f64>() / nb as f64;
        let m2_b = (0..nb).map(|i| (mono(i) - mean_b).powi(2)).sum::<f64>();
        let (na, nb) = (self.n as f64, nb as f64);
        let delta = mean_b - self.mean;
        let n = na + nb;
        self.mean += delta * nb / n;
        self.m2 += m2_b + delta * delta * na * nb / n;
        self.n += nb as u64;
    }

    /// The mean and the population variance (divided by n), in f64.
    pub fn mean_and_population_variance(&self) -> (f64, f64) {
        (self.mean, if self.n > 0 { self.m2 / self.n as f64 } else { 0.0 })
    }

    /// `(mean, std)` with torch's unbiased std plus 1e-8.
    pub fn finish(&self) -> (f32, f32) {
        let var = if self.n > 1 { self.m2 / (self.n - 1) as f64 } else { 0.0 };
        (self.mean as f32, (var.sqrt() + 1e-8) as f32)
    }
}

/// One pass of `apply_model`'s `split`: the segments of one model over the mix
/// delayed by `delay` (a shift: `max_shift − offset` zeros in front).
struct Lane {
    file: usize,
    delay: usize,
    /// Offset (lane frames) of the next segment to run.
    next: usize,
    /// Weighted sums, stems × channels rows, and their weights, in lane frames.
    out: Tape,
    weight: Tape,
}

/// HT-Demucs as a [`crate::stream::StemStream`]: every lane's segments run as soon as their
/// input is there, and mix frames are released once no lane can still add to
/// them. The whole-buffer path is this stream fed once.
pub(crate) struct DemucsStream<'m> {
    model: &'m mut Model,
    hy: &'m mut dyn SegmentNet,
    channels_in: usize,
    rate: u32,
    batch: usize,
    stride: usize,
    stems: usize,
    weights: Vec<Vec<f32>>,
    totals: Vec<f32>,
    /// Shifts per model (0: one unshifted lane).
    shifts: usize,
    lanes: Vec<Lane>,
    stats: MixStats,
    norm: Option<(f32, f32)>,
    /// Normalised mix, model channels, in mix frames.
    input: Tape,
    received: usize,
    finished: bool,
    /// Mix frames released so far.
    emitted: usize,
    /// The overlap-add weights of a segment.
    tri: Vec<f32>,
    partial: Partial,
    normalise: bool,
    cancel: Option<&'m crate::separator::CancelToken>,
}

impl<'m> DemucsStream<'m> {
    pub fn new(
        model: &'m mut Model,
        hy: &'m mut dyn SegmentNet,
        spec: &StreamSpec,
        set: &mut ApplySettings,
        cancel: Option<&'m crate::separator::CancelToken>,
    ) -> Result<Self> {
        let m = model.manifest().clone();
        let seg = m.segment_samples;
        let stride = ((1.0 - set.overlap) * seg as f64) as usize;
        if stride == 0 {
            return Err(Error::invalid(
                "overlap",
                format!("small enough to leave a stride of 1 of {seg} samples"),
                set.overlap,
            ));
        }
        let max_shift = (0.5 * m.sample_rate as f64) as usize;
        let stems = m.stems.len();
        let rows = stems * m.channels;
        // Offsets are drawn up front, in apply_model's order: model by model, shift by shift.
        let mut lanes = Vec::new();
        for file in 0..m.files.len() {
            if set.shifts == 0 {
                lanes.push(Lane { file, delay: 0, next: 0, out: Tape::new(rows), weight: Tape::new(1) });
            }
            for _ in 0..set.shifts {
                let delay = max_shift - set.offsets.next(max_shift)?;
                lanes.push(Lane { file, delay, next: 0, out: Tape::new(rows), weight: Tape::new(1) });
            }
        }
        let weights: Vec<Vec<f32>> =
            m.files.iter().map(|f| f.stem_weights.clone().unwrap_or_else(|| vec![1.0; stems])).collect();
        let totals = (0..stems).map(|k| weights.iter().map(|w| w[k]).sum()).collect();
        let chunks = hy.segments().clone();
        Ok(Self {
            model,
            hy,
            channels_in: spec.channels,
            rate: spec.sample_rate,
            batch: set.batch.max(1),
            stride,
            stems,
            weights,
            totals,
            shifts: set.shifts as usize,
            lanes,
            stats: MixStats::default(),
            // Without normalisation the stream needs no statistics first.
            norm: if chunks.normalise { None } else { Some((0.0, 1.0)) },
            input: Tape::new(m.channels),
            received: 0,
            finished: false,
            emitted: 0,
            tri: chunks.weight,
            partial: chunks.partial,
            normalise: chunks.normalise,
            cancel,
        })
    }

    /// Lane input at lane frame `p`: the normalised mix, zeros outside it
    /// (`TensorChunk.padded`).
    fn lane_input(&self, delay: usize, start: isize, len: usize) -> Vec<Vec<f32>> {
        self.input
            .data
            .iter()
            .map(|ch| {
                (0..len as isize)
                    .map(|i| {
                        let q = start + i - delay as isize;
                        if q >= self.input.start as isize && q < self.received as isize {
                            ch[q as usize - self.input.start]
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Runs every segment whose input is complete, `batch` at a time per model.
    fn run_ready(&mut self) -> Result<()> {
        let seg = self.hy.segment();
        let files = self.lanes.iter().map(|l| l.file).max().map_or(0, |f| f + 1);
        for file in 0..files {
            loop {
                // (lane, offset, chunk) of the segments ready now, in lane order.
                let mut ready = Vec::new();
                'lanes: for (li, lane) in self.lanes.iter().enumerate().filter(|(_, l)| l.file == file) {
                    let len = self.received + lane.delay; // the lane's length, once finished
                    let mut o = lane.next;
                    while ready.len() < self.batch {
                        let full = o + seg <= self.received + lane.delay;
                        if !(full || (self.finished && o < len)) {
                            break;
                        }
                        ready.push((li, o, seg.min(len - o)));
                        o += self.stride;
                    }
                    if ready.len() == self.batch {
                        break 'lanes;
                    }
                }
                if ready.is_empty() {
                    break;
                }
                if self.cancel.is_some_and(|c| c.is_cancelled()) {
                    return Err(Error::Cancelled);
                }
                // A partial segment: centred with its context, or zeros after the end.
                let lead = |chunk: usize| if self.partial == Partial::Context { (seg - chunk) / 2 } else { 0 };
                let segments: Vec<Vec<Vec<f32>>> = ready
                    .iter()
                    .map(|&(li, o, chunk)| {
                        let start = o as isize - lead(chunk) as isize;
                        self.lane_input(self.lanes[li].delay, start, seg)
                    })
                    .collect();
                let results = self.hy.run(self.model, file, &segments)?;
                for (&(li, o, chunk), r) in ready.iter().zip(results) {
                    let start = lead(chunk); // center_trim
                    let lane = &mut self.lanes[li];
                    lane.out.reach(o + chunk);
                    lane.weight.reach(o + chunk);
                    let base = o - lane.out.start;
                    for (row, rc) in lane.out.data.iter_mut().zip(r.iter().flatten()) {
                        for ((d, s), w) in
                            row[base..base + chunk].iter_mut().zip(&rc[start..start + chunk]).zip(&self.tri)
                        {
                            *d += w * s;
                        }
                    }
                    let wb = o - lane.weight.start;
                    lane.weight.data[0][wb..wb + chunk].iter_mut().zip(&self.tri).for_each(|(s, w)| *s += w);
                    lane.next = o + self.stride;
                }
            }
        }
        Ok(())
    }

    /// Appends the mix frames no segment can still change.
    fn emit(&mut self, out: &mut StemAudio) -> Result<()> {
        let upto = if self.finished {
            self.received
        } else {
            self.lanes.iter().map(|l| l.next.saturating_sub(l.delay)).min().unwrap_or(0).min(self.received)
        };
        if upto <= self.emitted {
            return Ok(());
        }
        let (mean, std) = self.norm.expect("normalisation is known before processing");
        let c = self.hy.channels();
        let n = upto - self.emitted;
        let mut est = vec![vec![vec![0.0f32; n]; c]; self.stems];
        let mut first_file = true;
        let files = self.weights.len();
        for file in 0..files {
            // res = split(...) of each shift, summed and averaged (apply_model's order).
            let mut res = vec![vec![vec![0.0f32; n]; c]; self.stems];
            for lane in self.lanes.iter().filter(|l| l.file == file) {
                let (ob, wb) =
                    (self.emitted + lane.delay - lane.out.start, self.emitted + lane.delay - lane.weight.start);
                let wrow = &lane.weight.data[0];
                for (k, rs) in res.iter_mut().enumerate() {
                    for (ci, rc) in rs.iter_mut().enumerate() {
                        let row = &lane.out.data[k * c + ci];
                        for (i, v) in rc.iter_mut().enumerate() {
                            // A sample every window weighs 0 (a linear or Hann
                            // window's first) comes out silent, as in those exporters' code.
                            let w = wrow[wb + i];
                            if w != 0.0 {
                                *v += row[ob + i] / w;
                            }
                        }
                    }
                }
            }
            if self.shifts > 0 {
                let k = self.shifts as f32;
                res.iter_mut().flatten().flatten().for_each(|v| *v /= k);
            }
            for (k, rs) in res.iter_mut().enumerate() {
                let w = self.weights[file][k];
                if w != 1.0 {
                    rs.iter_mut().flatten().for_each(|r| *r *= w);
                }
            }
            if first_file {
                est = res;
                first_file = false;
            } else {
                for (es, rs) in est.iter_mut().zip(&res) {
                    for (ec, rc) in es.iter_mut().zip(rs) {
                        ec.iter_mut().zip(rc).for_each(|(e, r)| *e += r);
                    }
                }
            }
        }
        for (k, (es, os)) in est.into_iter().zip(out.iter_mut()).enumerate() {
            let t = self.totals[k];
            if os.len() != c {
                *os = vec![Vec::new(); c];
            }
            for (ec, oc) in es.into_iter().zip(os.iter_mut()) {
                oc.extend(ec.into_iter().map(|v| v / t * std + mean));
            }
        }
        self.emitted = upto;
        // Release what no segment and no emission reads again.
        let seg = self.hy.segment();
        for lane in &mut self.lanes {
            lane.out.forget(self.emitted + lane.delay);
            lane.weight.forget(self.emitted + lane.delay);
        }
        let needed = self.lanes.iter().map(|l| l.next.saturating_sub(l.delay)).min().unwrap_or(0);
        self.input.forget(needed.saturating_sub(seg).min(self.emitted));
        Ok(())
    }
}

impl FrameStream for DemucsStream<'_> {
    fn needs_prepass(&self) -> bool {
        self.norm.is_none()
    }
    fn set_input_stats(&mut self, mean: f32, std: f32) {
        // A model that does not normalise keeps (0, 1) whatever the caller estimates.
        if self.received == 0 && self.normalise {
            self.norm = Some((mean, std));
        }
    }
    fn prepass(&mut self, block: &[&[f32]]) -> Result<()> {
        check_block(&StreamSpec { sample_rate: self.rate, channels: self.channels_in, frames: None }, block)?;
        let block = to_model_channels(block, self.rate, self.hy.channels())?;
        self.stats.add(&block);
        Ok(())
    }
    fn process(&mut self, block: &[&[f32]], out: &mut StemAudio) -> Result<()> {
        check_block(&StreamSpec { sample_rate: self.rate, channels: self.channels_in, frames: None }, block)?;
        if self.finished {
            return Err(Error::invalid("StemStream::process", "a call before finish()", "a call after finish()"));
        }
        let (mean, std) = *self.norm.get_or_insert_with(|| self.stats.finish());
        let block = to_model_channels(block, self.rate, self.hy.channels())?;
        self.input.reach(self.input.start.max(self.received));
        for (t, b) in self.input.data.iter_mut().zip(&block) {
            t.extend(b.iter().map(|x| (x - mean) / std));
        }
        self.received += block[0].len();
        self.run_ready()?;
        self.emit(out)
    }
    fn finish(&mut self, out: &mut StemAudio) -> Result<()> {
        if self.received == 0 {
            return Err(Error::Empty { what: "input audio".into() });
        }
        self.finished = true;
        self.run_ready()?;
        self.emit(out)
    }
}

/// `demucs.api.Separator.separate_tensor` on `mix` (channels × frames, already at
/// the model's rate and channel count): returns stems × channels × frames.
pub(crate) fn separate(
    model: &mut Model,
    hy: &mut dyn SegmentNet,
    mix: &[Vec<f32>],
    set: &mut ApplySettings,
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let n = mix[0].len();
    let rate = model.manifest().sample_rate;
    let spec = StreamSpec { sample_rate: rate, channels: mix.len(), frames: Some(n as u64) };
    let block_len = hy.segment() * 4;
    let mut stream = DemucsStream::new(model, hy, &spec, set, opts.cancel)?;
    // The whole input is one prepass block: the statistics of the two-pass formula.
    if stream.needs_prepass() {
        stream.prepass(&crate::stream::planar(mix))?;
    }
    let stems = stream.stems;
    feed_whole(&mut stream, mix, block_len, stems, opts)
}
