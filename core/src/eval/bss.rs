//! BSS Eval v4, as sigsep's museval computes it (`museval.evaluate`, mode `v4`).
//!
//! Each estimate is decomposed against the references with time-invariant
//! multichannel FIR filters (`filter_len` taps, 512 by default) computed once per
//! track by least squares over the whole signals: `P_j`, the projection on its own
//! reference's delayed copies, and `P`, on every reference's. Then, in windows of
//! `window` samples every `hop` (museval: 1 s and 1 s; a trailing partial window
//! is dropped), with signals zero outside the window and the filters' tails kept:
//!
//! - SDR = 10·log10(‖s‖² / ‖ŝ − s‖²)
//! - ISR = 10·log10(‖s‖² / ‖P_j − s‖²)
//! - SIR = 10·log10(‖P_j‖² / ‖P − P_j‖²)
//! - SAR = 10·log10(‖P‖² / ‖ŝ − P‖²)
//!
//! A window where any reference or any estimate is silent (every sample's
//! channel sum is zero) scores NaN for all sources; a zero denominator gives +∞.
//! Everything is computed in `f64`. The correlations are accumulated block by
//! block in the frequency domain, so memory does not grow with the track.

use faer::Mat;
use faer::prelude::Solve;
use rayon::prelude::*;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex64;

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};

/// Windowing and filter length of [`bss_eval`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BssEvalOptions {
    /// Window length in samples (museval: 1 s).
    pub window: usize,
    /// Hop between windows in samples (museval: 1 s).
    pub hop: usize,
    /// Distortion filter taps (museval: 512).
    pub filter_len: usize,
}

impl Default for BssEvalOptions {
    fn default() -> Self {
        Self { window: 44100, hop: 44100, filter_len: 512 }
    }
}

impl BssEvalOptions {
    /// museval's defaults at `sample_rate`: 1 s windows and hops, 512 taps.
    pub fn museval(sample_rate: u32) -> Self {
        Self { window: sample_rate as usize, hop: sample_rate as usize, filter_len: 512 }
    }
}

/// Framewise scores, `[source][window]`, in dB.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BssScores {
    pub sdr: Vec<Vec<f64>>,
    pub isr: Vec<Vec<f64>>,
    pub sir: Vec<Vec<f64>>,
    pub sar: Vec<Vec<f64>>,
}

/// The median of the values that are not NaN (numpy's `nanmedian`); NaN if none.
pub fn nan_median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN left"));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Windows of museval's `Framing`: `(start, stop)` pairs.
fn frames(n: usize, window: usize, hop: usize) -> Vec<(usize, usize)> {
    if window >= n {
        return vec![(0, n)];
    }
    let count = (n - window + hop) / hop;
    (0..count).map(|t| (t * hop, (t * hop + window).min(n))).collect()
}

/// Lagged correlations `Σ_n x[n + k] y[n]` for `|k| < lags` of many pairs,
/// accumulated over blocks of the signals in the frequency domain.
struct Correlator {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    ifft: std::sync::Arc<dyn realfft::ComplexToReal<f64>>,
    size: usize,
    block: usize,
    lags: usize,
}

impl Correlator {
    fn new(lags: usize) -> Self {
        let size = (4 * lags).max(1 << 16).next_power_of_two();
        let mut planner = RealFftPlanner::<f64>::new();
        Self {
            fft: planner.plan_fft_forward(size),
            ifft: planner.plan_fft_inverse(size),
            size,
            block: size - 2 * (lags - 1),
            lags,
        }
    }

    fn spectrum(&self, buf: &mut [f64]) -> Vec<Complex64> {
        let mut out = self.fft.make_output_vec();
        self.fft.process(buf, &mut out).expect("sizes from the plan");
        out
    }

    /// `pairs[i] = (x, y)` indexes into `xs` and `ys`; returns for each pair the
    /// correlations at lags `-(lags−1)..=lags−1` (index `k + lags − 1`).
    fn correlate(&self, xs: &[&[f64]], ys: &[&[f64]], pairs: &[(usize, usize)]) -> Vec<Vec<f64>> {
        let n = xs.iter().chain(ys).map(|s| s.len()).max().unwrap_or(0);
        let half = self.size / 2 + 1;
        let pad = self.lags - 1;
        let starts: Vec<usize> = (0..n).step_by(self.block).collect();
        let zero = || vec![vec![Complex64::new(0.0, 0.0); half]; pairs.len()];
        // One run of blocks per thread, each summing into its own accumulators.
        let per_thread = starts.len().div_ceil(rayon::current_num_threads()).max(1);
        let acc = starts
            .par_chunks(per_thread)
            .map(|run| {
                run.iter().fold(zero(), |mut acc, &n0| {
                    let m = self.block.min(n - n0);
                    let mut buf = vec![0.0f64; self.size];
                    // x extended by lags − 1 on both sides; y in place at offset lags − 1.
                    let x_spec: Vec<Vec<Complex64>> = xs
                        .iter()
                        .map(|x| {
                            buf.iter_mut().for_each(|v| *v = 0.0);
                            for i in 0..m + 2 * pad {
                                let j = n0 as isize - pad as isize + i as isize;
                                if j >= 0 && (j as usize) < x.len() {
                                    buf[i] = x[j as usize];
                                }
                            }
                            self.spectrum(&mut buf)
                        })
                        .collect();
                    let y_spec: Vec<Vec<Complex64>> = ys
                        .iter()
                        .map(|y| {
                            buf.iter_mut().for_each(|v| *v = 0.0);
                            let end = (n0 + m).min(y.len());
                            if n0 < end {
                                buf[pad..pad + end - n0].copy_from_slice(&y[n0..end]);
                            }
                            self.spectrum(&mut buf)
                        })
                        .collect();
                    for (a, &(xi, yi)) in acc.iter_mut().zip(pairs) {
                        for ((s, x), y) in a.iter_mut().zip(&x_spec[xi]).zip(&y_spec[yi]) {
                            *s += x * y.conj();
                        }
                    }
                    acc
                })
            })
            .reduce(zero, |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.iter_mut().zip(y).for_each(|(u, v)| *u += v);
                }
                a
            });
        // c[k] = Σ_m x_ext[m + k] y_pad[m]; x_ext[m] = x[n0 − pad + m], y_pad[m] = y[n0 + m − pad],
        // so lag k of the signals is index k of the circular correlation.
        let mut out = Vec::with_capacity(pairs.len());
        let mut time = vec![0.0f64; self.size];
        for mut a in acc {
            // The imaginary parts of DC and Nyquist are rounding noise.
            a[0].im = 0.0;
            a[half - 1].im = 0.0;
            self.ifft.process(&mut a, &mut time).expect("sizes from the plan");
            let scale = 1.0 / self.size as f64;
            let lags: Vec<f64> = (-(pad as isize)..=pad as isize)
                .map(|k| time[k.rem_euclid(self.size as isize) as usize] * scale)
                .collect();
            out.push(lags);
        }
        out
    }
}

/// FFT convolution of windows with fixed filters.
struct Convolver {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    ifft: std::sync::Arc<dyn realfft::ComplexToReal<f64>>,
    size: usize,
}

impl Convolver {
    fn new(len: usize) -> Self {
        let size = len.next_power_of_two().max(2);
        let mut planner = RealFftPlanner::<f64>::new();
        Self { fft: planner.plan_fft_forward(size), ifft: planner.plan_fft_inverse(size), size }
    }
    fn spectrum(&self, x: &[f64]) -> Vec<Complex64> {
        let mut buf = vec![0.0; self.size];
        buf[..x.len()].copy_from_slice(x);
        let mut out = self.fft.make_output_vec();
        self.fft.process(&mut buf, &mut out).expect("sizes from the plan");
        out
    }
    fn inverse(&self, mut spec: Vec<Complex64>, len: usize) -> Vec<f64> {
        let half = spec.len();
        spec[0].im = 0.0;
        spec[half - 1].im = 0.0;
        let mut out = vec![0.0; self.size];
        self.ifft.process(&mut spec, &mut out).expect("sizes from the plan");
        let scale = 1.0 / self.size as f64;
        out.truncate(len);
        out.iter_mut().for_each(|v| *v *= scale);
        out
    }
}

fn safe_db(num: f64, den: f64) -> f64 {
    if den == 0.0 { f64::INFINITY } else { 10.0 * (num / den).log10() }
}

fn check(references: &[AudioBuffer], estimates: &[AudioBuffer], opts: &BssEvalOptions) -> Result<()> {
    if references.is_empty() || references.len() != estimates.len() {
        return Err(Error::invalid(
            "sources",
            "as many estimates as references, at least one",
            format!("{} references, {} estimates", references.len(), estimates.len()),
        ));
    }
    if opts.window == 0 || opts.hop == 0 || opts.filter_len == 0 {
        return Err(Error::invalid("window, hop, filter_len", "all positive", format!("{opts:?}")));
    }
    let first = &references[0];
    for b in references.iter().chain(estimates) {
        if b.num_channels() != first.num_channels() || b.sample_rate() != first.sample_rate() {
            return Err(Error::InvalidChannels {
                detail: format!(
                    "every reference and estimate needs {} channels at {} Hz; one has {} at {} Hz",
                    first.num_channels(),
                    first.sample_rate(),
                    b.num_channels(),
                    b.sample_rate()
                ),
            });
        }
        b.check_finite()?;
    }
    if let Some(r) = references.iter().find(|r| r.frames() != first.frames()) {
        return Err(Error::InvalidChannels {
            detail: format!("references differ in length: {} and {} frames", first.frames(), r.frames()),
        });
    }
    if first.is_empty() {
        return Err(Error::Empty { what: "reference audio".into() });
    }
    Ok(())
}

/// BSS Eval v4 of `estimates` against `references` (one per source, in the same
/// order, all with the same channels and rate). Estimates are cut or zero-padded
/// to the references' length, as museval does.
pub fn bss_eval(references: &[AudioBuffer], estimates: &[AudioBuffer], opts: &BssEvalOptions) -> Result<BssScores> {
    check(references, estimates, opts)?;
    let nsrc = references.len();
    let nchan = references[0].num_channels();
    let n = references[0].frames();
    let taps = opts.filter_len;
    let to_f64 = |b: &AudioBuffer| -> Vec<Vec<f64>> {
        b.channels()
            .iter()
            .map(|c| {
                let mut v: Vec<f64> = c.iter().take(n).map(|&x| x as f64).collect();
                v.resize(n, 0.0);
                v
            })
            .collect()
    };
    // Signals indexed source-major: a = j · nchan + c.
    let refs: Vec<Vec<f64>> = references.iter().flat_map(to_f64).collect();
    let ests: Vec<Vec<f64>> = estimates.iter().flat_map(to_f64).collect();
    let nsig = nsrc * nchan;

    // Correlations: reference pairs a ≤ b (the Gram matrix) and reference × estimate.
    let corr = Correlator::new(taps);
    let mut pairs = Vec::new();
    for a in 0..nsig {
        for b in a..nsig {
            pairs.push((a, b));
        }
    }
    let gram_pairs = pairs.len();
    for a in 0..nsig {
        for e in 0..nsig {
            pairs.push((a, nsig + e));
        }
    }
    let xs: Vec<&[f64]> = refs.iter().map(Vec::as_slice).collect();
    let ys: Vec<&[f64]> = refs.iter().chain(&ests).map(Vec::as_slice).collect();
    let lagged = corr.correlate(&xs, &ys, &pairs);
    let mid = taps - 1;
    // g(a, b, k) = Σ_n s_a[n + k] s_b[n]
    let g = |a: usize, b: usize, k: isize| -> f64 {
        let (lo, hi, k) = if a <= b { (a, b, k) } else { (b, a, -k) };
        let idx = lo * nsig - lo * (lo + 1) / 2 + hi;
        lagged[idx][(mid as isize + k) as usize]
    };
    let d = |a: usize, e: usize, p: usize| -> f64 { lagged[gram_pairs + a * nsig + e][mid - p] };

    // Least squares: (G + eps·I) C = D for every estimate channel at once, and the
    // per-source blocks for the projections on one reference.
    let size = nsig * taps;
    let eps = f64::EPSILON;
    let gram = Mat::<f64>::from_fn(size, size, |r, c| {
        let (a, p) = (r / taps, r % taps);
        let (b, q) = (c / taps, c % taps);
        g(a, b, q as isize - p as isize) + if r == c { eps } else { 0.0 }
    });
    let rhs = Mat::<f64>::from_fn(size, nsig, |r, e| d(r / taps, e, r % taps));
    let filters_all = gram.partial_piv_lu().solve(&rhs);
    let block = nchan * taps;
    let mut filters_own = Vec::with_capacity(nsrc);
    for j in 0..nsrc {
        let sub = Mat::<f64>::from_fn(block, block, |r, c| gram[(j * block + r, j * block + c)]);
        let rhs_j = Mat::<f64>::from_fn(block, nchan, |r, c| rhs[(j * block + r, j * nchan + c)]);
        filters_own.push(sub.partial_piv_lu().solve(&rhs_j));
    }

    let windows = frames(n, opts.window, opts.hop);
    let longest = windows.iter().map(|(a, b)| b - a).max().unwrap_or(0);
    let conv = Convolver::new(longest + taps - 1);
    // Filter spectra: all[jest][a][c] and own[jest][cj][c].
    let spec_all: Vec<Vec<Vec<Vec<Complex64>>>> = (0..nsrc)
        .map(|jest| {
            (0..nsig)
                .map(|a| {
                    (0..nchan)
                        .map(|c| {
                            let h: Vec<f64> =
                                (0..taps).map(|p| filters_all[(a * taps + p, jest * nchan + c)]).collect();
                            conv.spectrum(&h)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let spec_own: Vec<Vec<Vec<Vec<Complex64>>>> = (0..nsrc)
        .map(|j| {
            (0..nchan)
                .map(|cj| {
                    (0..nchan)
                        .map(|c| {
                            let h: Vec<f64> = (0..taps).map(|p| filters_own[j][(cj * taps + p, c)]).collect();
                            conv.spectrum(&h)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();

    let silent = |sigs: &[Vec<f64>], j: usize, a: usize, b: usize| -> bool {
        (a..b).all(|i| (0..nchan).map(|c| sigs[j * nchan + c][i]).sum::<f64>() == 0.0)
    };
    let mut scores = BssScores {
        sdr: vec![Vec::with_capacity(windows.len()); nsrc],
        isr: vec![Vec::with_capacity(windows.len()); nsrc],
        sir: vec![Vec::with_capacity(windows.len()); nsrc],
        sar: vec![Vec::with_capacity(windows.len()); nsrc],
    };
    let half = conv.size / 2 + 1;
    // Windows are independent: score them in parallel, [source][sdr, isr, sir, sar] each.
    let per_window: Vec<Option<Vec<[f64; 4]>>> = windows
        .par_iter()
        .map(|&(a, b)| {
            if (0..nsrc).any(|j| silent(&refs, j, a, b) || silent(&ests, j, a, b)) {
                return None;
            }
            let w = b - a;
            let out_len = w + taps - 1;
            let ref_spec: Vec<Vec<Complex64>> = refs.iter().map(|s| conv.spectrum(&s[a..b])).collect();
            let mut row = Vec::with_capacity(nsrc);
            for j in 0..nsrc {
                let (mut e_s, mut e_err, mut e_spat, mut e_pj, mut e_interf, mut e_p, mut e_artif) =
                    (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
                for c in 0..nchan {
                    let mut all = vec![Complex64::new(0.0, 0.0); half];
                    for (sig, spec) in ref_spec.iter().enumerate() {
                        for ((o, x), h) in all.iter_mut().zip(spec).zip(&spec_all[j][sig][c]) {
                            *o += x * h;
                        }
                    }
                    let mut own = vec![Complex64::new(0.0, 0.0); half];
                    for cj in 0..nchan {
                        for ((o, x), h) in own.iter_mut().zip(&ref_spec[j * nchan + cj]).zip(&spec_own[j][cj][c]) {
                            *o += x * h;
                        }
                    }
                    let p_all = conv.inverse(all, out_len);
                    let p_own = conv.inverse(own, out_len);
                    let s = &refs[j * nchan + c][a..b];
                    let e = &ests[j * nchan + c][a..b];
                    for i in 0..out_len {
                        let sv = if i < w { s[i] } else { 0.0 };
                        let ev = if i < w { e[i] } else { 0.0 };
                        e_s += sv * sv;
                        e_err += (ev - sv) * (ev - sv);
                        e_spat += (p_own[i] - sv) * (p_own[i] - sv);
                        e_pj += p_own[i] * p_own[i];
                        e_interf += (p_all[i] - p_own[i]) * (p_all[i] - p_own[i]);
                        e_p += p_all[i] * p_all[i];
                        e_artif += (ev - p_all[i]) * (ev - p_all[i]);
                    }
                }
                row.push([safe_db(e_s, e_err), safe_db(e_s, e_spat), safe_db(e_pj, e_interf), safe_db(e_p, e_artif)]);
            }
            Some(row)
        })
        .collect();
    for window in per_window {
        for j in 0..nsrc {
            let [sdr, isr, sir, sar] = window.as_ref().map_or([f64::NAN; 4], |row| row[j]);
            scores.sdr[j].push(sdr);
            scores.isr[j].push(isr);
            scores.sir[j].push(sir);
            scores.sar[j].push(sar);
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_matches_museval() {
        assert_eq!(frames(100, 40, 40), vec![(0, 40), (40, 80)]);
        assert_eq!(frames(100, 40, 20), vec![(0, 40), (20, 60), (40, 80), (60, 100)]);
        assert_eq!(frames(30, 40, 40), vec![(0, 30)]);
    }

    #[test]
    fn nan_median_skips_nan() {
        assert_eq!(nan_median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(nan_median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(nan_median(&[f64::NAN]).is_nan());
        assert_eq!(nan_median(&[1.0, f64::INFINITY, 2.0]), 2.0);
    }

    #[test]
    fn correlator_matches_direct_sums() {
        let x: Vec<f64> =
            (0..70_000).map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * (i as f64 * 0.001).sin()).collect();
        let y: Vec<f64> = (0..70_000i64).map(|i| (i * 104_729 % 997) as f64 / 498.5 - 1.0).collect();
        let c = Correlator::new(8);
        let got = c.correlate(&[&x], &[&y], &[(0, 0)]);
        for k in -7isize..=7 {
            let want: f64 = (0..y.len())
                .filter_map(|n| {
                    let m = n as isize + k;
                    (0..x.len() as isize).contains(&m).then(|| x[m as usize] * y[n])
                })
                .sum();
            let have = got[0][(k + 7) as usize];
            assert!((have - want).abs() <= 1e-8 * want.abs().max(1.0), "lag {k}: {have} vs {want}");
        }
    }
}
