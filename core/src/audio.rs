//! Planar `f32` audio with an explicit spec, and the channel policy.
//!
//! # Channel policy
//! Separators declare how many channels they work on. [`AudioBuffer::to_channels`]
//! adapts any input to that count:
//! - **mono → stereo**: the channel is duplicated (as demucs does);
//! - **stereo → mono**: the mean of both channels;
//! - **more than two channels → stereo**: ITU-R BS.775 downmix for the usual
//!   layouts, in WAV/FFmpeg channel order: 3 = L R C, 4 = L R Ls Rs, 5 = L R C Ls Rs,
//!   6 = L R C LFE Ls Rs, 7 = L R C LFE Bc Ls Rs, 8 = L R C LFE Lb Rb Ls Rs.
//!   Centre and surrounds enter with gain 1/√2, the LFE is dropped, and each output
//!   is divided by the sum of its gains so a full-scale input cannot clip. Any
//!   other count folds even-indexed channels to the left, odd-indexed to the right,
//!   averaged.
//! - **more than two channels → mono**: downmix to stereo as above, then average.

use crate::error::{Error, Result};

/// Lowest sample rate splitsound accepts, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate splitsound accepts, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Sample rate and channel count of a buffer or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AudioSpec {
    pub sample_rate: u32,
    pub channels: usize,
}

/// Checks that `rate` lies in the supported 8–192 kHz range.
pub fn check_sample_rate(rate: u32) -> Result<()> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(Error::UnsupportedSampleRate { rate, min: MIN_SAMPLE_RATE, max: MAX_SAMPLE_RATE })
    }
}

/// Planar audio: one `Vec<f32>` per channel, all of equal length, at one sample rate.
///
/// Samples are nominally in `[-1, 1]`; values outside are kept (no implicit clipping).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBuffer {
    sample_rate: u32,
    channels: Vec<Vec<f32>>,
}

impl AudioBuffer {
    /// Wraps planar channels. Fails on zero channels, unequal lengths, or a rate
    /// outside 8–192 kHz.
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Result<Self> {
        check_sample_rate(sample_rate)?;
        if channels.is_empty() {
            return Err(Error::InvalidChannels { detail: "zero channels".into() });
        }
        let n = channels[0].len();
        if let Some((i, c)) = channels.iter().enumerate().find(|(_, c)| c.len() != n) {
            return Err(Error::InvalidChannels {
                detail: format!("channel 0 has {n} frames but channel {i} has {}", c.len()),
            });
        }
        Ok(Self { sample_rate, channels })
    }

    /// A buffer of silence.
    pub fn silence(sample_rate: u32, channels: usize, frames: usize) -> Result<Self> {
        if channels == 0 {
            return Err(Error::InvalidChannels { detail: "zero channels".into() });
        }
        Self::new(sample_rate, vec![vec![0.0; frames]; channels])
    }

    /// Builds a buffer from interleaved samples (`L R L R …`).
    pub fn from_interleaved(samples: &[f32], channels: usize, sample_rate: u32) -> Result<Self> {
        if channels == 0 {
            return Err(Error::InvalidChannels { detail: "zero channels".into() });
        }
        if !samples.len().is_multiple_of(channels) {
            return Err(Error::invalid(
                "samples",
                format!("a multiple of {channels} interleaved samples"),
                samples.len(),
            ));
        }
        Self::new(sample_rate, deinterleave(samples, channels))
    }

    /// Interleaved copy of the samples (`L R L R …`).
    pub fn to_interleaved(&self) -> Vec<f32> {
        interleave(&self.channels)
    }

    pub fn spec(&self) -> AudioSpec {
        AudioSpec { sample_rate: self.sample_rate, channels: self.channels.len() }
    }
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels[0].len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames() == 0
    }
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }
    pub fn channel(&self, i: usize) -> &[f32] {
        &self.channels[i]
    }
    pub fn channels(&self) -> &[Vec<f32>] {
        &self.channels
    }
    /// The samples as a planar block, `&[&[f32]]`, the type every block-taking
    /// call accepts ([`crate::stream::StemStream::process`], [`crate::StemWriter::write`], …).
    pub fn planar(&self) -> Vec<&[f32]> {
        self.channels.iter().map(Vec::as_slice).collect()
    }
    /// Mutable access to the samples; the channel count and lengths cannot change.
    pub fn channels_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        self.channels.iter_mut().map(|c| c.as_mut_slice())
    }
    pub fn into_channels(self) -> Vec<Vec<f32>> {
        self.channels
    }
    /// Appends `other`'s frames; it must have this buffer's rate and channels.
    pub fn append(&mut self, other: &AudioBuffer) -> Result<()> {
        if other.spec() != self.spec() {
            return Err(Error::InvalidChannels {
                detail: format!("appending {:?} to a buffer of {:?}", other.spec(), self.spec()),
            });
        }
        self.channels.iter_mut().zip(&other.channels).for_each(|(c, o)| c.extend_from_slice(o));
        Ok(())
    }

    /// Fails with [`Error::NonFinite`] at the first NaN or infinite sample.
    pub fn check_finite(&self) -> Result<()> {
        for (ch, c) in self.channels.iter().enumerate() {
            if let Some(frame) = c.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFinite { channel: ch, frame, value: c[frame] });
            }
        }
        Ok(())
    }

    /// Largest absolute sample value.
    pub fn peak(&self) -> f32 {
        self.channels.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()))
    }

    /// Adapts the buffer to `target` channels following the module's channel policy.
    pub fn to_channels(&self, target: usize) -> Result<AudioBuffer> {
        let n = self.channels.len();
        let channels = match (n, target) {
            (_, 0) => return Err(Error::invalid("channels", "at least 1", 0)),
            (a, b) if a == b => self.channels.clone(),
            (1, t) => vec![self.channels[0].clone(); t],
            (_, 1) => {
                let stereo = if n == 2 { self.channels.clone() } else { downmix_to_stereo(&self.channels) };
                vec![stereo[0].iter().zip(&stereo[1]).map(|(l, r)| 0.5 * (l + r)).collect()]
            }
            (_, 2) => downmix_to_stereo(&self.channels),
            (a, b) => {
                return Err(Error::InvalidChannels { detail: format!("no policy to convert {a} channels to {b}") });
            }
        };
        AudioBuffer::new(self.sample_rate, channels)
    }

    /// Sum of several buffers of the same spec and length.
    pub fn sum<'a>(buffers: impl IntoIterator<Item = &'a AudioBuffer>) -> Result<AudioBuffer> {
        let mut it = buffers.into_iter();
        let first = it.next().ok_or_else(|| Error::invalid("buffers", "at least one", 0))?;
        let mut out = first.clone();
        for b in it {
            if b.spec() != out.spec() || b.frames() != out.frames() {
                return Err(Error::InvalidChannels {
                    detail: format!(
                        "cannot add {}ch/{}Hz/{} frames to {}ch/{}Hz/{} frames",
                        b.num_channels(),
                        b.sample_rate,
                        b.frames(),
                        out.num_channels(),
                        out.sample_rate,
                        out.frames()
                    ),
                });
            }
            for (o, i) in out.channels.iter_mut().zip(&b.channels) {
                o.iter_mut().zip(i).for_each(|(o, i)| *o += i);
            }
        }
        Ok(out)
    }
}

/// Interleaves planar channels of equal length.
pub fn interleave(channels: &[Vec<f32>]) -> Vec<f32> {
    let n = channels.first().map_or(0, |c| c.len());
    let mut out = vec![0.0; n * channels.len()];
    interleave_into(channels, &mut out);
    out
}

/// [`interleave`] into `out`, which holds at least frames × channels samples
/// (a caller's buffer: no allocation).
pub fn interleave_into(channels: &[Vec<f32>], out: &mut [f32]) {
    let k = channels.len();
    for (c, ch) in channels.iter().enumerate() {
        for (f, &x) in ch.iter().enumerate() {
            out[f * k + c] = x;
        }
    }
}

/// Splits interleaved samples into `channels` planar vectors. Trailing samples
/// that do not fill a frame are dropped.
pub fn deinterleave(samples: &[f32], channels: usize) -> Vec<Vec<f32>> {
    let frames = samples.len() / channels.max(1);
    let mut out = vec![Vec::with_capacity(frames); channels];
    for frame in samples.chunks_exact(channels) {
        for (c, &s) in out.iter_mut().zip(frame) {
            c.push(s);
        }
    }
    out
}

const G: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Per input channel: (gain to left, gain to right), for the layouts of the module doc.
fn downmix_gains(n: usize) -> Vec<(f32, f32)> {
    match n {
        3 => vec![(1.0, 0.0), (0.0, 1.0), (G, G)],
        4 => vec![(1.0, 0.0), (0.0, 1.0), (G, 0.0), (0.0, G)],
        5 => vec![(1.0, 0.0), (0.0, 1.0), (G, G), (G, 0.0), (0.0, G)],
        6 => vec![(1.0, 0.0), (0.0, 1.0), (G, G), (0.0, 0.0), (G, 0.0), (0.0, G)],
        7 => vec![(1.0, 0.0), (0.0, 1.0), (G, G), (0.0, 0.0), (0.5, 0.5), (G, 0.0), (0.0, G)],
        8 => vec![(1.0, 0.0), (0.0, 1.0), (G, G), (0.0, 0.0), (G, 0.0), (0.0, G), (G, 0.0), (0.0, G)],
        _ => (0..n).map(|i| if i % 2 == 0 { (1.0, 0.0) } else { (0.0, 1.0) }).collect(),
    }
}

fn downmix_to_stereo(channels: &[Vec<f32>]) -> Vec<Vec<f32>> {
    match channels.len() {
        1 => vec![channels[0].clone(), channels[0].clone()],
        2 => channels.to_vec(),
        n => {
            let gains = downmix_gains(n);
            let (sl, sr) = gains.iter().fold((0.0, 0.0), |(a, b), (l, r)| (a + l, b + r));
            let frames = channels[0].len();
            let mut left = vec![0.0f32; frames];
            let mut right = vec![0.0f32; frames];
            for (c, &(gl, gr)) in channels.iter().zip(&gains) {
                let (gl, gr) = (gl / sl, gr / sr);
                for i in 0..frames {
                    left[i] += gl * c[i];
                    right[i] += gr * c[i];
                }
            }
            vec![left, right]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_roundtrip() {
        for ch in 1..=8 {
            let frames = 37;
            let planar: Vec<Vec<f32>> = (0..ch).map(|c| (0..frames).map(|i| (c * 1000 + i) as f32).collect()).collect();
            let inter = interleave(&planar);
            assert_eq!(inter.len(), ch * frames);
            assert_eq!(inter[ch], planar[0][1]);
            assert_eq!(deinterleave(&inter, ch), planar);
        }
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(matches!(AudioBuffer::new(44100, vec![]), Err(Error::InvalidChannels { .. })));
        assert!(matches!(
            AudioBuffer::new(44100, vec![vec![0.0; 3], vec![0.0; 4]]),
            Err(Error::InvalidChannels { .. })
        ));
        assert!(matches!(
            AudioBuffer::new(4000, vec![vec![0.0; 3]]),
            Err(Error::UnsupportedSampleRate { rate: 4000, .. })
        ));
        assert!(AudioBuffer::from_interleaved(&[0.0; 5], 2, 44100).is_err());
    }

    #[test]
    fn channel_policy() {
        let mono = AudioBuffer::new(44100, vec![vec![0.5, -0.25]]).unwrap();
        let st = mono.to_channels(2).unwrap();
        assert_eq!(st.channels(), &[vec![0.5, -0.25], vec![0.5, -0.25]]);
        assert_eq!(st.to_channels(1).unwrap(), mono);
        // 5.1 full-scale in every channel stays within [-1, 1] and keeps L/R balance.
        let six = AudioBuffer::new(48000, vec![vec![1.0; 4]; 6]).unwrap();
        let down = six.to_channels(2).unwrap();
        assert!(down.peak() <= 1.0 + 1e-6, "peak {}", down.peak());
        assert!((down.channel(0)[0] - down.channel(1)[0]).abs() < 1e-6);
        // LFE (index 3) is dropped.
        let mut lfe = vec![vec![0.0; 4]; 6];
        lfe[3] = vec![1.0; 4];
        let down = AudioBuffer::new(48000, lfe).unwrap().to_channels(2).unwrap();
        assert_eq!(down.peak(), 0.0);
    }

    #[test]
    fn finite_check_points_at_sample() {
        let b = AudioBuffer::new(44100, vec![vec![0.0, 1.0], vec![0.0, f32::NAN]]).unwrap();
        match b.check_finite() {
            Err(Error::NonFinite { channel: 1, frame: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
