//! MDX-Net (`mdx`), as audio-separator's `MDXSeparator.demix` runs UVR's ONNX
//! models: the mix padded by `n_fft / 2` in front and to whole generated chunks
//! behind, chunks of `hop · (dim_t − 1)` samples stepped by `(1 − overlap)` of a
//! chunk and weighted by a symmetric Hann window (`np.hanning`) when overlapping,
//! the lowest `dim_f` bins of a 1024-hop STFT with the three lowest zeroed, the
//! network (optionally averaged with its negated run: `enable_denoise`), the
//! inverse STFT, and the secondary stem `mix − compensate · primary`.

use ndarray::{Array4, ArrayD, Ix4};

use super::Model;
use super::manifest::{Manifest, MdxParams};
use super::neural::{Counter, StemAudio};
use crate::error::{Error, Result};
use crate::stft::{Spectrogram, Stft};
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

/// Separates a stereo mix at the model's rate: `[primary, secondary]`.
pub(crate) fn separate(
    model: &mut Model,
    mdx: &mut Mdx,
    mix: &[Vec<f32>],
    overlap: f64,
    denoise: bool,
    batch: usize,
    progress: &mut Counter<'_, '_>,
) -> Result<StemAudio> {
    let n = mix[0].len();
    let (chunk, trim) = (mdx.chunk, mdx.trim);
    let gen_size = chunk - 2 * trim;
    let pad = gen_size + trim - n % gen_size;
    let total = trim + n + pad;
    let mixture: Vec<Vec<f32>> = mix
        .iter()
        .map(|c| {
            let mut v = vec![0.0f32; total];
            v[trim..trim + n].copy_from_slice(c);
            v
        })
        .collect();
    let step = ((1.0 - overlap) * chunk as f64) as usize;
    if step == 0 {
        return Err(Error::invalid(
            "overlap",
            format!("small enough to leave a step of 1 of {chunk} samples"),
            overlap,
        ));
    }
    let starts: Vec<usize> = (0..total).step_by(step).collect();
    progress.total = starts.len() as u64;
    progress.report();
    let mut result = [vec![0.0f32; total], vec![0.0f32; total]];
    let mut divider = vec![0.0f32; total];
    for group in starts.chunks(batch.max(1)) {
        progress.opts.check_cancel()?;
        let parts: Vec<[Vec<f32>; 2]> = group
            .iter()
            .map(|&s| {
                let end = (s + chunk).min(total);
                std::array::from_fn(|c| {
                    let mut v = mixture[c][s..end].to_vec();
                    v.resize(chunk, 0.0);
                    v
                })
            })
            .collect();
        let outs = mdx.run_model(model, &parts, denoise)?;
        for (&s, tar) in group.iter().zip(&outs) {
            let end = (s + chunk).min(total);
            let actual = end - s;
            if overlap != 0.0 {
                let w = np_hanning(actual);
                for (res, t) in result.iter_mut().zip(tar) {
                    for ((r, &x), &wi) in res[s..end].iter_mut().zip(&t[..actual]).zip(&w) {
                        *r += (x as f64 * wi) as f32;
                    }
                }
                divider[s..end].iter_mut().zip(&w).for_each(|(d, &wi)| *d = (*d as f64 + wi) as f32);
            } else {
                for (res, t) in result.iter_mut().zip(tar) {
                    res[s..end].iter_mut().zip(&t[..actual]).for_each(|(r, x)| *r += x);
                }
                divider[s..end].iter_mut().for_each(|d| *d += 1.0);
            }
        }
        progress.done += group.len() as u64;
        progress.report();
    }
    let primary: Vec<Vec<f32>> = result
        .iter()
        .map(|r| r[trim..trim + n].iter().zip(&divider[trim..trim + n]).map(|(a, d)| a / d).collect())
        .collect();
    let c = mdx.p.compensate;
    let secondary: Vec<Vec<f32>> =
        mix.iter().zip(&primary).map(|(m, p)| m.iter().zip(p).map(|(m, p)| m - c * p).collect()).collect();
    Ok(vec![primary, secondary])
}
