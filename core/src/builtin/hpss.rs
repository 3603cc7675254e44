//! Harmonic/percussive separation by median filtering (Fitzgerald 2010), with
//! the semantics of `librosa.effects.hpss` / `librosa.decompose.hpss`: magnitude
//! median filters across time (harmonic) and frequency (percussive) with scipy's
//! `reflect` edges, soft masks `softmask(H, margin·P, power)`, and the librosa
//! STFT convention.

use super::{MedianScratch, analyse, masked, median_filter_1d, softmask, synthesise};
use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stage, Stems, check_stream_rate};
use crate::stft::{Spectrogram, Stft, StftConfig};
use crate::stream::{Local, Reach, StemStream, StreamSpec, Windowed};

/// Parameters of [`Hpss`]; defaults are librosa's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpssConfig {
    pub n_fft: usize,
    pub hop_length: usize,
    /// Median filter length across time, in frames (librosa `kernel_size[0]`).
    pub kernel_harmonic: usize,
    /// Median filter length across frequency, in bins (librosa `kernel_size[1]`).
    pub kernel_percussive: usize,
    /// Soft-mask exponent; `inf` gives binary masks.
    pub power: f32,
    /// Separation margins (≥ 1). Above 1, what neither component claims goes to
    /// a third stem, `residual`.
    pub margin_harmonic: f32,
    pub margin_percussive: f32,
}

impl Default for HpssConfig {
    fn default() -> Self {
        Self {
            n_fft: 2048,
            hop_length: 512,
            kernel_harmonic: 31,
            kernel_percussive: 31,
            power: 2.0,
            margin_harmonic: 1.0,
            margin_percussive: 1.0,
        }
    }
}

/// The `hpss` built-in: stems `harmonic`, `percussive` (and `residual` when a margin exceeds 1).
pub struct Hpss {
    pub(super) cfg: HpssConfig,
    stems: Vec<String>,
    stft: Stft,
}

impl Hpss {
    pub fn new(cfg: HpssConfig) -> Result<Self> {
        if cfg.kernel_harmonic == 0 || cfg.kernel_percussive == 0 {
            return Err(Error::invalid("kernel", "at least 1", 0));
        }
        if !(cfg.margin_harmonic >= 1.0 && cfg.margin_percussive >= 1.0) {
            return Err(Error::invalid("margin", "≥ 1", format!("{}/{}", cfg.margin_harmonic, cfg.margin_percussive)));
        }
        if !(cfg.power > 0.0) {
            return Err(Error::invalid("power", "> 0", cfg.power));
        }
        let stft = Stft::new(StftConfig::librosa(cfg.n_fft, cfg.hop_length))?;
        let mut stems = vec!["harmonic".to_string(), "percussive".to_string()];
        if cfg.margin_harmonic > 1.0 || cfg.margin_percussive > 1.0 {
            stems.push("residual".into());
        }
        Ok(Self { cfg, stems, stft })
    }

    /// Harmonic and percussive masks of one spectrogram, frame-major like it.
    pub fn masks(&self, spec: &Spectrogram) -> (Vec<f32>, Vec<f32>) {
        let mag: Vec<f32> = spec.data.iter().map(|c| c.norm()).collect();
        hpss_masks(&mag, spec.bins, spec.frames, &self.cfg)
    }
}

/// Harmonic and percussive soft masks of a frame-major magnitude spectrogram.
pub(crate) fn hpss_masks(mag: &[f32], bins: usize, frames: usize, cfg: &HpssConfig) -> (Vec<f32>, Vec<f32>) {
    let mut harm = vec![0.0f32; mag.len()];
    let mut perc = vec![0.0f32; mag.len()];
    let mut scratch = MedianScratch::default();
    // Filter along time on a bin-major copy: contiguous reads instead of a
    // stride of `bins` for every sample.
    let mut row = vec![0.0f32; frames];
    let mut line = vec![0.0f32; frames];
    for f in 0..bins {
        row.iter_mut().enumerate().for_each(|(t, r)| *r = mag[t * bins + f]);
        median_filter_1d(&row, cfg.kernel_harmonic, &mut line, &mut scratch);
        for t in 0..frames {
            harm[t * bins + f] = line[t];
        }
    }
    for t in 0..frames {
        let r = &mag[t * bins..(t + 1) * bins];
        median_filter_1d(r, cfg.kernel_percussive, &mut perc[t * bins..(t + 1) * bins], &mut scratch);
    }
    let mask_h = harm.iter().zip(&perc).map(|(&h, &q)| mask_pair(h, q, cfg).0).collect();
    let mask_p = harm.iter().zip(&perc).map(|(&h, &q)| mask_pair(h, q, cfg).1).collect();
    (mask_h, mask_p)
}

/// Harmonic and percussive soft masks of one bin from its harmonic (`h`, median
/// across time) and percussive (`q`, median across frequency) magnitudes.
#[inline]
pub(crate) fn mask_pair(h: f32, q: f32, cfg: &HpssConfig) -> (f32, f32) {
    let (mh, mp, p) = (cfg.margin_harmonic, cfg.margin_percussive, cfg.power);
    let split = mh == 1.0 && mp == 1.0;
    (softmask(h, q * mh, p, split), softmask(q, h * mp, p, split))
}

impl Local for Hpss {
    fn reach(&self, _sample_rate: u32) -> Reach {
        let hop = self.cfg.hop_length;
        Reach { context: self.cfg.n_fft + (self.cfg.kernel_harmonic / 2 + 1) * hop, align: hop, core: 0 }
    }
}

impl Separator for Hpss {
    fn stream<'s>(&'s mut self, spec: StreamSpec, opts: SeparateOptions<'s>) -> Result<Box<dyn StemStream + 's>> {
        check_stream_rate(None, &spec)?;
        Ok(Windowed::boxed(self, spec, opts))
    }
    fn name(&self) -> &str {
        "builtin:hpss"
    }
    fn stems(&self) -> &[String] {
        &self.stems
    }
    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        let mix = analyse(&mut self.stft, audio, opts)?;
        let mut harmonic = Vec::with_capacity(mix.len());
        let mut percussive = Vec::with_capacity(mix.len());
        for (i, s) in mix.iter().enumerate() {
            opts.check_cancel()?;
            let (mh, mp) = self.masks(s);
            harmonic.push(masked(s, &mh));
            percussive.push(masked(s, &mp));
            opts.report(Stage::Separate, i as u64 + 1, mix.len() as u64);
        }
        if self.stems.len() == 3 {
            let parts = vec![("harmonic".into(), harmonic), ("percussive".into(), percussive)];
            synthesise(&mut self.stft, audio, &mix, parts, "residual", opts)
        } else {
            synthesise(&mut self.stft, audio, &mix, vec![("harmonic".into(), harmonic)], "percussive", opts)
        }
    }
}
