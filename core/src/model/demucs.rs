//! HT-Demucs (`demucs-hybrid`), as `demucs.api.Separator.separate_tensor` runs it:
//! normalisation by the mono mix's mean and standard deviation, then
//! `demucs.apply.apply_model` — segments with triangular overlap weights, the last
//! segment padded with its real neighbours, random shifts, bags with per-stem
//! weights — around a graph that holds the network without its STFT and ISTFT,
//! which are computed here exactly as `HTDemucs._spec` and `HTDemucs._ispec` do.

use ndarray::{Array3, Array4, ArrayViewD, Axis, Ix5};

use super::Model;
use super::manifest::Manifest;
use super::neural::{Counter, StemAudio};
use crate::error::{Error, Result};
use crate::separator::SeparateOptions;
use crate::stft::{PadMode, Spectrogram, Stft, StftConfig, WindowKind};
use realfft::num_complex::Complex32;

/// A view of `len` frames of `base` starting at `offset`: demucs's `TensorChunk`.
/// Padding a view to a longer length takes real samples of `base` on both sides
/// where they exist and zeros beyond.
/// Samples of `base` are normalised on the fly as `(x − mean) / std`, so the
/// normalised track is never stored; padding is zeros after normalisation.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    base: &'a [Vec<f32>],
    offset: usize,
    len: usize,
    mean: f32,
    std: f32,
}

impl<'a> Chunk<'a> {
    fn whole(base: &'a [Vec<f32>], mean: f32, std: f32) -> Self {
        Self { base, offset: 0, len: base[0].len(), mean, std }
    }

    /// `TensorChunk(self, offset, length)`.
    fn sub(&self, offset: usize, len: usize) -> Self {
        Self { offset: self.offset + offset, len: len.min(self.len - offset), ..*self }
    }

    /// `TensorChunk.padded(target)`, one row per channel.
    fn padded(&self, target: usize) -> Vec<Vec<f32>> {
        debug_assert!(target >= self.len);
        let delta = target - self.len;
        let start = self.offset as isize - (delta / 2) as isize;
        self.base
            .iter()
            .map(|ch| {
                let total = ch.len() as isize;
                (0..target as isize)
                    .map(|i| {
                        let j = start + i;
                        if (0..total).contains(&j) { (ch[j as usize] - self.mean) / self.std } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }
}

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
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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

/// `demucs.api.Separator.separate_tensor` on `mix` (channels × frames, already at
/// the model's rate and channel count): returns stems × channels × frames.
pub(crate) fn separate(
    model: &mut Model,
    hy: &mut Hybrid,
    mix: &[Vec<f32>],
    set: &mut ApplySettings,
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let m = model.manifest().clone();
    let n = mix[0].len();
    // Global normalisation by the mono mix (torch's unbiased std, plus 1e-8).
    let mono: Vec<f64> = (0..n).map(|i| mix.iter().map(|c| c[i] as f64).sum::<f64>() / mix.len() as f64).collect();
    let mean = mono.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { mono.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    let (mean, std) = (mean as f32, (var.sqrt() + 1e-8) as f32);

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
    // Offsets are drawn up front, in apply_model's order: model by model, shift by shift.
    let mut plan = Vec::with_capacity(m.files.len());
    for _ in &m.files {
        let mut shifts = Vec::new();
        for _ in 0..set.shifts {
            shifts.push(set.offsets.next(max_shift)?);
        }
        plan.push(shifts);
    }
    let views = |shifts: &[usize]| -> usize {
        if shifts.is_empty() {
            n.div_ceil(stride)
        } else {
            shifts.iter().map(|o| (n + max_shift - o).div_ceil(stride)).sum()
        }
    };
    let total: usize = plan.iter().map(|s| views(s)).sum();
    let mut progress = Counter::new(total as u64, opts);
    progress.report();

    let stems = m.stems.len();
    let channels = mix.len();
    let mut estimates: Option<StemAudio> = None;
    let mut totals = vec![0.0f32; stems];
    let whole = Chunk::whole(mix, mean, std);
    for (file, shifts) in plan.iter().enumerate() {
        let res = if shifts.is_empty() {
            split(model, file, hy, whole, stride, set.batch, &mut progress)?
        } else {
            let padded = whole.padded(n + 2 * max_shift);
            let mut out = vec![vec![vec![0.0f32; n]; channels]; stems];
            for &o in shifts {
                let view = Chunk { base: padded.as_slice(), offset: o, len: n + max_shift - o, mean: 0.0, std: 1.0 };
                let r = split(model, file, hy, view, stride, set.batch, &mut progress)?;
                for (os, rs) in out.iter_mut().zip(&r) {
                    for (oc, rc) in os.iter_mut().zip(rs) {
                        oc.iter_mut().zip(&rc[max_shift - o..]).for_each(|(a, b)| *a += b);
                    }
                }
            }
            let k = shifts.len() as f32;
            out.iter_mut().flatten().flatten().for_each(|v| *v /= k);
            out
        };
        let mut res = res;
        let weights = m.files[file].stem_weights.clone().unwrap_or_else(|| vec![1.0; stems]);
        for (k, (&w, rs)) in weights.iter().zip(res.iter_mut()).enumerate() {
            totals[k] += w;
            if w != 1.0 {
                rs.iter_mut().flatten().for_each(|r| *r *= w);
            }
        }
        match estimates.as_mut() {
            None => estimates = Some(res),
            Some(e) => {
                for (es, rs) in e.iter_mut().zip(&res) {
                    for (ec, rc) in es.iter_mut().zip(rs) {
                        ec.iter_mut().zip(rc).for_each(|(e, r)| *e += r);
                    }
                }
            }
        }
    }
    let mut estimates = estimates.expect("a package has at least one file");
    for (k, s) in estimates.iter_mut().enumerate() {
        let t = totals[k];
        s.iter_mut().flatten().for_each(|v| *v = *v / t * std + mean);
    }
    Ok(estimates)
}

/// `apply_model(..., shifts=0, split=True)` on one view: overlapping segments,
/// each padded to the segment length, weighted by a triangle and overlap-added.
fn split(
    model: &mut Model,
    file: usize,
    hy: &mut Hybrid,
    view: Chunk<'_>,
    stride: usize,
    batch: usize,
    progress: &mut Counter<'_, '_>,
) -> Result<StemAudio> {
    let seg = hy.segment;
    let len = view.len;
    // Triangle with its maximum in the middle, normalised to 1 (transition_power 1).
    let peak = (seg / 2).max(seg - seg / 2) as f32;
    let weight: Vec<f32> = (0..seg).map(|i| if i < seg / 2 { i + 1 } else { seg - i } as f32 / peak).collect();
    let mut out = vec![vec![vec![0.0f32; len]; hy.channels]; hy.stems];
    let mut sum_weight = vec![0.0f32; len];
    let offsets: Vec<usize> = (0..len).step_by(stride).collect();
    for group in offsets.chunks(batch.max(1)) {
        progress.opts.check_cancel()?;
        let segments: Vec<Vec<Vec<f32>>> = group.iter().map(|&o| view.sub(o, seg).padded(seg)).collect();
        let results = run_batch(model, file, hy, &segments)?;
        for (&o, r) in group.iter().zip(results) {
            let chunk = seg.min(len - o);
            let start = (seg - chunk) / 2; // center_trim
            for (os, rs) in out.iter_mut().zip(&r) {
                for (oc, rc) in os.iter_mut().zip(rs) {
                    for ((d, s), w) in oc[o..o + chunk].iter_mut().zip(&rc[start..start + chunk]).zip(&weight) {
                        *d += w * s;
                    }
                }
            }
            sum_weight[o..o + chunk].iter_mut().zip(&weight).for_each(|(s, w)| *s += w);
        }
        progress.done += group.len() as u64;
        progress.report();
    }
    for s in out.iter_mut().flatten() {
        s.iter_mut().zip(&sum_weight).for_each(|(v, w)| *v /= w);
    }
    Ok(out)
}
