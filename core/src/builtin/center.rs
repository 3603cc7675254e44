//! Centre-channel (vocal) extraction from stereo by inter-channel similarity
//! (Avendano & Jot, "A frequency-domain approach to multichannel upmix", 2004).
//!
//! For each time-frequency bin the similarity `ψ = 2·Re(L·R*) / (|L|² + |R|²)`
//! is 1 for a source panned dead centre and falls towards 0 (or below) for
//! sources panned aside, decorrelated (reverb, stereo wideners) or out of phase.
//! The centre mask is a Gaussian in the panning distance `1 − ψ`, restricted to
//! the vocal band; `vocals = mask · X`, `accompaniment = X − vocals`, per channel.

use realfft::num_complex::Complex32;

use super::hpss::hpss_masks;
use super::{HpssConfig, analyse, check_len, masked, synthesise};
use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stage, Stems, check_stream_rate};
use crate::stft::{Stft, StftConfig};
use crate::stream::{Local, Reach, StemStream, StreamSpec, Windowed};

/// Parameters of [`Center`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CenterConfig {
    pub n_fft: usize,
    pub hop_length: usize,
    /// Width of the Gaussian in `1 − ψ`; smaller keeps only sources closer to centre.
    pub width: f32,
    /// Bins below this frequency stay in the accompaniment (bass and kick are
    /// usually centred too).
    pub low_cut_hz: f32,
    /// Bins above this frequency stay in the accompaniment (cymbals, air).
    pub high_cut_hz: f32,
    /// Keep percussive sounds (a centred kick and snare) out of the vocals by
    /// multiplying the centre mask with a harmonic/percussive mask of the mid
    /// signal (median filters as in `hpss`, over this many frames and bins).
    /// `0` disables it.
    pub percussive_kernel: usize,
}

impl Default for CenterConfig {
    fn default() -> Self {
        Self {
            n_fft: 4096,
            hop_length: 1024,
            width: 0.1,
            low_cut_hz: 120.0,
            high_cut_hz: 12_000.0,
            percussive_kernel: 17,
        }
    }
}

/// The `center` built-in: stems `vocals`, `accompaniment`. Needs stereo input.
pub struct Center {
    pub(super) cfg: CenterConfig,
    stems: Vec<String>,
    stft: Stft,
}

impl Center {
    pub fn new(cfg: CenterConfig) -> Result<Self> {
        if !(cfg.width > 0.0) {
            return Err(Error::invalid("width", "> 0", cfg.width));
        }
        if !(cfg.low_cut_hz >= 0.0 && cfg.high_cut_hz > cfg.low_cut_hz) {
            return Err(Error::invalid(
                "low_cut_hz/high_cut_hz",
                "0 ≤ low < high",
                format!("{}/{}", cfg.low_cut_hz, cfg.high_cut_hz),
            ));
        }
        let stft = Stft::new(StftConfig::torch(cfg.n_fft, cfg.hop_length))?;
        Ok(Self { cfg, stems: vec!["vocals".into(), "accompaniment".into()], stft })
    }
}

/// The bins `lo..=hi` of the vocal band, for `bins` bins at `rate`.
pub(crate) fn band(cfg: &CenterConfig, rate: u32, bins: usize) -> (usize, usize) {
    let hz_per_bin = rate as f32 / cfg.n_fft as f32;
    let lo = (cfg.low_cut_hz / hz_per_bin).ceil() as usize;
    let hi = ((cfg.high_cut_hz / hz_per_bin).floor() as usize).min(bins - 1);
    (lo, hi)
}

/// The centre mask of one frame of the left and right spectra: a Gaussian in
/// the panning distance over `band`, left as it is (zeros) elsewhere.
pub(crate) fn centre_mask(
    cfg: &CenterConfig,
    l: &[Complex32],
    r: &[Complex32],
    band: std::ops::RangeInclusive<usize>,
    mask: &mut [f32],
) {
    let denom = 2.0 * cfg.width * cfg.width;
    for f in band {
        let e = l[f].norm_sqr() + r[f].norm_sqr();
        if e <= f32::MIN_POSITIVE {
            continue;
        }
        let psi = (2.0 * (l[f] * r[f].conj()).re / e).clamp(0.0, 1.0);
        let d = 1.0 - psi;
        mask[f] = (-d * d / denom).exp();
    }
}

fn mono_error() -> Error {
    Error::InvalidChannels {
        detail: "builtin:center needs stereo input to find the centre; for mono use builtin:repet".into(),
    }
}

impl Local for Center {
    fn reach(&self, _sample_rate: u32) -> Reach {
        let hop = self.cfg.hop_length;
        Reach { context: self.cfg.n_fft + (self.cfg.percussive_kernel / 2 + 1) * hop, align: hop, core: 0 }
    }
}

impl Separator for Center {
    fn stream<'s>(&'s mut self, spec: StreamSpec, opts: SeparateOptions<'s>) -> Result<Box<dyn StemStream + 's>> {
        check_stream_rate(None, &spec)?;
        if spec.channels == 1 {
            return Err(mono_error());
        }
        Ok(Windowed::boxed(self, spec, opts))
    }
    fn name(&self) -> &str {
        "builtin:center"
    }
    fn stems(&self) -> &[String] {
        &self.stems
    }
    /// Stereo: more channels are downmixed first (mono is refused).
    fn output_channels(&self, input_channels: usize) -> usize {
        input_channels.min(2)
    }
    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        let stereo = match audio.num_channels() {
            1 => return Err(mono_error()),
            2 => audio.clone(),
            _ => audio.to_channels(2)?,
        };
        check_len(&stereo, self.cfg.n_fft / 2, "builtin:center")?;
        let mix = analyse(&mut self.stft, &stereo, opts)?;
        opts.check_cancel()?;
        let (bins, frames) = (mix[0].bins, mix[0].frames);
        let (lo, hi) = band(&self.cfg, stereo.sample_rate(), bins);
        let mut mask = vec![0.0f32; bins * frames];
        for t in 0..frames {
            centre_mask(&self.cfg, mix[0].frame(t), mix[1].frame(t), lo..=hi, &mut mask[t * bins..(t + 1) * bins]);
        }
        if self.cfg.percussive_kernel > 0 {
            let mid: Vec<f32> = mix[0].data.iter().zip(&mix[1].data).map(|(l, r)| 0.5 * (l + r).norm()).collect();
            let k = self.cfg.percussive_kernel;
            let hcfg = HpssConfig { kernel_harmonic: k, kernel_percussive: k, ..HpssConfig::default() };
            let (harmonic, _) = hpss_masks(&mid, bins, frames, &hcfg);
            mask.iter_mut().zip(harmonic).for_each(|(m, h)| *m *= h);
        }
        opts.report(Stage::Separate, 1, 1);
        let vocals = mix.iter().map(|s| masked(s, &mask)).collect();
        // More than two channels: the stems are of the stereo downmix (see the
        // channel policy in `crate::audio`) and sum to that downmix.
        synthesise(&mut self.stft, &stereo, &mix, vec![("vocals".into(), vocals)], "accompaniment", opts)
    }
}
