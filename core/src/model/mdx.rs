//! MDX-Net (`mdx`), as audio-separator's `MDXSeparator.demix` runs UVR's ONNX
//! models: the mix padded by `n_fft / 2` in front and to whole generated chunks
//! behind, chunks of `hop · (dim_t − 1)` samples stepped by `(1 − overlap)` of a
//! chunk and weighted by a symmetric Hann window (`np.hanning`) when overlapping,
//! the lowest `dim_f` bins of a 1024-hop STFT with the three lowest zeroed, the
//! network (optionally averaged with its negated run: `enable_denoise`), the
//! inverse STFT, and the secondary stem `mix − compensate · primary`.

use ndarray::{Array4, ArrayD, Ix4};

use super::Model;
use super::chunked::{Tape, feed_whole, take_block};
use super::manifest::{Manifest, MdxParams};
use crate::error::{Error, Result};
use crate::separator::SeparateOptions;
use crate::stft::{Spectrogram, Stft};
use crate::stream::{FrameStream, StemAudio, StreamSpec};
use realfft::num_complex::Complex32;

/// Bins zeroed at the bottom of the spectrogram before the network (`spek[:, :, :3, :] *= 0`).
const ZEROED_BINS: usize = 3;

pub(crate) struct Mdx {
    stft: Stft,
    p: MdxParams,
    chunk: usize,
    trim: usize,
    input: String,
    output: String,
    spec: Spectrogram,
    wave: Vec<f32>,
}

impl Mdx {
    pub fn new(m: &Manifest) -> std::result::Result<Self, String> {
        let p = m.mdx.ok_or("the mdx family needs an `mdx` section (dim_f, dim_t, compensate) in the manifest")?;
        let cfg = super::manifest::plain_torch_stft(m, "mdx")?;
        if m.channels != 2 || m.stems.len() != 2 {
            return Err("mdx models are stereo with two stems (primary, secondary)".into());
        }
        if p.dim_f == 0 || p.dim_f > cfg.bins() || p.dim_t < 2 || !p.compensate.is_finite() {
            return Err(format!(
                "mdx: dim_f must be in 1..={}, dim_t at least 2, compensate finite; got {p:?}",
                cfg.bins()
            ));
        }
        let chunk = cfg.hop_length * (p.dim_t - 1);
        if m.segment_samples != chunk {
            return Err(format!("mdx: segment_samples must be hop · (dim_t − 1) = {chunk}, got {}", m.segment_samples));
        }
        let trim = cfg.n_fft / 2;
        if chunk <= 2 * trim {
            return Err(format!("mdx: a chunk of {chunk} samples leaves nothing once {trim} are trimmed at each end"));
        }
        let shape = [4, p.dim_f as i64, p.dim_t as i64];
        for (what, specs) in [("input", &m.inputs), ("output", &m.outputs)] {
            if specs.len() != 1 || specs[0].shape.len() != 4 || specs[0].shape[1..] != shape {
                return Err(format!("mdx has one {what} [batch, 4, dim_f, dim_t] = [batch, {shape:?}]; got {specs:?}"));
            }
        }
        Ok(Self {
            stft: Stft::new(cfg).map_err(|e| e.to_string())?,
            p,
            chunk,
            trim,
            input: m.inputs[0].name.clone(),
            output: m.outputs[0].name.clone(),
            spec: Spectrogram::default(),
            wave: Vec::new(),
        })
    }

    /// `MDXSeparator.stft` of a batch of chunks, first `dim_f` bins, lowest three zeroed.
    fn spectrogram(&mut self, parts: &[[Vec<f32>; 2]], sign: f32) -> Array4<f32> {
        let (f, t) = (self.p.dim_f, self.p.dim_t);
        let mut x = Array4::<f32>::zeros((parts.len(), 4, f, t));
        for (b, part) in parts.iter().enumerate() {
            for (c, ch) in part.iter().enumerate() {
                self.stft.forward_into(ch, &mut self.spec).expect("a chunk is longer than n_fft / 2, checked at load");
                debug_assert_eq!(self.spec.frames, t);
                for ti in 0..t {
                    let frame = self.spec.frame(ti);
                    for fi in ZEROED_BINS.min(f)..f {
                        x[[b, 2 * c, fi, ti]] = sign * frame[fi].re;
                        x[[b, 2 * c + 1, fi, ti]] = sign * frame[fi].im;
                    }
                }
            }
        }
        x
    }

    fn run(&self, model: &mut Model, x: Array4<f32>) -> Result<ArrayD<f32>> {
        let out = model.run(0, vec![(self.input.clone(), x.into_dyn())])?;
        out.into_iter()
            .find(|(n, _)| *n == self.output)
            .map(|(_, a)| a)
            .ok_or_else(|| Error::Inference { detail: format!("the graph did not return `{}`", self.output) })
    }

    /// `MDXSeparator.run_model` on a batch of chunks: stems[b][channel][sample].
    fn run_model(&mut self, model: &mut Model, parts: &[[Vec<f32>; 2]], denoise: bool) -> Result<Vec<[Vec<f32>; 2]>> {
        let b = parts.len();
        let (f, t) = (self.p.dim_f, self.p.dim_t);
        let pred = if denoise {
            let x = self.spectrogram(parts, -1.0);
            let neg = self.run(model, x)?;
            let x = self.spectrogram(parts, 1.0);
            let pos = self.run(model, x)?;
            if neg.shape() != pos.shape() {
                return Err(Error::Inference { detail: "the two denoise runs returned different shapes".into() });
            }
            neg * -0.5 + pos * 0.5
        } else {
            let x = self.spectrogram(parts, 1.0);
            self.run(model, x)?
        };
        let pred = pred.into_dimensionality::<Ix4>().ok().filter(|a| a.shape() == [b, 4, f, t]).ok_or_else(|| {
            Error::Inference { detail: format!("output `{}` is not [{b}, 4, {f}, {t}]", self.output) }
        })?;
        let bins = self.stft.config().bins();
        let mut z = Spectrogram::zeros(bins, t);
        let mut out = Vec::with_capacity(b);
        for bi in 0..b {
            let mut pair: [Vec<f32>; 2] = Default::default();
            for (c, dst) in pair.iter_mut().enumerate() {
                // Bins above dim_f are zeros (pad_frequency_dimension).
                for ti in 0..t {
                    let frame = z.frame_mut(ti);
                    for fi in 0..f {
                        frame[fi] = Complex32::new(pred[[bi, 2 * c, fi, ti]], pred[[bi, 2 * c + 1, fi, ti]]);
                    }
                }
                self.stft.inverse_into(&z, None, &mut self.wave)?;
                debug_assert_eq!(self.wave.len(), self.chunk);
                *dst = self.wave.clone();
            }
            out.push(pair);
        }
        Ok(out)
    }
}

/// `numpy.hanning(n)`: the symmetric Hann window.
fn np_hanning(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n).map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n - 1) as f64).cos()).collect()
}

/// MDX-Net as a [`crate::stream::StemStream`]: `demix`'s chunks run as soon as their input is
/// there (the mix behind `trim` zeros; the zeros after it are known only at the
/// end), and frames are released once no later chunk covers them. The
/// whole-buffer path is this stream fed once.
pub(crate) struct MdxStream<'m> {
    model: &'m mut Model,
    mdx: &'m mut Mdx,
    spec: StreamSpec,
    overlap: f64,
    denoise: bool,
    batch: usize,
    step: usize,
    /// The mix (model channels), in mix frames.
    input: Tape,
    received: usize,
    finished: bool,
    /// Weighted sums (two rows) and their weights, in padded frames.
    result: Tape,
    divider: Tape,
    /// Padded offset of the next chunk.
    next: usize,
    /// Mix frames released.
    emitted: usize,
    cancel: Option<&'m crate::separator::CancelToken>,
}

impl<'m> MdxStream<'m> {
    pub fn new(
        model: &'m mut Model,
        mdx: &'m mut Mdx,
        spec: &StreamSpec,
        overlap: f64,
        denoise: bool,
        batch: usize,
        cancel: Option<&'m crate::separator::CancelToken>,
    ) -> Result<Self> {
        let chunk = mdx.chunk;
        let step = ((1.0 - overlap) * chunk as f64) as usize;
        if step == 0 {
            return Err(Error::invalid(
                "overlap",
                format!("small enough to leave a step of 1 of {chunk} samples"),
                overlap,
            ));
        }
        Ok(Self {
            model,
            mdx,
            spec: *spec,
            overlap,
            denoise,
            batch: batch.max(1),
            step,
            input: Tape::new(2),
            received: 0,
            finished: false,
            result: Tape::new(2),
            divider: Tape::new(1),
            next: 0,
            emitted: 0,
            cancel,
        })
    }

    /// `trim + n + pad`: the padded length, once the input's length is known.
    fn total(&self) -> usize {
        let (trim, n) = (self.mdx.trim, self.received);
        let gen_size = self.mdx.chunk - 2 * trim;
        trim + n + gen_size + trim - n % gen_size
    }

    /// Runs the chunks whose input is complete, `batch` at a time.
    fn run_ready(&mut self) -> Result<()> {
        let (chunk, trim) = (self.mdx.chunk, self.mdx.trim);
        loop {
            let total = self.finished.then(|| self.total());
            let mut starts = Vec::new();
            let mut s = self.next;
            while starts.len() < self.batch {
                let ready = match total {
                    Some(t) => s < t,
                    None => s + chunk <= trim + self.received,
                };
                if !ready {
                    break;
                }
                starts.push(s);
                s += self.step;
            }
            if starts.is_empty() {
                return Ok(());
            }
            if self.cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(Error::Cancelled);
            }
            let total = total.unwrap_or(usize::MAX);
            let parts: Vec<[Vec<f32>; 2]> = starts
                .iter()
                .map(|&s| {
                    let end = (s + chunk).min(total);
                    std::array::from_fn(|c| {
                        let mut v: Vec<f32> = (s..end)
                            .map(|p| match p.checked_sub(trim) {
                                Some(q) if q < self.received => self.input.data[c][q - self.input.start],
                                _ => 0.0,
                            })
                            .collect();
                        v.resize(chunk, 0.0);
                        v
                    })
                })
                .collect();
            let outs = self.mdx.run_model(self.model, &parts, self.denoise)?;
            for (&s, tar) in starts.iter().zip(&outs) {
                let end = (s + chunk).min(total);
                let actual = end - s;
                self.result.reach(end);
                self.divider.reach(end);
                let (rb, db) = (s - self.result.start, s - self.divider.start);
                let divider = &mut self.divider.data[0][db..db + actual];
                if self.overlap != 0.0 {
                    let w = np_hanning(actual);
                    for (res, t) in self.result.data.iter_mut().zip(tar) {
                        for ((r, &x), &wi) in res[rb..rb + actual].iter_mut().zip(&t[..actual]).zip(&w) {
                            *r += (x as f64 * wi) as f32;
                        }
                    }
                    divider.iter_mut().zip(&w).for_each(|(d, &wi)| *d = (*d as f64 + wi) as f32);
                } else {
                    for (res, t) in self.result.data.iter_mut().zip(tar) {
                        res[rb..rb + actual].iter_mut().zip(&t[..actual]).for_each(|(r, x)| *r += x);
                    }
                    divider.iter_mut().for_each(|d| *d += 1.0);
                }
                self.next = s + self.step;
            }
        }
    }

    /// Appends `[primary, secondary]` for the mix frames no chunk can still change.
    fn emit(&mut self, out: &mut StemAudio) -> Result<()> {
        let trim = self.mdx.trim;
        let upto = if self.finished { self.received } else { self.next.saturating_sub(trim).min(self.received) };
        if upto <= self.emitted {
            return Ok(());
        }
        let c = self.mdx.p.compensate;
        let (q0, q1) = (self.emitted, upto);
        let d = &self.divider.data[0][q0 + trim - self.divider.start..q1 + trim - self.divider.start];
        for (k, os) in out.iter_mut().enumerate().take(2) {
            if os.len() != 2 {
                *os = vec![Vec::new(); 2];
            }
            for (ch, oc) in os.iter_mut().enumerate() {
                let r = &self.result.data[ch][q0 + trim - self.result.start..q1 + trim - self.result.start];
                let primary = r.iter().zip(d).map(|(a, d)| a / d);
                if k == 0 {
                    oc.extend(primary);
                } else {
                    let m = &self.input.data[ch][q0 - self.input.start..q1 - self.input.start];
                    oc.extend(m.iter().zip(primary).map(|(m, p)| m - c * p));
                }
            }
        }
        self.emitted = upto;
        self.result.forget(self.emitted + trim);
        self.divider.forget(self.emitted + trim);
        self.input.forget(self.emitted.min(self.next.saturating_sub(trim)));
        Ok(())
    }
}

impl FrameStream for MdxStream<'_> {
    fn process(&mut self, block: &[&[f32]], out: &mut StemAudio) -> Result<()> {
        self.received += take_block(&self.spec, self.finished, block, 2, &mut self.input)?;
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

/// Separates a stereo mix at the model's rate: `[primary, secondary]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn separate(
    model: &mut Model,
    mdx: &mut Mdx,
    mix: &[Vec<f32>],
    overlap: f64,
    denoise: bool,
    batch: usize,
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let rate = model.manifest().sample_rate;
    let n = mix[0].len();
    let spec = StreamSpec { sample_rate: rate, channels: mix.len(), frames: Some(n as u64) };
    let block_len = mdx.chunk * 4;
    let mut stream = MdxStream::new(model, mdx, &spec, overlap, denoise, batch, opts.cancel)?;
    feed_whole(&mut stream, mix, block_len, 2, opts)
}
