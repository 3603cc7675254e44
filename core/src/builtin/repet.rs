//! Foreground/background separation by repetition (REPET-SIM, Rafii & Pardo 2012).
//!
//! Repeating background (accompaniment, room tone, loops) looks alike in many
//! frames; a foreground (a voice) does not. For each frame we find its `k` most
//! similar frames (cosine similarity of band-pooled magnitude spectra, at least
//! `min_lag_secs` and at most `max_lag_secs` away, as `librosa.decompose.nn_filter`
//! with a width) and take their per-bin median as the background magnitude `W`,
//! capped by the mixture's `S`. The foreground mask is
//! `softmask(S − W, margin · W, power)`; `background = X − foreground`.
//!
//! The search window bounds the work per frame, so cost grows linearly with length.

use super::{analyse, check_len, masked, softmask, synthesise};
use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use std::ops::Range;

use crate::separator::{SeparateOptions, Separator, Stage, Stems, check_stream_rate};
use crate::stft::{Spectrogram, Stft, StftConfig};
use crate::stream::{Local, Reach, StemStream, StreamSpec, Windowed};

/// Parameters of [`Repet`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepetConfig {
    pub n_fft: usize,
    pub hop_length: usize,
    /// Neighbours whose median forms the background.
    pub neighbours: usize,
    /// Frames closer than this are not neighbours (librosa's `width`).
    pub min_lag_secs: f32,
    /// Frames farther than this are not searched.
    pub max_lag_secs: f32,
    /// Bands the spectrum is pooled into for the similarity.
    pub bands: usize,
    /// How much stronger than the background the foreground must be.
    pub margin: f32,
    pub power: f32,
}

impl Default for RepetConfig {
    fn default() -> Self {
        Self {
            n_fft: 2048,
            hop_length: 512,
            neighbours: 10,
            min_lag_secs: 2.0,
            max_lag_secs: 20.0,
            bands: 96,
            margin: 2.0,
            power: 2.0,
        }
    }
}

/// The `repet` built-in: stems `foreground`, `background`. Any channel count.
pub struct Repet {
    pub(super) cfg: RepetConfig,
    stems: Vec<String>,
    stft: Stft,
}

impl Repet {
    pub fn new(cfg: RepetConfig) -> Result<Self> {
        if cfg.neighbours == 0 {
            return Err(Error::invalid("neighbours", "at least 1", 0));
        }
        if cfg.bands == 0 {
            return Err(Error::invalid("bands", "at least 1", 0));
        }
        if !(cfg.min_lag_secs >= 0.0 && cfg.max_lag_secs > cfg.min_lag_secs) {
            return Err(Error::invalid(
                "min_lag_secs/max_lag_secs",
                "0 ≤ min < max",
                format!("{}/{}", cfg.min_lag_secs, cfg.max_lag_secs),
            ));
        }
        if !(cfg.margin > 0.0 && cfg.power > 0.0) {
            return Err(Error::invalid("margin/power", "> 0", format!("{}/{}", cfg.margin, cfg.power)));
        }
        let stft = Stft::new(StftConfig::librosa(cfg.n_fft, cfg.hop_length))?;
        Ok(Self { cfg, stems: vec!["foreground".into(), "background".into()], stft })
    }

    /// Unit-norm band-pooled features of the channel-averaged magnitude, frame-major.
    fn features(&self, mags: &[Vec<f32>], bins: usize, frames: usize) -> Vec<f32> {
        let d = self.cfg.bands.min(bins);
        // Log-spaced band edges over bins 1..bins, at least one bin each.
        let mut edges = Vec::with_capacity(d + 1);
        edges.push(1usize);
        for b in 1..=d {
            let e = (bins as f64).powf(b as f64 / d as f64).round() as usize;
            let prev = *edges.last().unwrap();
            edges.push(e.max(prev + 1).min(bins));
        }
        let mut feat = vec![0.0f32; frames * d];
        let inv_ch = 1.0 / mags.len() as f32;
        for t in 0..frames {
            let row = &mut feat[t * d..(t + 1) * d];
            for (b, w) in edges.windows(2).enumerate().take(d) {
                let s: f32 =
                    mags.iter().map(|m| m[t * bins + w[0]..t * bins + w[1].max(w[0])].iter().sum::<f32>()).sum();
                row[b] = (s * inv_ch).sqrt();
            }
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        feat
    }

    fn max_lag(&self, rate: u32) -> usize {
        let fps = rate as f32 / self.cfg.hop_length as f32;
        ((self.cfg.max_lag_secs * fps) as usize).max(1)
    }

    /// For each frame in `range`, the indices of its most similar frames in the
    /// lag window (frames outside `range` get none). `total_frames` is the whole
    /// input's frame count, which sets the exclusion zone of short inputs.
    #[allow(clippy::too_many_arguments)]
    fn neighbours(
        &self,
        feat: &[f32],
        d: usize,
        frames: usize,
        range: Range<usize>,
        total_frames: usize,
        rate: u32,
        opts: &SeparateOptions<'_>,
    ) -> Result<Vec<Vec<usize>>> {
        let fps = rate as f32 / self.cfg.hop_length as f32;
        let max_lag = self.max_lag(rate);
        // Short inputs: shrink the exclusion zone so there is something to compare.
        let min_lag = ((self.cfg.min_lag_secs * fps) as usize).min(total_frames / 4).max(1);
        let k = self.cfg.neighbours;
        let mut out = vec![Vec::new(); frames];
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for t in range.clone() {
            if t % 256 == 0 {
                opts.check_cancel()?;
                opts.report(Stage::Analyse, (t - range.start) as u64, range.len() as u64);
            }
            best.clear();
            let ft = &feat[t * d..(t + 1) * d];
            let lo = t.saturating_sub(max_lag);
            let hi = (t + max_lag).min(frames - 1);
            for j in lo..=hi {
                if t.abs_diff(j) < min_lag {
                    continue;
                }
                let fj = &feat[j * d..(j + 1) * d];
                let sim: f32 = ft.iter().zip(fj).map(|(a, b)| a * b).sum();
                if best.len() < k || sim > best[best.len() - 1].0 {
                    let pos = best.partition_point(|&(s, _)| s >= sim);
                    best.insert(pos, (sim, j));
                    best.truncate(k);
                }
            }
            out[t] = best.iter().map(|&(_, j)| j).collect();
        }
        Ok(out)
    }

    fn foreground_mask(&self, spec: &Spectrogram, mag: &[f32], nn: &[Vec<usize>]) -> Vec<f32> {
        let bins = spec.bins;
        let mut mask = vec![0.0f32; mag.len()];
        let mut vals = Vec::with_capacity(self.cfg.neighbours);
        for (t, js) in nn.iter().enumerate() {
            if js.is_empty() {
                continue;
            }
            for f in 0..bins {
                vals.clear();
                vals.extend(js.iter().map(|&j| mag[j * bins + f]));
                let mid = vals.len() / 2;
                let (_, m, _) = vals.select_nth_unstable_by(mid, f32::total_cmp);
                let s = mag[t * bins + f];
                let w = m.min(s);
                mask[t * bins + f] = softmask(s - w, self.cfg.margin * w, self.cfg.power, false);
            }
        }
        mask
    }
}

impl Local for Repet {
    fn reach(&self, sample_rate: u32) -> Reach {
        let hop = self.cfg.hop_length;
        Reach { context: self.cfg.n_fft + (self.max_lag(sample_rate) + 1) * hop, align: hop, core: 0 }
    }

    /// Searches neighbours only for the frames that reach `keep`.
    fn separate_window(
        &mut self,
        audio: &AudioBuffer,
        keep: Range<usize>,
        total: Option<usize>,
        opts: &SeparateOptions<'_>,
    ) -> Result<Stems> {
        check_len(audio, 0, "builtin:repet")?;
        let mix = analyse(&mut self.stft, audio, opts)?;
        let (bins, frames) = (mix[0].bins, mix[0].frames);
        let (hop, half) = (self.cfg.hop_length, self.cfg.n_fft / 2);
        let first = keep.start.saturating_sub(half) / hop;
        let last = ((keep.end + half) / hop + 1).min(frames);
        let total_frames = total.map_or(frames, |n| self.stft.config().num_frames(n));
        let mags: Vec<Vec<f32>> = mix.iter().map(|s| s.data.iter().map(|c| c.norm()).collect()).collect();
        let feat = self.features(&mags, bins, frames);
        let d = self.cfg.bands.min(bins);
        let nn = self.neighbours(&feat, d, frames, first..last, total_frames, audio.sample_rate(), opts)?;
        let mut fg = Vec::with_capacity(mix.len());
        for (i, (s, m)) in mix.iter().zip(&mags).enumerate() {
            opts.check_cancel()?;
            fg.push(masked(s, &self.foreground_mask(s, m, &nn)));
            opts.report(Stage::Separate, i as u64 + 1, mix.len() as u64);
        }
        synthesise(&mut self.stft, audio, &mix, vec![("foreground".into(), fg)], "background", opts)
    }
}

impl Separator for Repet {
    fn name(&self) -> &str {
        "builtin:repet"
    }
    fn stems(&self) -> &[String] {
        &self.stems
    }
    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        self.separate_window(audio, 0..audio.frames(), Some(audio.frames()), opts)
    }
    fn stream<'s>(&'s mut self, spec: StreamSpec, opts: SeparateOptions<'s>) -> Result<Box<dyn StemStream + 's>> {
        check_stream_rate(None, &spec)?;
        Ok(Windowed::boxed(self, spec, opts))
    }
}
