//! Short-time Fourier transform and its inverse (realfft), with conventions that
//! reproduce `torch.stft`/`torch.istft` and `librosa.stft`/`librosa.istft`.
//!
//! | convention | `center` | padding | window | `normalized` |
//! |---|---|---|---|---|
//! | [`StftConfig::torch`] | yes | reflect | periodic Hann | no (set it for demucs) |
//! | [`StftConfig::librosa`] | yes | zeros (`pad_mode="constant"`) | periodic Hann | no |
//!
//! Output is one-sided (`n_fft / 2 + 1` bins). The inverse divides by the
//! overlap-added squared window, so `inverse(forward(x))` reconstructs `x` for any
//! window satisfying NOLA (non-zero overlap-add), as torch and librosa do. Plans
//! and scratch buffers live in [`Stft`] and are reused across calls.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::error::{Error, Result};

/// How the signal is extended at both ends when `center` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Mirror without repeating the edge sample (`torch`'s and numpy's `reflect`).
    Reflect,
    /// Zeros.
    Constant,
}

/// Analysis/synthesis window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Periodic Hann (`torch.hann_window(n)`, `scipy.signal.get_window("hann", n)`).
    Hann,
    /// Symmetric Hann (`torch.hann_window(n, periodic=False)`).
    HannSymmetric,
    /// All ones.
    Rectangular,
}

impl std::str::FromStr for PadMode {
    type Err = Error;
    /// `reflect` or `constant`.
    fn from_str(s: &str) -> Result<Self> {
        Error::parse_name("pad_mode", s, &[("reflect", PadMode::Reflect), ("constant", PadMode::Constant)])
    }
}

impl std::str::FromStr for WindowKind {
    type Err = Error;
    /// `hann`, `hann_symmetric`, or `rectangular` (also `boxcar`, `ones`).
    fn from_str(s: &str) -> Result<Self> {
        Error::parse_name(
            "window",
            s,
            &[
                ("hann", WindowKind::Hann),
                ("hann_symmetric", WindowKind::HannSymmetric),
                ("rectangular", WindowKind::Rectangular),
                ("boxcar", WindowKind::Rectangular),
                ("ones", WindowKind::Rectangular),
            ],
        )
    }
}

/// Parameters of an STFT.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StftConfig {
    pub n_fft: usize,
    pub hop_length: usize,
    /// Window length, at most `n_fft`; the window is zero-padded to `n_fft`,
    /// centred, as torch does. `None` means `n_fft`.
    #[serde(default)]
    pub win_length: Option<usize>,
    pub window: WindowKind,
    /// Pad `n_fft / 2` at both ends so frame `t` is centred on sample `t · hop`.
    pub center: bool,
    pub pad_mode: PadMode,
    /// Scale the forward transform by `1/√n_fft` (and the inverse by `√n_fft`).
    pub normalized: bool,
}

impl StftConfig {
    /// `torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
    /// pad_mode="reflect", normalized=False, onesided=True, return_complex=True)`.
    pub fn torch(n_fft: usize, hop_length: usize) -> Self {
        Self {
            n_fft,
            hop_length,
            win_length: None,
            window: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Reflect,
            normalized: false,
        }
    }

    /// `librosa.stft(y, n_fft=n_fft, hop_length=hop)` with librosa ≥ 0.10 defaults
    /// (periodic Hann, `center=True`, `pad_mode="constant"`).
    pub fn librosa(n_fft: usize, hop_length: usize) -> Self {
        Self { pad_mode: PadMode::Constant, ..Self::torch(n_fft, hop_length) }
    }

    pub fn with_normalized(mut self, normalized: bool) -> Self {
        self.normalized = normalized;
        self
    }

    /// Number of one-sided frequency bins.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames for a signal of `len` samples.
    pub fn num_frames(&self, len: usize) -> usize {
        if self.center {
            1 + len / self.hop_length
        } else if len < self.n_fft {
            0
        } else {
            1 + (len - self.n_fft) / self.hop_length
        }
    }

    fn validate(&self) -> Result<()> {
        if self.n_fft < 2 || !self.n_fft.is_multiple_of(2) {
            return Err(Error::invalid("n_fft", "an even number ≥ 2", self.n_fft));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return Err(Error::invalid("hop_length", format!("1..={}", self.n_fft), self.hop_length));
        }
        if let Some(w) = self.win_length
            && (w == 0 || w > self.n_fft)
        {
            return Err(Error::invalid("win_length", format!("1..={}", self.n_fft), w));
        }
        Ok(())
    }

    /// The window, zero-padded and centred to `n_fft` samples.
    pub fn window_samples(&self) -> Vec<f32> {
        let wl = self.win_length.unwrap_or(self.n_fft);
        let core: Vec<f64> = match self.window {
            WindowKind::Hann => {
                (0..wl).map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / wl as f64).cos()).collect()
            }
            WindowKind::HannSymmetric if wl == 1 => vec![1.0],
            WindowKind::HannSymmetric => {
                (0..wl).map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (wl - 1) as f64).cos()).collect()
            }
            WindowKind::Rectangular => vec![1.0; wl],
        };
        let mut w = vec![0.0f32; self.n_fft];
        let left = (self.n_fft - wl) / 2;
        for (d, s) in w[left..left + wl].iter_mut().zip(core) {
            *d = s as f32;
        }
        w
    }
}

/// A one-sided complex spectrogram of one channel, stored frame by frame:
/// element `(bin, frame)` is at `data[frame * bins + bin]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spectrogram {
    pub bins: usize,
    pub frames: usize,
    pub data: Vec<Complex32>,
}

impl Spectrogram {
    pub fn zeros(bins: usize, frames: usize) -> Self {
        Self { bins, frames, data: vec![Complex32::new(0.0, 0.0); bins * frames] }
    }
    pub fn get(&self, bin: usize, frame: usize) -> Complex32 {
        self.data[frame * self.bins + bin]
    }
    pub fn frame(&self, t: usize) -> &[Complex32] {
        &self.data[t * self.bins..(t + 1) * self.bins]
    }
    pub fn frame_mut(&mut self, t: usize) -> &mut [Complex32] {
        &mut self.data[t * self.bins..(t + 1) * self.bins]
    }
}

/// A planned STFT: forward and inverse transforms with reusable scratch.
pub struct Stft {
    cfg: StftConfig,
    window: Vec<f32>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
    time: Vec<f32>,
    freq: Vec<Complex32>,
    scratch: Vec<Complex32>,
    padded: Vec<f32>,
    /// Synthesis window: the window times the inverse FFT's scale.
    synthesis: Vec<f32>,
    /// `1 / Σ w²` of the overlap-added window for `envelope_frames` frames (0 where
    /// the sum vanishes); depends only on the frame count, so it is reused.
    inv_envelope: Vec<f32>,
    envelope_frames: Option<usize>,
}

impl Stft {
    pub fn new(cfg: StftConfig) -> Result<Self> {
        cfg.validate()?;
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(cfg.n_fft);
        let inv = planner.plan_fft_inverse(cfg.n_fft);
        let scratch_len = fwd.get_scratch_len().max(inv.get_scratch_len());
        let window = cfg.window_samples();
        let scale = if cfg.normalized { (cfg.n_fft as f32).sqrt() } else { 1.0 } / cfg.n_fft as f32;
        Ok(Self {
            synthesis: window.iter().map(|w| w * scale).collect(),
            inv_envelope: Vec::new(),
            envelope_frames: None,
            window,
            time: fwd.make_input_vec(),
            freq: fwd.make_output_vec(),
            scratch: vec![Complex32::new(0.0, 0.0); scratch_len],
            fwd,
            inv,
            cfg,
            padded: Vec::new(),
        })
    }

    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// Forward transform of one channel.
    pub fn forward(&mut self, x: &[f32]) -> Result<Spectrogram> {
        let mut s = Spectrogram::default();
        self.forward_into(x, &mut s)?;
        Ok(s)
    }

    /// Forward transform into an existing spectrogram (resized as needed).
    pub fn forward_into(&mut self, x: &[f32], out: &mut Spectrogram) -> Result<()> {
        let c = self.cfg;
        let half = c.n_fft / 2;
        if c.center && c.pad_mode == PadMode::Reflect && x.len() <= half {
            return Err(Error::invalid(
                "signal",
                format!("more than n_fft/2 = {half} samples for reflect padding"),
                format!("{} samples", x.len()),
            ));
        }
        if !c.center && x.len() < c.n_fft {
            return Err(Error::invalid("signal", format!("at least n_fft = {} samples", c.n_fft), x.len()));
        }
        let frames = c.num_frames(x.len());
        let bins = c.bins();
        out.bins = bins;
        out.frames = frames;
        // Filled frame by frame below; no zeroing pass over the whole buffer.
        out.data.clear();
        out.data.reserve_exact(bins * frames);

        let signal: &[f32] = if c.center {
            self.padded.clear();
            self.padded.reserve(x.len() + 2 * half);
            match c.pad_mode {
                PadMode::Reflect => {
                    self.padded.extend((1..=half).rev().map(|i| x[i]));
                    self.padded.extend_from_slice(x);
                    let n = x.len();
                    self.padded.extend((1..=half).map(|i| x[n - 1 - i]));
                }
                PadMode::Constant => {
                    self.padded.resize(half, 0.0);
                    self.padded.extend_from_slice(x);
                    self.padded.resize(x.len() + 2 * half, 0.0);
                }
            }
            &self.padded
        } else {
            x
        };
        let scale = if c.normalized { 1.0 / (c.n_fft as f32).sqrt() } else { 1.0 };
        for t in 0..frames {
            let seg = &signal[t * c.hop_length..t * c.hop_length + c.n_fft];
            for ((d, s), w) in self.time.iter_mut().zip(seg).zip(&self.window) {
                *d = s * w;
            }
            self.fwd
                .process_with_scratch(&mut self.time, &mut self.freq, &mut self.scratch)
                .map_err(|e| Error::invalid("fft", "valid buffers", e))?;
            if scale == 1.0 {
                out.data.extend_from_slice(&self.freq);
            } else {
                out.data.extend(self.freq.iter().map(|d| d * scale));
            }
        }
        Ok(())
    }

    /// Inverse transform. With `length`, the output is cut or zero-padded to it
    /// (as `torch.istft(length=…)`); without, it is `hop · (frames − 1)` samples
    /// when centred, `n_fft + hop · (frames − 1)` otherwise.
    pub fn inverse(&mut self, spec: &Spectrogram, length: Option<usize>) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.inverse_into(spec, length, &mut out)?;
        Ok(out)
    }

    /// Inverse transform into `out` (cleared and resized).
    pub fn inverse_into(&mut self, spec: &Spectrogram, length: Option<usize>, out: &mut Vec<f32>) -> Result<()> {
        let c = self.cfg;
        if spec.bins != c.bins() {
            return Err(Error::invalid("spectrogram bins", format!("{} (n_fft/2+1)", c.bins()), spec.bins));
        }
        let frames = spec.frames;
        let full = if frames == 0 { 0 } else { c.n_fft + c.hop_length * (frames - 1) };
        // Overlap-add straight into `out`, then normalise and cut to the centred range.
        out.clear();
        out.resize(full, 0.0);
        if self.envelope_frames != Some(frames) {
            let mut env = vec![0.0f32; full];
            for t in 0..frames {
                let off = t * c.hop_length;
                env[off..off + c.n_fft].iter_mut().zip(&self.window).for_each(|(e, w)| *e += w * w);
            }
            self.inv_envelope = env.into_iter().map(|e| if e > 1e-11 { 1.0 / e } else { 0.0 }).collect();
            self.envelope_frames = Some(frames);
        }
        for t in 0..frames {
            self.freq.copy_from_slice(spec.frame(t));
            // Like torch.fft.irfft, ignore the imaginary parts of DC and Nyquist.
            self.freq[0].im = 0.0;
            let last = self.freq.len() - 1;
            self.freq[last].im = 0.0;
            self.inv
                .process_with_scratch(&mut self.freq, &mut self.time, &mut self.scratch)
                .map_err(|e| Error::invalid("ifft", "valid buffers", e))?;
            let off = t * c.hop_length;
            for (o, (x, w)) in out[off..off + c.n_fft].iter_mut().zip(self.time.iter().zip(&self.synthesis)) {
                *o += x * w;
            }
        }
        let start = if c.center { c.n_fft / 2 } else { 0 };
        let natural_end = if c.center { full.saturating_sub(c.n_fft / 2) } else { full };
        let len = length.unwrap_or(natural_end.saturating_sub(start));
        out.iter_mut().zip(&self.inv_envelope).for_each(|(o, e)| *o *= e);
        out.drain(..start.min(full));
        out.resize(len, 0.0);
        Ok(())
    }
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn round_trip_matrix() {
        for &(n_fft, hop) in &[(2048, 512), (4096, 1024), (512, 128), (256, 64), (64, 16)] {
            for cfg in [
                StftConfig::torch(n_fft, hop),
                StftConfig::librosa(n_fft, hop),
                StftConfig::torch(n_fft, hop).with_normalized(true),
            ] {
                for len in [n_fft + 1, 3 * n_fft + 7, 10_000] {
                    let x = noise(len, len as u64);
                    let mut s = Stft::new(cfg).unwrap();
                    let spec = s.forward(&x).unwrap();
                    assert_eq!(spec.frames, 1 + len / hop);
                    let y = s.inverse(&spec, Some(len)).unwrap();
                    let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                    assert!(err <= 1e-6, "{cfg:?} len {len}: max error {err}");
                }
            }
        }
    }

    #[test]
    fn rejects_bad_configs_and_short_signals() {
        assert!(Stft::new(StftConfig::torch(1023, 256)).is_err());
        assert!(Stft::new(StftConfig::torch(1024, 0)).is_err());
        assert!(Stft::new(StftConfig::torch(1024, 2048)).is_err());
        let mut s = Stft::new(StftConfig::torch(1024, 256)).unwrap();
        assert!(s.forward(&[0.0; 512]).is_err());
        let mut s = Stft::new(StftConfig::librosa(1024, 256)).unwrap();
        assert_eq!(s.forward(&[0.0; 10]).unwrap().frames, 1);
    }

    #[test]
    fn parseval_of_a_single_frame() {
        // A DC signal under a periodic Hann window: bin 0 = sum of the window = n/2.
        let cfg = StftConfig { center: false, ..StftConfig::torch(64, 16) };
        let mut s = Stft::new(cfg).unwrap();
        let spec = s.forward(&[1.0; 64]).unwrap();
        assert_eq!(spec.frames, 1);
        assert!((spec.get(0, 0).re - 32.0).abs() < 1e-4);
        assert!(spec.get(2, 0).norm() < 1e-4);
    }
}
