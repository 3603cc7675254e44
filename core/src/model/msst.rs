//! The families of ZFTurbo's Music-Source-Separation-Training (the PyPI
//! package `msst`), run as its `msst.utils.model_utils.demix` runs them:
//!
//! - the mix reflect-padded by `border = chunk − step` at both ends when it is
//!   longer than `2 · border` (`step = chunk // num_overlap`);
//! - chunks every `step` samples, the last one reflect-padded to a whole chunk
//!   when it holds more than half a chunk and zero-padded otherwise;
//! - `batch_size` chunks per network call, each weighted by a window that fades
//!   in and out linearly over `chunk // 10` samples, except that a batch whose
//!   last chunk is the first one has no fade-in, and the final batch no
//!   fade-out (so with `batch_size` > 1 the output depends on it, as msst's does);
//! - the weighted sum divided by the summed weights (0/0 → 0), the padding cut off;
//! - optionally (`inference.normalize`) the mix normalised by the mean and
//!   population standard deviation of its mono mix, and each stem scaled back;
//! - for a single-target model, a second stem: the mix minus the target.
//!
//! Mono input to a stereo model is duplicated first, as msst's
//! `separate_audio` prepares it (`audio.num_channels`).
//!
//! The network between the STFT and the inverse STFT is the package's graph;
//! the STFT, the band layout and the complex mask are computed here, per
//! family ([`Roformer`]: BS-RoFormer and Mel-Band RoFormer; [`Spectral`]:
//! MDX23C and SCNet).

use ndarray::{Array3, Array4, Ix4, Ix5};
use realfft::num_complex::Complex32;

use super::Model;
use super::chunked::{Counter, Tape, feed_whole, take_block, to_model_channels};
use super::demucs::MixStats;
use super::manifest::{Family, Manifest, Mdx23cParams, MsstParams, RoformerParams};
use crate::error::{Error, Result};
use crate::separator::SeparateOptions;
use crate::stft::{PadMode, Spectrogram, Stft, WindowKind};
use crate::stream::{FrameStream, StemAudio, StreamSpec, check_block};

/// Bounds that keep every size computed from a manifest far from overflow.
const MAX_BATCH: usize = 256;
const MAX_CHUNK: usize = 1 << 24;

/// One chunk's audio: channels × samples.
type Part = Vec<Vec<f32>>;

/// A family's network on a batch of chunks.
pub(crate) enum Net {
    Roformer(Roformer),
    Spectral(Spectral),
}

/// Whether the RoFormers zero the DC bin as their config says (`zero_dc`):
/// msst does; audio-separator's RoFormer classes take the flag and ignore it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dc {
    AsConfigured,
    Kept,
}

impl Net {
    /// `parts` are [chunk][channel][chunk samples]; returns [chunk][network stem][channel][chunk samples].
    fn run(&mut self, model: &mut Model, parts: &[Part], dc: Dc) -> Result<Vec<Vec<Part>>> {
        match self {
            Net::Roformer(r) => r.run(model, parts, r.zero_dc && dc == Dc::AsConfigured),
            Net::Spectral(r) => r.run(model, parts),
        }
    }
}

/// A package of an `msst` family, ready to run.
pub(crate) struct Msst {
    p: MsstParams,
    net: Net,
    channels: usize,
    /// The network's stems, in its output order.
    net_stems: usize,
    step: usize,
    fade: usize,
    border: usize,
    /// `_getWindowingArray(chunk, fade)`.
    window: Vec<f32>,
}

impl Msst {
    pub fn new(m: &Manifest) -> std::result::Result<Self, String> {
        let p = m.msst.clone().ok_or("the msst families need an `msst` section (chunk_size, num_overlap, …)")?;
        let chunk = p.chunk_size;
        if p.num_overlap == 0 || p.num_overlap > chunk || !(1..=MAX_BATCH).contains(&p.batch_size) {
            return Err(format!(
                "msst: num_overlap must be in 1..=chunk_size and batch_size in 1..={MAX_BATCH}; got {p:?}"
            ));
        }
        if chunk > MAX_CHUNK {
            return Err(format!("msst: chunk_size {chunk} is over {MAX_CHUNK} samples"));
        }
        if m.channels != 2 {
            return Err("msst: the models are stereo (msst's demix makes every input stereo)".into());
        }
        if m.files.len() != 1 || m.files[0].stem_weights.is_some() {
            return Err("msst: a package of these families is one graph, without stem_weights".into());
        }
        if m.segment_samples != chunk {
            return Err(format!("msst: segment_samples must equal msst.chunk_size {chunk}, got {}", m.segment_samples));
        }
        let net_stems = m.stems.len() - usize::from(p.residual);
        if net_stems == 0 || (p.residual && net_stems != 1) {
            return Err(
                "msst: `residual` adds a second stem to a single-target model (one stem, then the residual)".into()
            );
        }
        let net = match m.family {
            Family::BsRoformer | Family::MelBandRoformer => Net::Roformer(Roformer::new(m, net_stems)?),
            Family::Mdx23c => Net::Spectral(Spectral::mdx23c(m, net_stems)?),
            Family::Scnet => Net::Spectral(Spectral::scnet(m, net_stems)?),
            f => return Err(format!("msst: family {f:?} is not one of msst's")),
        };
        let step = chunk / p.num_overlap;
        let fade = chunk / 10;
        Ok(Self {
            window: windowing_array(chunk, fade),
            border: chunk - step,
            step,
            fade,
            net,
            net_stems,
            channels: m.channels,
            p,
        })
    }

    pub fn params(&self) -> &MsstParams {
        &self.p
    }
}

/// `torch.linspace(start, end, steps)` in float32, as ATen's CPU kernel
/// computes it: from the start for the first half, from the end for the rest.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    match steps {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (steps - 1) as f32;
            let half = steps / 2;
            (0..steps)
                .map(|i| if i < half { start + step * i as f32 } else { end - step * (steps - i - 1) as f32 })
                .collect()
        }
    }
}

/// `_getWindowingArray(window_size, fade_size)`: ones, with linear fades of
/// `fade` samples at both ends (from exactly 0 and to exactly 0).
fn windowing_array(size: usize, fade: usize) -> Vec<f32> {
    let mut w = vec![1.0f32; size];
    if fade == 0 || fade > size {
        return w;
    }
    w[..fade].copy_from_slice(&linspace_f32(0.0, 1.0, fade));
    w[size - fade..].copy_from_slice(&linspace_f32(1.0, 0.0, fade));
    w
}

/// `F.pad(part, (0, n), mode="reflect")` of one channel: `n` mirrored samples
/// (the last one not repeated); `n < part.len()`.
fn reflect_tail(part: &mut Vec<f32>, n: usize) {
    let len = part.len();
    for j in 0..n {
        let v = part[len - 2 - j];
        part.push(v);
    }
}

/// `demix` as a [`crate::stream::StemStream`]. Chunks run once their input is there and it is
/// known whether their batch is the last; frames are released once no later
/// chunk covers them. With `normalize`, the mix's statistics come first (a
/// prepass over the whole input, or [`crate::stream::StemStream::set_input_stats`]).
pub(crate) struct MsstStream<'m> {
    model: &'m mut Model,
    ms: &'m mut Msst,
    spec: StreamSpec,
    stats: MixStats,
    /// `(mean, std)` of `normalize`, once known.
    norm: Option<(f32, f32)>,
    /// The mix in the model's channels, in mix frames (not normalised).
    input: Tape,
    received: usize,
    finished: bool,
    /// Whether the mix is reflect-padded; decided once it is longer than
    /// `2 · border`, or at the end.
    padded: Option<bool>,
    /// Weighted sums (network stems × channels rows) and their weights, in padded frames.
    result: Tape,
    counter: Tape,
    /// Index of the next chunk to run.
    next: usize,
    /// Mix frames released.
    emitted: usize,
    cancel: Option<&'m crate::separator::CancelToken>,
}

impl<'m> MsstStream<'m> {
    pub fn new(
        model: &'m mut Model,
        ms: &'m mut Msst,
        spec: &StreamSpec,
        cancel: Option<&'m crate::separator::CancelToken>,
    ) -> Self {
        let rows = ms.net_stems * ms.channels;
        let norm = (!ms.p.normalize).then_some((0.0, 1.0));
        Self {
            input: Tape::new(ms.channels),
            result: Tape::new(rows),
            counter: Tape::new(1),
            model,
            ms,
            spec: *spec,
            stats: MixStats::default(),
            norm,
            received: 0,
            finished: false,
            padded: None,
            next: 0,
            emitted: 0,
            cancel,
        }
    }

    fn pad(&self) -> usize {
        if self.padded == Some(true) { self.ms.border } else { 0 }
    }

    /// The padded mix's length, once the input has ended.
    fn padded_len(&self) -> Option<usize> {
        self.finished.then(|| self.received + 2 * self.pad())
    }

    /// Sample `p` (padded frames) of channel `c` of the normalised, padded mix,
    /// for `p` below the padded length (and, before the end, inside the input).
    fn sample(&self, c: usize, p: usize) -> f32 {
        let (b, n) = (self.pad(), self.received);
        let q = if p < b {
            b - p // reflect: x[border - p]
        } else if p - b < n {
            p - b
        } else {
            2 * (n - 1) - (p - b) // reflect at the end: x[2(n-1) - j]
        };
        let (mean, std) = self.norm.unwrap_or((0.0, 1.0));
        let x = self.input.data[c][q - self.input.start];
        if self.ms.p.normalize { (x - mean) / std } else { x }
    }

    /// Runs every batch whose chunks are complete and whose place (last batch
    /// or not) is known.
    fn run_ready(&mut self) -> Result<()> {
        if self.norm.is_none() {
            return Ok(());
        }
        if self.padded.is_none() {
            let long = self.received > 2 * self.ms.border;
            if self.ms.border == 0 {
                self.padded = Some(false);
            } else if long {
                self.padded = Some(true);
            } else if self.finished {
                self.padded = Some(false);
            } else {
                return Ok(());
            }
        }
        let (chunk, step, bs) = (self.ms.p.chunk_size, self.ms.step, self.ms.p.batch_size);
        loop {
            let first = self.next;
            let lp = self.padded_len();
            // The chunks of this batch: [first, first + bs), cut at the last chunk.
            let count = match lp {
                Some(lp) => {
                    let total = lp.div_ceil(step);
                    if first >= total {
                        return Ok(());
                    }
                    (total - first).min(bs)
                }
                None => {
                    // Before the end: every chunk whole, and the batch provably not the last
                    // (the padded length is at least what arrived plus both borders).
                    let known = self.pad() + self.received;
                    let last = first + bs - 1;
                    if last * step + chunk > known || (last + 1) * step >= known + self.pad() {
                        return Ok(());
                    }
                    bs
                }
            };
            if self.cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(Error::Cancelled);
            }
            let lp = lp.unwrap_or(usize::MAX);
            let mut parts = Vec::with_capacity(count);
            let mut lens = Vec::with_capacity(count);
            for k in first..first + count {
                let s = k * step;
                let len = chunk.min(lp - s);
                let part: Part = (0..self.ms.channels)
                    .map(|c| {
                        let mut v: Vec<f32> = (s..s + len).map(|p| self.sample(c, p)).collect();
                        if len > chunk / 2 {
                            reflect_tail(&mut v, chunk - len);
                        } else {
                            v.resize(chunk, 0.0);
                        }
                        v
                    })
                    .collect();
                parts.push(part);
                lens.push(len);
            }
            let outs = self.ms.net.run(self.model, &parts, Dc::AsConfigured)?;
            // The batch's window: `i` after its last chunk is (last + 1) · step.
            let last = first + count - 1;
            let mut window = self.ms.window.clone();
            let fade = self.ms.fade.min(chunk);
            if last == 0 {
                window[..fade].fill(1.0);
            } else if (last + 1) * step >= lp {
                window[chunk - fade..].fill(1.0);
            }
            for (j, (x, &len)) in outs.iter().zip(&lens).enumerate() {
                let s = (first + j) * step;
                self.result.reach(s + len);
                self.counter.reach(s + len);
                let (rs, cs) = (s - self.result.start, s - self.counter.start);
                for (stem, chans) in x.iter().enumerate() {
                    for (c, y) in chans.iter().enumerate() {
                        let row = &mut self.result.data[stem * self.ms.channels + c][rs..rs + len];
                        row.iter_mut().zip(&y[..len]).zip(&window).for_each(|((r, &y), &w)| *r += y * w);
                    }
                }
                let counter = &mut self.counter.data[0][cs..cs + len];
                counter.iter_mut().zip(&window).for_each(|(d, &w)| *d += w);
            }
            self.next = first + count;
        }
    }

    /// Appends the stems for the mix frames no later chunk can change.
    fn emit(&mut self, out: &mut StemAudio) -> Result<()> {
        let Some(padded) = self.padded else { return Ok(()) };
        let b = if padded { self.ms.border } else { 0 };
        let upto = if self.finished && self.padded_len().is_some_and(|lp| self.next * self.ms.step >= lp) {
            self.received
        } else {
            (self.next * self.ms.step).saturating_sub(b).min(self.received)
        };
        if upto <= self.emitted {
            return Ok(());
        }
        let (q0, q1) = (self.emitted, upto);
        let (mean, std) = self.norm.unwrap_or((0.0, 1.0));
        let denorm = |v: f32| if self.ms.p.normalize { v * std + mean } else { v };
        let counter = &self.counter.data[0][q0 + b - self.counter.start..q1 + b - self.counter.start];
        let stems = self.ms.net_stems + usize::from(self.ms.p.residual);
        if out.len() != stems {
            *out = vec![vec![Vec::new(); self.ms.channels]; stems];
        }
        for (k, os) in out.iter_mut().enumerate() {
            if os.len() != self.ms.channels {
                *os = vec![Vec::new(); self.ms.channels];
            }
            // The residual stem is mix − the target (stem 0).
            let stem = if k < self.ms.net_stems { k } else { 0 };
            for (c, oc) in os.iter_mut().enumerate() {
                let r = &self.result.data[stem * self.ms.channels + c]
                    [q0 + b - self.result.start..q1 + b - self.result.start];
                // result / counter, with 0/0 (and any NaN) → 0 as np.nan_to_num does.
                let est = r.iter().zip(counter).map(|(&r, &d)| {
                    let v = r / d;
                    // demix zeroes 0/0 before separate_audio scales back: such a sample is the mean.
                    denorm(if v.is_nan() { 0.0 } else { v })
                });
                if k < self.ms.net_stems {
                    oc.extend(est);
                } else {
                    let m = &self.input.data[c][q0 - self.input.start..q1 - self.input.start];
                    oc.extend(m.iter().zip(est).map(|(m, e)| m - e));
                }
            }
        }
        self.emitted = upto;
        self.result.forget(self.emitted + b);
        self.counter.forget(self.emitted + b);
        // Keep what later chunks and the residual still read: the reflected
        // head (x[1..=border]) until the first chunk ran, and the end's mirror.
        let keep_from = (self.next * self.ms.step).saturating_sub(b).min(self.emitted);
        if self.next > 0 {
            let mirror = self.received.saturating_sub(self.ms.border + 1);
            self.input.forget(keep_from.min(mirror));
        }
        Ok(())
    }
}

impl FrameStream for MsstStream<'_> {
    fn needs_prepass(&self) -> bool {
        self.norm.is_none()
    }
    fn set_input_stats(&mut self, mean: f32, std: f32) {
        if self.received == 0 {
            let std = if std.is_finite() && std > f32::EPSILON { std } else { 1.0 };
            self.norm = Some((if mean.is_finite() { mean } else { 0.0 }, std));
        }
    }
    fn prepass(&mut self, block: &[&[f32]]) -> Result<()> {
        check_block(&self.spec, block)?;
        let block = to_model_channels(block, self.spec.sample_rate, self.ms.channels)?;
        self.stats.add(&block);
        Ok(())
    }
    fn process(&mut self, block: &[&[f32]], out: &mut StemAudio) -> Result<()> {
        if self.norm.is_none() {
            self.norm = Some(population_stats(&self.stats));
        }
        self.received += take_block(&self.spec, self.finished, block, self.ms.channels, &mut self.input)?;
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

/// msst's `normalize`: the mono mix's mean and population standard deviation;
/// a deviation that is not finite or at most f32's epsilon counts as 1.
fn population_stats(s: &MixStats) -> (f32, f32) {
    let (mean, var) = s.mean_and_population_variance();
    let std = var.sqrt() as f32;
    (mean as f32, if std.is_finite() && std > f32::EPSILON { std } else { 1.0 })
}

/// Separates a mix (model channels) at the model's rate.
pub(crate) fn separate(
    model: &mut Model,
    ms: &mut Msst,
    mix: &[Vec<f32>],
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let rate = model.manifest().sample_rate;
    let spec = StreamSpec { sample_rate: rate, channels: mix.len(), frames: Some(mix[0].len() as u64) };
    let block_len = ms.p.chunk_size * 2;
    let stems = model.manifest().stems.len();
    let mut stream = MsstStream::new(model, ms, &spec, opts.cancel);
    if stream.needs_prepass() {
        stream.prepass(&crate::stream::planar(mix))?;
    }
    feed_whole(&mut stream, mix, block_len, stems, opts)
}

// ---------------------------------------------------------------------------
// audio-separator's chunking

/// Separates a mix (model channels) as audio-separator 0.47's `MDXCSeparator`
/// does (`separate` → `demix`), for people moving from it:
/// - the mix scaled down to a peak of 0.9 when it is louder (`spec_utils.normalize`),
///   and never scaled back;
/// - RoFormers: chunks every `chunk // num_overlap` samples, unpadded, the last
///   one ending at the end of the input; each weighted by a symmetric Hamming
///   window of the chunk (every chunk, the first and last too); the weighted sum
///   divided by the summed weights (at least 1e-10); one chunk per network call;
/// - MDX23C: the mix zero-padded by `chunk − step` in front and by
///   `step − (len − chunk) mod step` plus `chunk − step` at the end; chunks every
///   `step`, summed unweighted and divided by `num_overlap` (where the chunk is
///   not a multiple of `num_overlap`, some samples are covered once more, and
///   louder, as they are there);
/// - a single-target model's rest is the scaled mix minus the target;
/// - each stem scaled down to a peak of 0.9 when it is louder, as it writes them;
/// - the RoFormers' DC bin is not zeroed: audio-separator's RoFormer classes
///   take `zero_dc` and ignore it.
///
/// Its `num_overlap` is the manifest's (audio-separator's default, the config's
/// `inference.num_overlap`); msst's `normalize` does not apply (audio-separator
/// does not normalise). A RoFormer input shorter than one chunk is refused:
/// audio-separator runs the network on the shorter input, and the package's
/// graph has a fixed frame count.
pub(crate) fn separate_mdxc(
    model: &mut Model,
    ms: &mut Msst,
    mix: &[Vec<f32>],
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let chunk = ms.p.chunk_size;
    let n = mix[0].len();
    let step = ms.step;
    let mut x: Vec<Vec<f32>> = mix.to_vec();
    peak_limit(&mut x, 0.9);
    let stems = ms.net_stems;
    let mut result = vec![vec![vec![0.0f32; n]; ms.channels]; stems];
    let mut progress = Counter::new(0, opts);
    match &ms.net {
        Net::Roformer(_) => {
            if n < chunk {
                return Err(Error::invalid(
                    "input",
                    format!(
                        "at least one chunk ({chunk} samples) with audio-separator's chunking: it runs the network on \
                         a shorter input, and this package's graph has a fixed frame count (use msst's chunking)"
                    ),
                    format!("{n} samples"),
                ));
            }
            let starts = mdxc_roformer_starts(n, chunk, step);
            let window = hamming(chunk);
            let mut counter = vec![0.0f32; n];
            progress.total = starts.len() as u64;
            progress.report();
            for &s in &starts {
                opts.check_cancel()?;
                let part: Part = x.iter().map(|c| c[s..s + chunk].to_vec()).collect();
                let out = ms.net.run(model, &[part], Dc::Kept)?;
                for (stem, chans) in out[0].iter().enumerate() {
                    for (c, y) in chans.iter().enumerate() {
                        let r = &mut result[stem][c][s..s + chunk];
                        r.iter_mut().zip(y).zip(&window).for_each(|((r, &y), &w)| *r += y * w);
                    }
                }
                counter[s..s + chunk].iter_mut().zip(&window).for_each(|(d, &w)| *d += w);
                progress.done += 1;
                progress.report();
            }
            for chans in &mut result {
                for r in chans.iter_mut() {
                    r.iter_mut().zip(&counter).for_each(|(r, &d)| *r /= d.max(1e-10));
                }
            }
        }
        Net::Spectral(_) => {
            // Zeros: chunk − step in front; step − (n − chunk) mod step, plus chunk − step, at the end.
            let front = chunk - step;
            let tail = step - ((n as i64 - chunk as i64).rem_euclid(step as i64)) as usize;
            let padded = front + n + tail + front;
            let count = (padded - chunk) / step + 1;
            let sample = |c: usize, p: usize| if p >= front && p - front < n { x[c][p - front] } else { 0.0 };
            let mut acc = vec![vec![vec![0.0f32; padded]; ms.channels]; stems];
            progress.total = count as u64;
            progress.report();
            for first in (0..count).step_by(ms.p.batch_size) {
                opts.check_cancel()?;
                let parts: Vec<Part> = (first..count.min(first + ms.p.batch_size))
                    .map(|k| {
                        (0..ms.channels).map(|c| (k * step..k * step + chunk).map(|p| sample(c, p)).collect()).collect()
                    })
                    .collect();
                let outs = ms.net.run(model, &parts, Dc::Kept)?;
                for (j, out) in outs.iter().enumerate() {
                    let s = (first + j) * step;
                    for (stem, chans) in out.iter().enumerate() {
                        for (c, y) in chans.iter().enumerate() {
                            acc[stem][c][s..s + chunk].iter_mut().zip(y).for_each(|(a, &y)| *a += y);
                        }
                    }
                }
                progress.done += parts.len() as u64;
                progress.report();
            }
            let overlap = ms.p.num_overlap as f32;
            for (r, a) in result.iter_mut().zip(&acc) {
                for (r, a) in r.iter_mut().zip(a) {
                    r.iter_mut().zip(&a[front..front + n]).for_each(|(r, &a)| *r = a / overlap);
                }
            }
        }
    }
    if ms.p.residual {
        let rest = result[0].iter().zip(&x).map(|(t, m)| m.iter().zip(t).map(|(m, t)| m - t).collect()).collect();
        result.push(rest);
    }
    for stem in &mut result {
        peak_limit(stem, 0.9);
    }
    Ok(result)
}

/// `spec_utils.normalize(wave, max_peak)`: the whole signal scaled by
/// `max_peak / peak` (in f32, as numpy computes it) when its peak is above `max_peak`.
fn peak_limit(x: &mut [Vec<f32>], max_peak: f32) {
    let peak = x.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > max_peak {
        let k = max_peak / peak;
        x.iter_mut().flatten().for_each(|v| *v *= k);
    }
}

/// `MDXCSeparator._roformer_chunk_starts`: every `step` until a chunk reaches
/// the end, then one chunk ending at the end (unless it starts where the last did).
fn mdxc_roformer_starts(n: usize, chunk: usize, step: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut offset = 0;
    while offset < n {
        if offset + chunk >= n {
            let tail = n.saturating_sub(chunk);
            if starts.last() != Some(&tail) {
                starts.push(tail);
            }
            break;
        }
        starts.push(offset);
        offset += step;
    }
    starts
}

/// `scipy.signal.windows.hamming(m)` (symmetric) as float32: `0.54 + 0.46 ·
/// cos(θ)` for θ = `np.linspace(−π, π, m)`, computed in f64.
fn hamming(m: usize) -> Vec<f32> {
    use std::f64::consts::PI;
    match m {
        0 => Vec::new(),
        1 => vec![1.0],
        _ => {
            let step = 2.0 * PI / (m - 1) as f64;
            (0..m)
                .map(|i| {
                    let theta = if i == m - 1 { PI } else { -PI + i as f64 * step };
                    (0.54 + 0.46 * theta.cos()) as f32
                })
                .collect()
        }
    }
}

// ---------------------------------------------------------------------------
// BS-RoFormer and Mel-Band RoFormer

/// The band-split RoFormers of `msst.models.bs_roformer`: a torch STFT of each
/// channel; the network's input `[batch, frames, rows · 2]` where rows are the
/// (bin, channel) pairs bin-major, gathered into bands (BS-RoFormer: every bin
/// once, in order; Mel-Band RoFormer: each mel band's bins, overlapping); its
/// output, the complex masks of every stem in the same layout; each bin's mask
/// the mean over the bands that hold it; the spectrum times the mask, the DC
/// bin zeroed (`zero_dc`), and the inverse STFT.
pub(crate) struct Roformer {
    stft: Stft,
    channels: usize,
    stems: usize,
    frames: usize,
    /// The bin of each gathered row (band-major; per bin both channels follow).
    gather: Vec<usize>,
    /// The number of bands holding each bin.
    count: Vec<f32>,
    zero_dc: bool,
    /// iSTFT length: the chunk, or `hop · (frames − 1)` (Mel-Band without `match_input_audio_length`).
    out_len: usize,
    chunk: usize,
    input: String,
    output: String,
    specs: Vec<Spectrogram>,
    wave: Vec<f32>,
}

impl Roformer {
    fn new(m: &Manifest, stems: usize) -> std::result::Result<Self, String> {
        let family = if m.family == Family::BsRoformer { "bs-roformer" } else { "mel-band-roformer" };
        let r: &RoformerParams = m.roformer.as_ref().ok_or_else(|| format!("{family} needs a `roformer` section"))?;
        let cfg = super::manifest::plain_torch_stft(m, family)?;
        let bins = cfg.bins();
        let chunk = m.segment_samples;
        if chunk <= cfg.n_fft / 2 {
            return Err(format!("{family}: a chunk of {chunk} samples is too short for an n_fft of {}", cfg.n_fft));
        }
        let bands: Vec<Vec<usize>> = match (m.family, &r.freqs_per_bands, r.num_bands) {
            (Family::BsRoformer, Some(fpb), None) => {
                if fpb.len() < 2 || fpb.contains(&0) || fpb.iter().sum::<usize>() != bins {
                    return Err(format!(
                        "bs-roformer: freqs_per_bands must be at least two positive band widths summing to n_fft/2+1 = {bins}; got {fpb:?}"
                    ));
                }
                let mut start = 0;
                fpb.iter()
                    .map(|&w| {
                        start += w;
                        (start - w..start).collect()
                    })
                    .collect()
            }
            (Family::MelBandRoformer, None, Some(n)) => match &r.mel_bands {
                // The bins the module itself computed (exported with the package).
                Some(given) => {
                    if given.len() != n || given.iter().any(|&[a, b]| a > b || b >= bins) {
                        return Err(format!(
                            "mel-band-roformer: mel_bands must be {n} [first, last] bin ranges below {bins}"
                        ));
                    }
                    given.iter().map(|&[a, b]| (a..=b).collect()).collect()
                }
                None => mel_bands(r.mel_sample_rate.unwrap_or(m.sample_rate), cfg.n_fft, n)?,
            },
            _ => {
                return Err(format!(
                    "{family}: the roformer section has `freqs_per_bands` (bs-roformer) or `num_bands` (mel-band-roformer)"
                ));
            }
        };
        let mut counts = vec![0usize; bins];
        let gather: Vec<usize> = bands.iter().flatten().copied().collect();
        gather.iter().for_each(|&f| counts[f] += 1);
        if let Some(f) = counts.iter().position(|&c| c == 0) {
            return Err(format!("{family}: bin {f} is in no band"));
        }
        let frames = cfg.num_frames(chunk);
        let rows = gather.len() * m.channels * 2;
        let out_len = if m.family == Family::MelBandRoformer && !r.match_input_audio_length {
            cfg.hop_length * (frames - 1)
        } else {
            chunk
        };
        if out_len < chunk {
            return Err(format!(
                "{family}: without match_input_audio_length the output is {out_len} samples, shorter than the \
                 chunk of {chunk} (msst itself fails here); use a chunk_size that is a multiple of the hop"
            ));
        }
        let want_in = [-1, frames as i64, rows as i64];
        let want_out = [-1, stems as i64, frames as i64, rows as i64];
        let ok = |specs: &[super::manifest::TensorSpec], want: &[i64]| {
            specs.len() == 1 && specs[0].shape.len() == want.len() && specs[0].shape[1..] == want[1..]
        };
        if !ok(&m.inputs, &want_in) || !ok(&m.outputs, &want_out) {
            return Err(format!(
                "{family}: one input [batch, frames, bands' rows · 2] = {want_in:?} and one output [batch, stems, \
                 frames, rows · 2] = {want_out:?}; got {:?} → {:?}",
                m.inputs, m.outputs
            ));
        }
        Ok(Self {
            stft: Stft::new(cfg).map_err(|e| e.to_string())?,
            channels: m.channels,
            stems,
            frames,
            gather,
            count: counts.iter().map(|&c| c as f32).collect(),
            zero_dc: r.zero_dc,
            out_len,
            chunk,
            input: m.inputs[0].name.clone(),
            output: m.outputs[0].name.clone(),
            specs: Vec::new(),
            wave: Vec::new(),
        })
    }

    fn run(&mut self, model: &mut Model, parts: &[Part], zero_dc: bool) -> Result<Vec<Vec<Part>>> {
        let (b, t, s) = (parts.len(), self.frames, self.channels);
        let rows = self.gather.len() * s;
        // STFT of every chunk and channel, then the network's input.
        self.specs.resize_with(b * s, Spectrogram::default);
        for (bi, part) in parts.iter().enumerate() {
            for (c, ch) in part.iter().enumerate() {
                self.stft.forward_into(ch, &mut self.specs[bi * s + c])?;
            }
        }
        let mut x = Array3::<f32>::zeros((b, t, rows * 2));
        for bi in 0..b {
            for ti in 0..t {
                let row = x.slice_mut(ndarray::s![bi, ti, ..]).into_slice().expect("a standard-layout array");
                for (g, &f) in self.gather.iter().enumerate() {
                    for c in 0..s {
                        let v = self.specs[bi * s + c].frame(ti)[f];
                        row[(g * s + c) * 2] = v.re;
                        row[(g * s + c) * 2 + 1] = v.im;
                    }
                }
            }
        }
        let (stems, out_len, chunk) = (self.stems, self.out_len, self.chunk);
        let masks: ndarray::Array4<f32> =
            run_graph::<Ix4>(model, &self.input, &self.output, x.into_dyn(), &[b, stems, t, rows * 2])?;
        let bins = self.stft.config().bins();
        let mut y = Spectrogram::zeros(bins, t);
        let mut mask = vec![Complex32::new(0.0, 0.0); bins];
        let mut out = Vec::with_capacity(b);
        for bi in 0..b {
            let mut per_stem = Vec::with_capacity(stems);
            for n in 0..stems {
                let mut chans = Vec::with_capacity(s);
                for c in 0..s {
                    let spec = &self.specs[bi * s + c];
                    for ti in 0..t {
                        let m = masks.slice(ndarray::s![bi, n, ti, ..]);
                        let m = m.as_slice().expect("a standard-layout array");
                        // Sum the bands' masks per bin (scatter_add_), then average.
                        mask.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
                        for (g, &f) in self.gather.iter().enumerate() {
                            let j = (g * s + c) * 2;
                            mask[f].re += m[j];
                            mask[f].im += m[j + 1];
                        }
                        let frame = y.frame_mut(ti);
                        for f in 0..bins {
                            // masks_summed / num_bands_per_freq, as torch divides.
                            let k = self.count[f];
                            let (mr, mi) = (mask[f].re / k, mask[f].im / k);
                            let v = spec.frame(ti)[f];
                            frame[f] = Complex32::new(v.re * mr - v.im * mi, v.re * mi + v.im * mr);
                        }
                        if zero_dc {
                            frame[0] = Complex32::new(0.0, 0.0);
                        }
                    }
                    self.stft.inverse_into(&y, Some(out_len), &mut self.wave)?;
                    chans.push(self.wave[..chunk].to_vec());
                }
                per_stem.push(chans);
            }
            out.push(per_stem);
        }
        Ok(out)
    }
}

/// Runs a package's one graph on `x` and returns its one output, checked to be `want`.
fn run_graph<D: ndarray::Dimension>(
    model: &mut Model,
    input: &str,
    output: &str,
    x: ndarray::ArrayD<f32>,
    want: &[usize],
) -> Result<ndarray::Array<f32, D>> {
    model.run_with(0, vec![(input.to_string(), x)], |outs| {
        let a = outs
            .into_iter()
            .find(|(n, _)| *n == output)
            .map(|(_, a)| a)
            .ok_or_else(|| Error::Inference { detail: format!("the graph did not return `{output}`") })?;
        a.into_dimensionality::<D>()
            .ok()
            .filter(|a| a.shape() == want)
            .map(|a| a.to_owned())
            .ok_or_else(|| Error::Inference { detail: format!("output `{output}` is not {want:?}") })
    })
}

// ---------------------------------------------------------------------------
// MDX23C and SCNet

/// The families whose network maps a chunk's spectrogram to its stems'
/// spectrograms, channels `[L re, L im, R re, R im]` per stem:
/// - MDX23C (`msst.models.mdx23c_tfc_tdf_v3`): a torch STFT (periodic Hann) of
///   each channel, its lowest `dim_f` bins; the bins above `dim_f` come back as
///   zeros; the inverse STFT is `hop · (frames − 1)` long (the chunk);
/// - SCNet (`msst.models.scnet`): the chunk zero-padded at its end to an odd
///   number of hops (at least one sample more), every bin of an STFT with a
///   rectangular window (normalised as its config says); the inverse STFT of
///   the padded length, cut back to the chunk.
pub(crate) struct Spectral {
    stft: Stft,
    /// Bins fed to the network (the lowest).
    dim_f: usize,
    /// Zeros appended to a chunk before its STFT.
    pad: usize,
    channels: usize,
    stems: usize,
    frames: usize,
    chunk: usize,
    input: String,
    output: String,
    padded: Vec<f32>,
    spec: Spectrogram,
    wave: Vec<f32>,
}

/// The zeros `SCNet.forward` appends to `len` samples: up to a whole number of
/// hops (at least one), then one hop more if that number is even.
fn scnet_padding(len: usize, hop: usize) -> usize {
    let mut pad = hop - len % hop;
    if ((len + pad) / hop).is_multiple_of(2) {
        pad += hop;
    }
    pad
}

impl Spectral {
    fn mdx23c(m: &Manifest, stems: usize) -> std::result::Result<Self, String> {
        let p: Mdx23cParams = m.mdx23c.ok_or("mdx23c needs an `mdx23c` section (dim_f)")?;
        let cfg = super::manifest::plain_torch_stft(m, "mdx23c")?;
        let chunk = m.segment_samples;
        if p.dim_f == 0 || p.dim_f > cfg.bins() {
            return Err(format!("mdx23c: dim_f must be in 1..={}, got {}", cfg.bins(), p.dim_f));
        }
        if !chunk.is_multiple_of(cfg.hop_length) || chunk <= cfg.n_fft / 2 {
            return Err(format!(
                "mdx23c: the chunk ({chunk}) must be a multiple of the hop ({}) longer than n_fft/2: its inverse \
                 STFT is hop · (frames − 1) long (msst itself fails otherwise)",
                cfg.hop_length
            ));
        }
        Self::new(m, "mdx23c", cfg, p.dim_f, 0, stems)
    }

    fn scnet(m: &Manifest, stems: usize) -> std::result::Result<Self, String> {
        let cfg = m.stft.ok_or("scnet needs `stft` in the manifest")?;
        let win = cfg.win_length.unwrap_or(cfg.n_fft);
        // A window shorter than the hop leaves gaps no inverse can fill (torch's NOLA check).
        if cfg.window != WindowKind::Rectangular
            || !cfg.center
            || cfg.pad_mode != PadMode::Reflect
            || win < cfg.hop_length
        {
            return Err(format!(
                "scnet uses a centred, reflect-padded STFT with a rectangular window at least a hop long; got {cfg:?}"
            ));
        }
        if m.mdx23c.is_some() || m.roformer.is_some() {
            return Err("scnet: the manifest has another family's section".into());
        }
        let pad = scnet_padding(m.segment_samples, cfg.hop_length);
        if m.segment_samples + pad <= cfg.n_fft / 2 {
            return Err(format!(
                "scnet: a chunk of {} samples is too short for an n_fft of {}",
                m.segment_samples, cfg.n_fft
            ));
        }
        Self::new(m, "scnet", cfg, cfg.bins(), pad, stems)
    }

    fn new(
        m: &Manifest,
        family: &str,
        cfg: crate::stft::StftConfig,
        dim_f: usize,
        pad: usize,
        stems: usize,
    ) -> std::result::Result<Self, String> {
        let chunk = m.segment_samples;
        let frames = cfg.num_frames(chunk + pad);
        let c2 = 2 * m.channels as i64;
        let want_in = [-1, c2, dim_f as i64, frames as i64];
        let want_out = [-1, stems as i64, c2, dim_f as i64, frames as i64];
        let ok = |specs: &[super::manifest::TensorSpec], want: &[i64]| {
            specs.len() == 1 && specs[0].shape.len() == want.len() && specs[0].shape[1..] == want[1..]
        };
        if !ok(&m.inputs, &want_in) || !ok(&m.outputs, &want_out) {
            return Err(format!(
                "{family}: one input [batch, 2 · channels, bins, frames] = {want_in:?} and one output [batch, stems, \
                 2 · channels, bins, frames] = {want_out:?}; got {:?} → {:?}",
                m.inputs, m.outputs
            ));
        }
        Ok(Self {
            stft: Stft::new(cfg).map_err(|e| e.to_string())?,
            dim_f,
            pad,
            channels: m.channels,
            stems,
            frames,
            chunk,
            input: m.inputs[0].name.clone(),
            output: m.outputs[0].name.clone(),
            padded: Vec::new(),
            spec: Spectrogram::default(),
            wave: Vec::new(),
        })
    }

    fn run(&mut self, model: &mut Model, parts: &[Part]) -> Result<Vec<Vec<Part>>> {
        let (b, t, s, f) = (parts.len(), self.frames, self.channels, self.dim_f);
        let mut x = Array4::<f32>::zeros((b, 2 * s, f, t));
        for (bi, part) in parts.iter().enumerate() {
            for (c, ch) in part.iter().enumerate() {
                self.padded.clear();
                self.padded.extend_from_slice(ch);
                self.padded.resize(ch.len() + self.pad, 0.0);
                self.stft.forward_into(&self.padded, &mut self.spec)?;
                for ti in 0..t {
                    let frame = self.spec.frame(ti);
                    for fi in 0..f {
                        x[[bi, 2 * c, fi, ti]] = frame[fi].re;
                        x[[bi, 2 * c + 1, fi, ti]] = frame[fi].im;
                    }
                }
            }
        }
        let y: ndarray::Array5<f32> =
            run_graph::<Ix5>(model, &self.input, &self.output, x.into_dyn(), &[b, self.stems, 2 * s, f, t])?;
        // Bins above dim_f are zeros (MDX23C's f_pad).
        let mut z = Spectrogram::zeros(self.stft.config().bins(), t);
        let mut out = Vec::with_capacity(b);
        for bi in 0..b {
            let mut per_stem = Vec::with_capacity(self.stems);
            for n in 0..self.stems {
                let mut chans = Vec::with_capacity(s);
                for c in 0..s {
                    for ti in 0..t {
                        let frame = z.frame_mut(ti);
                        for fi in 0..f {
                            frame[fi] = Complex32::new(y[[bi, n, 2 * c, fi, ti]], y[[bi, n, 2 * c + 1, fi, ti]]);
                        }
                    }
                    // hop · (frames − 1): the chunk plus the padding.
                    self.stft.inverse_into(&z, None, &mut self.wave)?;
                    chans.push(self.wave[..self.chunk].to_vec());
                }
                per_stem.push(chans);
            }
            out.push(per_stem);
        }
        Ok(out)
    }
}

/// The bins of each band of a Mel-Band RoFormer, as its module computes them
/// from `librosa.filters.mel(sr, n_fft, n_mels=num_bands)` (Slaney's mel scale,
/// from 0 Hz to `sr / 2`): bin `k` is in band `i` when its weight is positive,
/// that is when `mel_f[i] < fft_freq[k] < mel_f[i + 2]`; bin 0 is forced into
/// the first band and the last bin into the last (`mel_filter_bank[0][0] = 1`,
/// `[-1, -1] = 1`). Computed in f64 as librosa does.
pub(crate) fn mel_bands(sr: u32, n_fft: usize, num_bands: usize) -> std::result::Result<Vec<Vec<usize>>, String> {
    if num_bands < 2 {
        return Err(format!("mel-band-roformer: num_bands must be at least 2, got {num_bands}"));
    }
    let bins = n_fft / 2 + 1;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| if f >= min_log_hz { min_log_mel + (f / min_log_hz).ln() / logstep } else { f / f_sp };
    let mel_to_hz = |m: f64| if m >= min_log_mel { min_log_hz * (logstep * (m - min_log_mel)).exp() } else { f_sp * m };
    // np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), n + 2): arange · step + start, the last exactly `stop`.
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr as f64 / 2.0));
    let n = num_bands + 2;
    let step = (hi - lo) / (n - 1) as f64;
    let mel_f: Vec<f64> =
        (0..n).map(|i| if i == n - 1 { mel_to_hz(hi) } else { mel_to_hz(i as f64 * step + lo) }).collect();
    // np.fft.rfftfreq(n_fft, 1 / sr).
    let val = 1.0 / (n_fft as f64 * (1.0 / sr as f64));
    let fft_freq: Vec<f64> = (0..bins).map(|k| k as f64 * val).collect();
    let mut bands: Vec<Vec<usize>> = (0..num_bands)
        .map(|i| {
            let fdiff_lo = mel_f[i + 1] - mel_f[i];
            let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
            (0..bins)
                .filter(|&k| {
                    let lower = -(mel_f[i] - fft_freq[k]) / fdiff_lo;
                    let upper = (mel_f[i + 2] - fft_freq[k]) / fdiff_hi;
                    // The weight, stored as f32 (librosa's dtype), is positive.
                    (lower.min(upper).max(0.0) as f32) > 0.0
                })
                .collect()
        })
        .collect();
    if !bands[0].contains(&0) {
        bands[0].insert(0, 0);
    }
    if !bands[num_bands - 1].contains(&(bins - 1)) {
        bands[num_bands - 1].push(bins - 1);
    }
    if let Some(i) = bands.iter().position(Vec::is_empty) {
        return Err(format!("mel-band-roformer: band {i} of {num_bands} holds no bin at n_fft {n_fft}"));
    }
    Ok(bands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowing_array_fades_linearly_to_exact_zeros() {
        let w = windowing_array(100, 10);
        assert_eq!(w.len(), 100);
        assert_eq!((w[0], w[9], w[10], w[89], w[90], w[99]), (0.0, 1.0, 1.0, 1.0, 1.0, 0.0));
        assert!((w[3] - 3.0 / 9.0).abs() < 1e-7);
        assert_eq!(windowing_array(5, 0), vec![1.0; 5]);
    }

    #[test]
    fn mel_bands_of_the_released_configuration() {
        // sr 44100, n_fft 2048, 60 bands: the table msst's module computes
        // (its band widths and first and last bins, from a torch run).
        let bands = mel_bands(44100, 2048, 60).unwrap();
        let widths: Vec<usize> = bands.iter().map(Vec::len).collect();
        assert_eq!(
            widths,
            [
                7, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 9, 9, 9, 10, 10, 11, 13, 13, 13, 15, 16, 17, 19,
                20, 20, 22, 24, 26, 28, 29, 31, 33, 36, 39, 41, 44, 47, 50, 54, 57, 61, 66, 71, 76, 80, 86, 93, 99,
                105, 113, 122, 130
            ]
        );
        assert_eq!((bands[0][0], bands[59][129]), (0, 1024));
        assert_eq!((bands[1][0], bands[1][5]), (4, 9));
        for b in &bands {
            assert!(b.windows(2).all(|w| w[1] == w[0] + 1), "contiguous bins");
        }
    }

    #[test]
    fn scnet_pads_to_an_odd_number_of_hops() {
        // SCNet.forward's rule, from the table of its module (hop 1024).
        for (len, pad) in [(1, 1023), (1024, 2048), (2048, 1024), (3072, 2048), (485_100, 1300)] {
            assert_eq!(scnet_padding(len, 1024), pad, "{len}");
        }
    }

    #[test]
    fn mdxc_roformer_chunks_end_at_the_end() {
        assert_eq!(mdxc_roformer_starts(1000, 100, 25)[..3], [0, 25, 50]);
        assert_eq!(*mdxc_roformer_starts(1000, 100, 25).last().unwrap(), 900);
        // 0, 30, 60 (60 + 100 < 161), then at 90 the tail: 161 − 100.
        assert_eq!(mdxc_roformer_starts(161, 100, 30), [0, 30, 60, 61]);
        assert_eq!(mdxc_roformer_starts(100, 100, 25), [0]);
        let w = hamming(5);
        assert!((w[0] - 0.08).abs() < 1e-7 && (w[2] - 1.0).abs() < 1e-7 && w[1] == w[3]);
    }

    #[test]
    fn reflect_tail_mirrors_without_repeating_the_edge() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        reflect_tail(&mut v, 2);
        assert_eq!(v, [1.0, 2.0, 3.0, 4.0, 3.0, 2.0]);
    }
}
