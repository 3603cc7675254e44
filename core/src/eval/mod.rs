//! Separation quality metrics.
//!
//! - [`global_sdr`]: the MDX challenge's "global SDR" (also called uSDR):
//!   `10·log10((Σ s² + ε) / (Σ (s − ŝ)² + ε))` over all channels and samples,
//!   with ε = 1e-7, as in the MDX 2021/2023 evaluation code.
//! - [`si_sdr`]: scale-invariant SDR (Le Roux et al. 2019), per channel then
//!   averaged: the estimate is projected on the reference, `α = ⟨ŝ, s⟩ / ‖s‖²`,
//!   and `10·log10(‖α s‖² / ‖α s − ŝ‖²)`.
//! - [`bss_eval`]: BSS Eval v4 as sigsep's museval computes it: framewise
//!   SDR, ISR, SIR and SAR with time-invariant distortion filters.

mod bss;
mod dataset;

pub use bss::{BssEvalOptions, BssScores, bss_eval, nan_median};
pub use dataset::{DatasetScores, TrackScores, dataset_tracks, evaluate_dataset};

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};

/// The MDX challenge's epsilon.
pub const MDX_EPSILON: f64 = 1e-7;

fn check_pair(reference: &AudioBuffer, estimate: &AudioBuffer) -> Result<()> {
    if reference.spec() != estimate.spec() || reference.frames() != estimate.frames() {
        return Err(Error::InvalidChannels {
            detail: format!(
                "reference is {} ch / {} Hz / {} frames, estimate is {} ch / {} Hz / {} frames",
                reference.num_channels(),
                reference.sample_rate(),
                reference.frames(),
                estimate.num_channels(),
                estimate.sample_rate(),
                estimate.frames()
            ),
        });
    }
    reference.check_finite()?;
    estimate.check_finite()
}

/// MDX global SDR in dB of `estimate` against `reference` (same shape).
pub fn global_sdr(reference: &AudioBuffer, estimate: &AudioBuffer) -> Result<f64> {
    check_pair(reference, estimate)?;
    let (mut num, mut den) = (0f64, 0f64);
    for (r, e) in reference.channels().iter().zip(estimate.channels()) {
        for (&a, &b) in r.iter().zip(e) {
            num += (a as f64) * (a as f64);
            den += (a as f64 - b as f64).powi(2);
        }
    }
    Ok(10.0 * ((num + MDX_EPSILON) / (den + MDX_EPSILON)).log10())
}

/// Scale-invariant SDR in dB, averaged over channels. A silent reference
/// channel gives NaN for that channel, which is left out of the mean (NaN if
/// every channel is silent).
pub fn si_sdr(reference: &AudioBuffer, estimate: &AudioBuffer) -> Result<f64> {
    check_pair(reference, estimate)?;
    let mut values = Vec::with_capacity(reference.num_channels());
    for (r, e) in reference.channels().iter().zip(estimate.channels()) {
        let rr: f64 = r.iter().map(|&x| (x as f64).powi(2)).sum();
        if rr == 0.0 {
            continue;
        }
        let re: f64 = r.iter().zip(e).map(|(&a, &b)| a as f64 * b as f64).sum();
        let alpha = re / rr;
        let (mut target, mut noise) = (0f64, 0f64);
        for (&a, &b) in r.iter().zip(e) {
            let t = alpha * a as f64;
            target += t * t;
            noise += (t - b as f64).powi(2);
        }
        values.push(10.0 * (target / noise).log10());
    }
    Ok(if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 })
}

/// Scores of one stem: museval's aggregate (the median over 1 s windows of BSS
/// Eval v4) and the whole-signal MDX global SDR and SI-SDR.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StemScore {
    pub stem: String,
    /// Median over windows, dB: NaN when every window is silent, +∞ for a
    /// perfect estimate (both `null` in JSON).
    pub sdr: f64,
    pub isr: f64,
    pub sir: f64,
    pub sar: f64,
    /// Windows scored (NaN windows included).
    pub windows: usize,
    /// MDX global SDR, dB.
    pub global_sdr: f64,
    /// Scale-invariant SDR, dB.
    pub si_sdr: f64,
}

/// Scores stems against references: BSS Eval v4 over all of them together (the
/// others are the interference), museval's 1 s windows at the references' rate.
/// Estimates are cut or zero-padded to the references' length, as museval does.
pub fn score_stems(names: &[String], references: &[AudioBuffer], estimates: &[AudioBuffer]) -> Result<Vec<StemScore>> {
    let rate = references.first().map_or(44100, AudioBuffer::sample_rate);
    let fitted: Vec<AudioBuffer> = references
        .iter()
        .zip(estimates)
        .map(|(r, e)| {
            let ch = e
                .channels()
                .iter()
                .map(|c| {
                    let mut v = c.clone();
                    v.resize(r.frames(), 0.0);
                    v
                })
                .collect();
            AudioBuffer::new(e.sample_rate(), ch)
        })
        .collect::<Result<_>>()?;
    let bss = bss_eval(references, &fitted, &BssEvalOptions::museval(rate))?;
    let mut out = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        out.push(StemScore {
            stem: name.clone(),
            sdr: nan_median(&bss.sdr[j]),
            isr: nan_median(&bss.isr[j]),
            sir: nan_median(&bss.sir[j]),
            sar: nan_median(&bss.sar[j]),
            windows: bss.sdr[j].len(),
            global_sdr: global_sdr(&references[j], &fitted[j])?,
            si_sdr: si_sdr(&references[j], &fitted[j])?,
        });
    }
    Ok(out)
}

/// Audio file extensions looked for in evaluation folders.
const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "aiff", "aif", "caf", "mp3", "ogg", "m4a"];

/// Stem files of a folder (`<stem>.wav`, `.flac`, …), sorted by name, `mixture.*` left out.
pub fn stem_files(dir: &std::path::Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if path.is_file() && ext.is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.as_str())) {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if stem != "mixture" {
                v.push((stem, path));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Scores every stem file of `reference_dir` against the file of the same stem
/// name in `estimate_dir`; see [`score_stems`]. Stems come back sorted by name.
pub fn evaluate_dirs(reference_dir: &std::path::Path, estimate_dir: &std::path::Path) -> Result<Vec<StemScore>> {
    let refs = stem_files(reference_dir)?;
    if refs.is_empty() {
        return Err(Error::Empty { what: format!("reference folder {} (no audio files)", reference_dir.display()) });
    }
    let ests = stem_files(estimate_dir)?;
    let opts = crate::DecodeOptions::default();
    let (mut names, mut r, mut e) = (Vec::new(), Vec::new(), Vec::new());
    for (stem, rpath) in refs {
        let Some((_, epath)) = ests.iter().find(|(s, _)| *s == stem) else {
            return Err(Error::UnknownStem { stem, available: ests.iter().map(|(s, _)| s.clone()).collect() });
        };
        r.push(crate::decode_file(&rpath, &opts)?);
        e.push(crate::decode_file(epath, &opts)?);
        names.push(stem);
    }
    score_stems(&names, &r, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(ch: Vec<Vec<f32>>) -> AudioBuffer {
        AudioBuffer::new(8000, ch).unwrap()
    }

    #[test]
    fn known_values() {
        let r = buf(vec![vec![1.0, -1.0, 1.0, -1.0]]);
        // Error of 0.1 everywhere: SDR = 10·log10(4 / 0.04) = 20 dB.
        let e = buf(vec![vec![1.1, -0.9, 1.1, -0.9]]);
        assert!((global_sdr(&r, &e).unwrap() - 20.0).abs() < 1e-4);
        // Perfect estimate: limited only by epsilon.
        assert!((global_sdr(&r, &r).unwrap() - 10.0 * ((4.0 + 1e-7) / 1e-7f64).log10()).abs() < 1e-6);
        // SI-SDR ignores scale: 0.5·r is perfect.
        let half = buf(vec![vec![0.5, -0.5, 0.5, -0.5]]);
        assert!(si_sdr(&r, &half).unwrap() > 100.0);
        // Orthogonal error of equal energy: α = 1, SI-SDR = 0 dB.
        let orth = buf(vec![vec![2.0, 0.0, 2.0, 0.0]]); // r + [1, 1, 1, 1]
        assert!(si_sdr(&r, &orth).unwrap().abs() < 1e-9);
    }

    #[test]
    fn mismatches_are_errors_and_silence_is_nan() {
        let r = buf(vec![vec![1.0; 4]]);
        assert!(global_sdr(&r, &buf(vec![vec![1.0; 5]])).is_err());
        assert!(global_sdr(&r, &buf(vec![vec![1.0; 4], vec![1.0; 4]])).is_err());
        assert!(si_sdr(&buf(vec![vec![0.0; 4]]), &r).unwrap().is_nan());
        assert!(global_sdr(&r, &buf(vec![vec![f32::NAN; 4]])).is_err());
    }
}
