//! Separators that need no model weights: `hpss`, `center` and `repet`.
//!
//! All three work at the input's sample rate, mask a complex STFT, and define
//! their last stem so the stems sum back to the mixture (up to the STFT's
//! round-off, below 1e-5).

mod center;
mod hpss;
mod repet;

pub use center::{Center, CenterConfig};
pub(crate) use center::{band, centre_mask};
pub(crate) use hpss::mask_pair;
pub use hpss::{Hpss, HpssConfig};
pub use repet::{Repet, RepetConfig};

use realfft::num_complex::Complex32;

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stage, Stems};
use crate::stft::{Spectrogram, Stft};

/// Names of the built-in separators, default first.
pub const BUILTIN_NAMES: &[&str] = &["hpss", "center", "repet"];

/// The separator used when none is named: `hpss`, because it works on any input
/// (mono or stereo, music or speech) and needs no download.
pub const DEFAULT_BUILTIN: &str = "hpss";

/// Configuration of any built-in separator, as read from JSON or TOML:
/// `{"method": "hpss", "kernel_harmonic": 17}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum BuiltinConfig {
    Hpss(HpssConfig),
    Center(CenterConfig),
    Repet(RepetConfig),
}

impl BuiltinConfig {
    pub fn build(self) -> Result<Box<dyn Separator>> {
        Ok(match self {
            BuiltinConfig::Hpss(c) => Box::new(Hpss::new(c)?),
            BuiltinConfig::Center(c) => Box::new(Center::new(c)?),
            BuiltinConfig::Repet(c) => Box::new(Repet::new(c)?),
        })
    }
}

/// A built-in separator by name (`hpss`, `builtin:hpss`, …) with defaults.
pub(crate) fn builtin_separator(name: &str) -> Result<Box<dyn Separator>> {
    let short = name.strip_prefix("builtin:").unwrap_or(name);
    match short {
        "hpss" => BuiltinConfig::Hpss(HpssConfig::default()),
        "center" => BuiltinConfig::Center(CenterConfig::default()),
        "repet" => BuiltinConfig::Repet(RepetConfig::default()),
        _ => {
            return Err(Error::UnknownSeparator {
                name: name.to_string(),
                available: BUILTIN_NAMES.iter().map(|n| format!("builtin:{n}")).collect(),
            });
        }
    }
    .build()
}

/// `librosa.util.softmask(x, x_ref, power, split_zeros)` for one element.
#[inline]
pub(crate) fn softmask(x: f32, x_ref: f32, power: f32, split_zeros: bool) -> f32 {
    let z = x.max(x_ref);
    if z < f32::MIN_POSITIVE {
        return if split_zeros { 0.5 } else { 0.0 };
    }
    if power.is_infinite() {
        return if x > x_ref { 1.0 } else { 0.0 };
    }
    let (a, b) = (x / z, x_ref / z);
    // powf is the slow part of the whole mask; the usual exponents need none.
    let (m, r) = if power == 2.0 {
        (a * a, b * b)
    } else if power == 1.0 {
        (a, b)
    } else {
        (a.powf(power), b.powf(power))
    };
    m / (m + r)
}

/// Index into `0..n` for position `i` under scipy.ndimage's `reflect` mode
/// (`d c b a | a b c d | d c b a`).
#[inline]
pub(crate) fn reflect_index(i: isize, n: usize) -> usize {
    let n = n as isize;
    let p = 2 * n;
    let m = i.rem_euclid(p);
    (if m >= n { p - 1 - m } else { m }) as usize
}

/// Scratch space reused across calls of [`median_filter_1d`].
#[derive(Debug, Default)]
pub(crate) struct MedianScratch {
    window: Vec<f32>,
    padded: Vec<f32>,
}

impl MedianScratch {
    /// Room for lines of `n` values and windows of `k`, so filtering them allocates nothing.
    pub(crate) fn reserve(&mut self, n: usize, k: usize) {
        self.padded.reserve(n + k);
        self.window.reserve(k + 1);
    }
}

/// `scipy.ndimage.median_filter(x, size=k, mode="reflect")` of `x`, written to
/// `out`. The line is extended once with reflected edges, then a sorted window
/// slides over it: O(n·k) with no index arithmetic in the loop.
pub(crate) fn median_filter_1d(x: &[f32], k: usize, out: &mut [f32], scratch: &mut MedianScratch) {
    let n = x.len();
    let half = (k / 2) as isize;
    let MedianScratch { window, padded } = scratch;
    padded.clear();
    padded.extend((0..(n + k - 1) as isize).map(|j| x[reflect_index(j - half, n)]));
    window.clear();
    window.extend_from_slice(&padded[..k]);
    window.sort_unstable_by(f32::total_cmp);
    let rank = k / 2;
    for i in 0..n {
        out[i] = window[rank];
        if i + 1 == n {
            break;
        }
        let (outgoing, incoming) = (padded[i], padded[i + k]);
        if outgoing.to_bits() == incoming.to_bits() {
            continue;
        }
        let pos = window.partition_point(|v| v.total_cmp(&outgoing).is_lt());
        let ins = window.partition_point(|v| v.total_cmp(&incoming).is_lt());
        // Move the elements between the two positions by one instead of a
        // remove followed by an insert.
        if ins > pos {
            window.copy_within(pos + 1..ins, pos);
            window[ins - 1] = incoming;
        } else {
            window.copy_within(ins..pos, ins + 1);
            window[ins] = incoming;
        }
    }
}

/// STFT of each channel.
pub(crate) fn analyse(stft: &mut Stft, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Vec<Spectrogram>> {
    let n = audio.num_channels() as u64;
    let mut specs = Vec::with_capacity(audio.num_channels());
    for (i, c) in audio.channels().iter().enumerate() {
        opts.check_cancel()?;
        specs.push(stft.forward(c)?);
        opts.report(Stage::Analyse, i as u64 + 1, n);
    }
    Ok(specs)
}

/// Turns per-channel masks of the first stems into stems; the last stem is the
/// mixture minus the others in the STFT domain, so all stems sum to the mixture.
pub(crate) fn synthesise(
    stft: &mut Stft,
    audio: &AudioBuffer,
    mix: &[Spectrogram],
    masked: Vec<(String, Vec<Spectrogram>)>,
    last: &str,
    opts: &SeparateOptions<'_>,
) -> Result<Stems> {
    let frames = audio.frames();
    let total = (masked.len() as u64 + 1) * mix.len() as u64;
    let mut done = 0;
    let mut residual: Vec<Spectrogram> = mix.to_vec();
    let mut out = Vec::with_capacity(masked.len() + 1);
    for (name, specs) in masked {
        let mut chans = Vec::with_capacity(specs.len());
        for (s, r) in specs.iter().zip(residual.iter_mut()) {
            opts.check_cancel()?;
            r.data.iter_mut().zip(&s.data).for_each(|(r, s)| *r -= s);
            chans.push(stft.inverse(s, Some(frames))?);
            done += 1;
            opts.report(Stage::Synthesise, done, total);
        }
        out.push((name, AudioBuffer::new(audio.sample_rate(), chans)?));
    }
    let mut chans = Vec::with_capacity(residual.len());
    for r in &residual {
        opts.check_cancel()?;
        chans.push(stft.inverse(r, Some(frames))?);
        done += 1;
        opts.report(Stage::Synthesise, done, total);
    }
    out.push((last.to_string(), AudioBuffer::new(audio.sample_rate(), chans)?));
    Stems::new(out)
}

/// Applies a real mask (same layout as the spectrogram) to a complex spectrogram.
pub(crate) fn masked(spec: &Spectrogram, mask: &[f32]) -> Spectrogram {
    Spectrogram {
        bins: spec.bins,
        frames: spec.frames,
        data: spec.data.iter().zip(mask).map(|(x, &m)| *x * m).collect::<Vec<Complex32>>(),
    }
}

/// Checks `n_fft`/hop against a signal length and the reflect-padding rule.
pub(crate) fn check_len(audio: &AudioBuffer, min: usize, who: &str) -> Result<()> {
    if audio.frames() <= min {
        return Err(Error::invalid(
            "audio",
            format!("more than {min} frames for {who}"),
            format!("{} frames", audio.frames()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_scipy() {
        // scipy reflect of [0,1,2,3] for indices -3..7: 2 1 0 | 0 1 2 3 | 3 2 1 0
        let got: Vec<usize> = (-3..8).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
    }

    #[test]
    fn sliding_median_equals_naive() {
        let x: Vec<f32> = (0..50).map(|i| ((i * 37) % 23) as f32 - (i % 5) as f32).collect();
        for k in [1, 2, 3, 4, 7, 31, 60] {
            let mut out = vec![0.0; x.len()];
            median_filter_1d(&x, k, &mut out, &mut MedianScratch::default());
            for i in 0..x.len() {
                let mut w: Vec<f32> =
                    (0..k as isize).map(|j| x[reflect_index(i as isize - (k / 2) as isize + j, x.len())]).collect();
                w.sort_by(f32::total_cmp);
                assert_eq!(out[i], w[k / 2], "k={k} i={i}");
            }
        }
    }

    #[test]
    fn softmask_properties() {
        assert_eq!(softmask(0.0, 0.0, 2.0, true), 0.5);
        assert_eq!(softmask(0.0, 0.0, 2.0, false), 0.0);
        assert!((softmask(1.0, 1.0, 2.0, false) - 0.5).abs() < 1e-7);
        assert!((softmask(3.0, 1.0, 1.0, false) - 0.75).abs() < 1e-7);
        assert_eq!(softmask(3.0, 1.0, f32::INFINITY, false), 1.0);
    }

    #[test]
    fn unknown_name_lists_builtins() {
        match builtin_separator("builtin:nope") {
            Err(Error::UnknownSeparator { available, .. }) => assert!(available.contains(&"builtin:hpss".into())),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted an unknown name"),
        }
    }
}

macro_rules! debug_by_config {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("cfg", &self.cfg).finish_non_exhaustive()
            }
        }
    )*};
}
debug_by_config!(Hpss, Center, Repet);
