//! Open-Unmix (`umx`), as `openunmix.model.Separator` runs it: the mixture's
//! STFT (4096/1024, periodic Hann), its magnitude through one network per target,
//! then `openunmix.filtering.wiener` on windows of `wiener_win_len` frames — mix
//! phase or soft masks as the initial estimate, an optional residual target, and
//! `niter` steps of the multichannel EM algorithm — and the inverse STFT.
//!
//! The filter is computed in `f64`, as norbert and openunmix's documentation
//! advise: where channels are nearly identical (mono input) or windows short,
//! the 2×2 covariance inversions are ill-conditioned, and openunmix's `f32` run
//! differs from its own `f64` run by up to 3e-3 of the peak.

use ndarray::{Array4, Ix4};
use realfft::num_complex::{Complex32, Complex64};

use super::Model;
use super::chunked::Counter;
use super::manifest::Manifest;
use crate::error::{Error, Result};
use crate::stft::{Spectrogram, Stft};
use crate::stream::StemAudio;

/// `eps` of `openunmix.filtering.wiener` and `expectation_maximization`.
const EPS: f64 = 1e-10;
/// `scale_factor` of `wiener`.
const SCALE_FACTOR: f64 = 10.0;

/// Wiener filter settings (`openunmix.Separator`'s arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WienerSettings {
    pub niter: u32,
    pub softmask: bool,
    pub residual: bool,
    /// Frames per independently filtered window; 0 = the whole input.
    pub win_len: usize,
}

pub(crate) struct Umx {
    stft: Stft,
    bins: usize,
    input: String,
    output: String,
}

impl Umx {
    pub fn new(m: &Manifest) -> std::result::Result<Self, String> {
        let cfg = super::manifest::plain_torch_stft(m, "umx")?;
        if m.channels != 2 {
            return Err("umx models here are stereo (openunmix duplicates mono input)".into());
        }
        let bins = cfg.bins() as i64;
        for (what, specs) in [("input", &m.inputs), ("output", &m.outputs)] {
            if specs.len() != 1 || specs[0].shape.len() != 4 || specs[0].shape[1..3] != [2, bins] {
                return Err(format!("umx has one {what} [batch, 2, {bins}, frames]; got {specs:?}"));
            }
        }
        if m.files.len() != m.stems.len() {
            return Err(format!("umx has one graph per target: {} stems, {} files", m.stems.len(), m.files.len()));
        }
        Ok(Self {
            stft: Stft::new(cfg).map_err(|e| e.to_string())?,
            bins: cfg.bins(),
            input: m.inputs[0].name.clone(),
            output: m.outputs[0].name.clone(),
        })
    }
}

/// Separates a stereo mix at the model's rate: one stem per target, plus the
/// residual when asked.
pub(crate) fn separate(
    model: &mut Model,
    umx: &mut Umx,
    mix: &[Vec<f32>],
    w: WienerSettings,
    progress: &mut Counter<'_, '_>,
) -> Result<StemAudio> {
    let n = mix[0].len();
    let targets = model.manifest().files.len();
    let sources = targets + usize::from(w.residual);
    if sources == 1 && w.niter > 0 {
        return Err(Error::invalid(
            "niter",
            "0 with a single target (EM needs two sources; or add the residual)",
            w.niter,
        ));
    }
    progress.total = targets as u64 + 2;
    progress.report();
    // The STFT of each channel, and the magnitude the networks see.
    let specs: Vec<Spectrogram> = mix.iter().map(|c| umx.stft.forward(c)).collect::<Result<_>>()?;
    let (f, t) = (umx.bins, specs[0].frames);
    let mut mag = Array4::<f32>::zeros((1, 2, f, t));
    for (c, s) in specs.iter().enumerate() {
        for ti in 0..t {
            for (fi, z) in s.frame(ti).iter().enumerate() {
                mag[[0, c, fi, ti]] = z.norm();
            }
        }
    }
    // Target magnitudes, laid out [target][t][f][c].
    let mut v_targets = vec![0.0f32; targets * t * f * 2];
    for j in 0..targets {
        progress.opts.check_cancel()?;
        let out = model.run(j, vec![(umx.input.clone(), mag.clone().into_dyn())])?;
        let a = out
            .into_iter()
            .find(|(name, _)| *name == umx.output)
            .map(|(_, a)| a)
            .ok_or_else(|| Error::Inference { detail: format!("the graph did not return `{}`", umx.output) })?;
        let a =
            a.into_dimensionality::<Ix4>().ok().filter(|a| a.shape() == [1, 2, f, t]).ok_or_else(|| {
                Error::Inference { detail: format!("output `{}` is not [1, 2, {f}, {t}]", umx.output) }
            })?;
        let base = j * t * f * 2;
        for ti in 0..t {
            for fi in 0..f {
                for c in 0..2 {
                    v_targets[base + (ti * f + fi) * 2 + c] = a[[0, c, fi, ti]];
                }
            }
        }
        progress.done += 1;
        progress.report();
    }
    // The mixture STFT laid out [t][f][c].
    let mut x = vec![Complex32::new(0.0, 0.0); t * f * 2];
    for (c, s) in specs.iter().enumerate() {
        for ti in 0..t {
            for (fi, z) in s.frame(ti).iter().enumerate() {
                x[(ti * f + fi) * 2 + c] = *z;
            }
        }
    }
    drop(specs);
    let win = if w.win_len == 0 { t } else { w.win_len };
    // Estimates laid out [source][t][f][c].
    let mut y = vec![Complex32::new(0.0, 0.0); sources * t * f * 2];
    let mut pos = 0;
    while pos < t {
        progress.opts.check_cancel()?;
        let end = (pos + win).min(t);
        let frames = end - pos;
        let xw = &x[pos * f * 2..end * f * 2];
        let vw: Vec<&[f32]> = (0..targets).map(|j| &v_targets[(j * t + pos) * f * 2..(j * t + end) * f * 2]).collect();
        let yw = wiener(&vw, xw, frames, f, w);
        for (s, ys) in yw.into_iter().enumerate() {
            let dst = &mut y[(s * t + pos) * f * 2..(s * t + end) * f * 2];
            dst.iter_mut().zip(ys).for_each(|(d, z)| *d = Complex32::new(z.re as f32, z.im as f32));
        }
        pos = end;
    }
    progress.done += 1;
    progress.report();
    drop(v_targets);
    // Inverse STFT of every source and channel.
    let mut out = Vec::with_capacity(sources);
    let mut spec = Spectrogram::zeros(f, t);
    for s in 0..sources {
        let mut chans = Vec::with_capacity(2);
        for c in 0..2 {
            for ti in 0..t {
                let frame = spec.frame_mut(ti);
                for (fi, z) in frame.iter_mut().enumerate() {
                    *z = y[((s * t + ti) * f + fi) * 2 + c];
                }
            }
            chans.push(umx.stft.inverse(&spec, Some(n))?);
        }
        out.push(chans);
    }
    progress.done += 1;
    progress.report();
    Ok(out)
}

/// `torch.atan2` as openunmix's own `atan2` computes it (0 where both are 0).
fn mix_angle(z: Complex64) -> f64 {
    if z.re == 0.0 && z.im == 0.0 { 0.0 } else { z.im.atan2(z.re) }
}

/// `openunmix.filtering.wiener` on one window: `v[j]` are target magnitudes
/// [frames][bins][2], `x` the mixture [frames][bins][2]; returns one estimate per
/// source, each [frames][bins][2].
fn wiener(v: &[&[f32]], x: &[Complex32], frames: usize, bins: usize, w: WienerSettings) -> Vec<Vec<Complex64>> {
    let cells = frames * bins * 2;
    let x: Vec<Complex64> = x.iter().map(|z| Complex64::new(z.re as f64, z.im as f64)).collect();
    let mut y: Vec<Vec<Complex64>> = Vec::with_capacity(v.len() + 1);
    if w.softmask {
        for vj in v {
            y.push(
                (0..cells)
                    .map(|i| {
                        let total: f64 = v.iter().map(|vk| vk[i] as f64).sum();
                        x[i] * (vj[i] as f64 / (EPS + total))
                    })
                    .collect(),
            );
        }
    } else {
        let phase: Vec<(f64, f64)> = x
            .iter()
            .map(|&z| {
                let a = mix_angle(z);
                (a.cos(), a.sin())
            })
            .collect();
        for vj in v {
            y.push(vj.iter().zip(&phase).map(|(&m, &(c, s))| Complex64::new(m as f64 * c, m as f64 * s)).collect());
        }
    }
    if w.residual {
        let res = (0..cells).map(|i| x[i] - y.iter().map(|yj| yj[i]).sum::<Complex64>()).collect();
        y.push(res);
    }
    if w.niter == 0 {
        return y;
    }
    let peak = x.iter().map(|z| z.norm_sqr()).fold(0.0f64, f64::max).sqrt();
    let max_abs = (peak / SCALE_FACTOR).max(1.0);
    let xs: Vec<Complex64> = x.iter().map(|z| z / max_abs).collect();
    for yj in &mut y {
        yj.iter_mut().for_each(|z| *z /= max_abs);
    }
    expectation_maximization(&mut y, &xs, frames, bins, w.niter);
    for yj in &mut y {
        yj.iter_mut().for_each(|z| *z *= max_abs);
    }
    y
}

type Mat2 = [[Complex64; 2]; 2];

fn invert(m: &Mat2) -> Mat2 {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    // `_inv`: conj(det) / |det|²
    let e = det.norm_sqr();
    let inv = Complex64::new(det.re / e, -det.im / e);
    [[inv * m[1][1], -inv * m[0][1]], [-inv * m[1][0], inv * m[0][0]]]
}

/// `openunmix.filtering.expectation_maximization` for two channels, in place.
fn expectation_maximization(y: &mut [Vec<Complex64>], x: &[Complex64], frames: usize, bins: usize, iterations: u32) {
    let sources = y.len();
    let reg = EPS.sqrt();
    let zero = Complex64::new(0.0, 0.0);
    let mut v = vec![0.0f64; frames * bins * sources]; // [t][f][j]
    let mut r = vec![[[zero; 2]; 2]; sources * bins]; // [j][f]
    for _ in 0..iterations {
        for (j, yj) in y.iter().enumerate() {
            for tf in 0..frames * bins {
                v[tf * sources + j] = (yj[tf * 2].norm_sqr() + yj[tf * 2 + 1].norm_sqr()) / 2.0;
            }
        }
        for (j, yj) in y.iter().enumerate() {
            for fi in 0..bins {
                let mut acc = [[zero; 2]; 2];
                let mut weight = EPS;
                for ti in 0..frames {
                    let i = (ti * bins + fi) * 2;
                    for a in 0..2 {
                        for b in 0..2 {
                            acc[a][b] += yj[i + a] * yj[i + b].conj();
                        }
                    }
                    weight += v[(ti * bins + fi) * sources + j];
                }
                for row in &mut acc {
                    for e in row.iter_mut() {
                        *e /= weight;
                    }
                }
                r[j * bins + fi] = acc;
            }
        }
        for ti in 0..frames {
            for fi in 0..bins {
                let tf = ti * bins + fi;
                let mut cxx = [[Complex64::new(reg, 0.0), zero], [zero, Complex64::new(reg, 0.0)]];
                for j in 0..sources {
                    let vj = v[tf * sources + j];
                    let rj = &r[j * bins + fi];
                    for a in 0..2 {
                        for b in 0..2 {
                            cxx[a][b] += rj[a][b] * vj;
                        }
                    }
                }
                let inv = invert(&cxx);
                let xi = [x[tf * 2], x[tf * 2 + 1]];
                for j in 0..sources {
                    let vj = v[tf * sources + j];
                    let rj = &r[j * bins + fi];
                    for a in 0..2 {
                        let mut out = zero;
                        for i in 0..2 {
                            let gain = (rj[a][0] * inv[0][i] + rj[a][1] * inv[1][i]) * vj;
                            out += gain * xi[i];
                        }
                        y[j][tf * 2 + a] = out;
                    }
                }
            }
        }
    }
}
