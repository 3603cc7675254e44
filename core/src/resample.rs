//! Sample-rate conversion (rubato's synchronous FFT resampler).
//!
//! Both entry points give the same samples: [`resample`] is [`StreamResampler`]
//! fed once. The output has exactly `round(n · out_rate / in_rate)` frames and no
//! time shift: the resampler's internal delay is trimmed from the start and the
//! tail is flushed at [`StreamResampler::finish`].

use audioadapter_buffers::direct::{SequentialSliceOfSlices, SequentialSliceOfVecs};
use rubato::audioadapter::Adapter;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use crate::audio::{AudioBuffer, check_sample_rate};
use crate::error::{Error, Result};

/// Target FFT block length in input frames. Longer blocks put the anti-aliasing
/// cutoff closer to Nyquist at the cost of latency (irrelevant offline).
const CHUNK: usize = 1024;

/// A chunk of whole FFT blocks whose sides are both even, so the resampler's
/// delay (half a block on each side) is a whole number of frames and trimming
/// it leaves no fractional time shift.
fn chunk_size(in_rate: u32, out_rate: u32) -> usize {
    let (a, b) = (in_rate as usize, out_rate as usize);
    let g = gcd(a, b);
    let (min_in, min_out) = (a / g, b / g);
    let mut blocks = CHUNK.div_ceil(min_in);
    if blocks % 2 == 1 && (min_out % 2 == 1 || min_in % 2 == 1) {
        blocks += 1;
    }
    blocks * min_in
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Resamples a whole buffer to `out_rate`.
pub fn resample(audio: &AudioBuffer, out_rate: u32) -> Result<AudioBuffer> {
    if out_rate == audio.sample_rate() {
        return Ok(audio.clone());
    }
    let mut r = StreamResampler::new(audio.sample_rate(), out_rate, audio.num_channels())?;
    let mut out = vec![Vec::with_capacity(r.expected_len(audio.frames() as u64) as usize); audio.num_channels()];
    r.process(&audio.planar(), &mut out)?;
    r.finish(&mut out)?;
    AudioBuffer::new(out_rate, out)
}

/// Number of frames `n` input frames become: `round(n · out / in)`.
pub fn resampled_len(n: u64, in_rate: u32, out_rate: u32) -> u64 {
    ((n as u128 * out_rate as u128 + in_rate as u128 / 2) / in_rate as u128) as u64
}

/// A resampler for audio that arrives in blocks of any size.
///
/// Output is appended to the caller's vectors; the concatenation of all outputs
/// equals [`resample`] of the concatenated input, bit for bit.
pub struct StreamResampler {
    inner: Option<Fft<f32>>,
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    /// Input not yet processed, fewer than one chunk after each `process`.
    fifo: Vec<Vec<f32>>,
    chunk_in: Vec<Vec<f32>>,
    chunk_out: Vec<Vec<f32>>,
    to_trim: usize,
    frames_in: u64,
    frames_out: u64,
    finished: bool,
}

impl StreamResampler {
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Result<Self> {
        check_sample_rate(in_rate)?;
        check_sample_rate(out_rate)?;
        if channels == 0 {
            return Err(Error::InvalidChannels { detail: "zero channels".into() });
        }
        let inner = if in_rate == out_rate {
            None
        } else {
            Some(
                Fft::<f32>::new_custom(
                    in_rate as usize,
                    out_rate as usize,
                    chunk_size(in_rate, out_rate),
                    1,
                    channels,
                    WindowFunction::BlackmanHarris2,
                    FixedSync::Both,
                )
                .map_err(|e| Error::Resample { detail: e.to_string() })?,
            )
        };
        let (max_in, max_out, delay) =
            inner.as_ref().map_or((0, 0, 0), |r| (r.input_frames_max(), r.output_frames_max(), r.output_delay()));
        Ok(Self {
            inner,
            in_rate,
            out_rate,
            channels,
            fifo: vec![Vec::new(); channels],
            chunk_in: vec![vec![0.0; max_in]; channels],
            chunk_out: vec![vec![0.0; max_out]; channels],
            to_trim: delay,
            frames_in: 0,
            frames_out: 0,
            finished: false,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.in_rate
    }
    pub fn output_rate(&self) -> u32 {
        self.out_rate
    }

    /// Output frames that `n` input frames produce in total.
    pub fn expected_len(&self, n: u64) -> u64 {
        resampled_len(n, self.in_rate, self.out_rate)
    }

    /// Feeds planar input (one slice per channel) and appends any finished output.
    pub fn process(&mut self, input: &[&[f32]], out: &mut [Vec<f32>]) -> Result<()> {
        self.check_io(input.len(), out.len())?;
        if self.finished {
            return Err(Error::invalid(
                "StreamResampler::process",
                "a call before finish() or after reset()",
                "a call after finish()",
            ));
        }
        let n = input[0].len();
        if input.iter().any(|c| c.len() != n) {
            return Err(Error::InvalidChannels { detail: "input channels differ in length".into() });
        }
        self.frames_in += n as u64;
        if self.inner.is_none() {
            for (o, i) in out.iter_mut().zip(input) {
                o.extend_from_slice(i);
            }
            self.frames_out += n as u64;
            return Ok(());
        }
        let need = self.inner.as_ref().map_or(0, |r| r.input_frames_next());
        let mut pos = 0;
        // Complete a chunk left over from the last call first.
        if !self.fifo[0].is_empty() {
            let take = (need - self.fifo[0].len()).min(n);
            for (f, i) in self.fifo.iter_mut().zip(input) {
                f.extend_from_slice(&i[..take]);
            }
            pos = take;
            if self.fifo[0].len() < need {
                return Ok(());
            }
            for (c, f) in self.chunk_in.iter_mut().zip(&self.fifo) {
                c[..need].copy_from_slice(f);
            }
            self.fifo.iter_mut().for_each(Vec::clear);
            self.run_internal(None, out, u64::MAX)?;
        }
        // Whole chunks straight from the caller's slices, no copy.
        if n - pos >= need {
            let adapter = SequentialSliceOfSlices::new(input, self.channels, n)
                .map_err(|e| Error::Resample { detail: e.to_string() })?;
            while n - pos >= need {
                run_chunk(
                    self.inner.as_mut().expect("resampler"),
                    &adapter,
                    pos,
                    None,
                    &mut self.chunk_out,
                    &mut self.to_trim,
                    &mut self.frames_out,
                    out,
                    u64::MAX,
                )?;
                pos += need;
            }
        }
        for (f, i) in self.fifo.iter_mut().zip(input) {
            f.extend_from_slice(&i[pos..]);
        }
        Ok(())
    }

    /// Flushes the tail so the total output is exactly `round(n · out / in)` frames.
    pub fn finish(&mut self, out: &mut [Vec<f32>]) -> Result<()> {
        self.check_io(self.channels, out.len())?;
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let target = self.expected_len(self.frames_in);
        if self.inner.is_none() {
            return Ok(());
        }
        let mut partial = self.fifo[0].len();
        while self.frames_out < target {
            for (c, f) in self.chunk_in.iter_mut().zip(&self.fifo) {
                c[..partial].copy_from_slice(&f[..partial]);
            }
            self.run_internal(Some(partial), out, target)?;
            for f in &mut self.fifo {
                f.clear();
            }
            partial = 0;
        }
        Ok(())
    }

    /// Clears all state so the resampler can start a new stream.
    pub fn reset(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.reset();
            self.to_trim = r.output_delay();
        }
        self.fifo.iter_mut().for_each(Vec::clear);
        self.frames_in = 0;
        self.frames_out = 0;
        self.finished = false;
    }

    fn check_io(&self, inputs: usize, outputs: usize) -> Result<()> {
        if inputs != self.channels || outputs != self.channels {
            return Err(Error::InvalidChannels {
                detail: format!("resampler has {} channels, got {inputs} in / {outputs} out", self.channels),
            });
        }
        Ok(())
    }

    /// Runs one chunk from `chunk_in`.
    fn run_internal(&mut self, partial: Option<usize>, out: &mut [Vec<f32>], limit: u64) -> Result<()> {
        let max_in = self.chunk_in[0].len();
        let input = SequentialSliceOfVecs::new(&self.chunk_in, self.channels, max_in)
            .map_err(|e| Error::Resample { detail: e.to_string() })?;
        let r = self.inner.as_mut().expect("run_internal without a resampler");
        run_chunk(r, &input, 0, partial, &mut self.chunk_out, &mut self.to_trim, &mut self.frames_out, out, limit)
    }
}

/// Runs one chunk read from `input` at `offset`, trims the start-up delay and
/// appends at most `limit - frames_out` frames to `out`.
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    r: &mut Fft<f32>,
    input: &dyn Adapter<f32>,
    offset: usize,
    partial: Option<usize>,
    chunk_out: &mut [Vec<f32>],
    to_trim: &mut usize,
    frames_out: &mut u64,
    out: &mut [Vec<f32>],
    limit: u64,
) -> Result<()> {
    let (channels, max_out) = (chunk_out.len(), chunk_out[0].len());
    let next = r.output_frames_next();
    let indexing = |output_offset| Indexing {
        input_offset: offset,
        output_offset,
        partial_len: partial,
        active_channels_mask: None,
    };
    let map = |e: rubato::ResampleError| Error::Resample { detail: e.to_string() };
    let take = if *to_trim == 0 && limit == u64::MAX {
        // Steady state: write straight into the caller's vectors.
        let start = out[0].len();
        out.iter_mut().for_each(|o| o.resize(start + next, 0.0));
        let mut output = SequentialSliceOfVecs::new_mut(out, channels, start + next)
            .map_err(|e| Error::Resample { detail: e.to_string() })?;
        let (_, produced) = r.process_into_buffer(input, &mut output, Some(&indexing(start))).map_err(map)?;
        out.iter_mut().for_each(|o| o.truncate(start + produced));
        produced
    } else {
        let mut output = SequentialSliceOfVecs::new_mut(chunk_out, channels, max_out)
            .map_err(|e| Error::Resample { detail: e.to_string() })?;
        let (_, produced) = r.process_into_buffer(input, &mut output, Some(&indexing(0))).map_err(map)?;
        let skip = (*to_trim).min(produced);
        *to_trim -= skip;
        let avail = (produced - skip) as u64;
        let take = avail.min(limit.saturating_sub(*frames_out)) as usize;
        for (o, c) in out.iter_mut().zip(chunk_out.iter()) {
            o.extend_from_slice(&c[skip..skip + take]);
        }
        take
    };
    *frames_out += take as u64;
    Ok(())
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_of_lengths() {
        assert_eq!(resampled_len(44100, 44100, 48000), 48000);
        assert_eq!(resampled_len(1, 44100, 48000), 1);
        assert_eq!(resampled_len(3, 48000, 16000), 1);
        assert_eq!(resampled_len(0, 48000, 16000), 0);
    }
}
