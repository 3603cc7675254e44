//! What the chunked pipelines (HT-Demucs, MDX-Net, Open-Unmix, the msst
//! families) share: their stems type, the growing signal they buffer, taking
//! a block into the model's channels, feeding a whole buffer through a stream,
//! and progress. Below both `neural` (which picks a pipeline) and the
//! pipelines, so neither imports the other for these.

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Stage};
use crate::stream::{FrameStream, StemAudio, StreamSpec, stem_frames};

/// Frames `pos - start` on of a growing signal, the rest dropped.
#[derive(Debug, Default)]
pub(crate) struct Tape {
    pub start: usize,
    pub data: Vec<Vec<f32>>,
}

impl Tape {
    pub fn new(rows: usize) -> Self {
        Self { start: 0, data: vec![Vec::new(); rows] }
    }
    pub fn end(&self) -> usize {
        self.start + self.data.first().map_or(0, Vec::len)
    }
    /// Grows every row with zeros to reach `end`.
    pub fn reach(&mut self, end: usize) {
        let len = end.saturating_sub(self.start);
        self.data.iter_mut().filter(|r| r.len() < len).for_each(|r| r.resize(len, 0.0));
    }
    /// Forgets what lies before `pos`, in steps big enough to be cheap.
    pub fn forget(&mut self, pos: usize) {
        let d = pos.saturating_sub(self.start).min(self.end() - self.start);
        if d > 0 && d >= self.data.first().map_or(0, Vec::len) / 2 {
            self.data.iter_mut().for_each(|r| {
                r.drain(..d);
            });
            self.start += d;
        }
    }
}

/// A block in the model's channels (the channel policy of [`AudioBuffer::to_channels`]).
pub(crate) fn to_model_channels(block: &[&[f32]], rate: u32, channels: usize) -> Result<Vec<Vec<f32>>> {
    let owned: Vec<Vec<f32>> = block.iter().map(|c| c.to_vec()).collect();
    if block.len() == channels {
        return Ok(owned);
    }
    Ok(AudioBuffer::new(rate, owned)?.to_channels(channels)?.into_channels())
}

/// What the chunked pipelines' [`FrameStream::process`] share: checks the block
/// and that the input has not ended, converts it to the model's `channels` and
/// appends it to `input`; returns its frame count.
pub(crate) fn take_block(
    spec: &StreamSpec,
    finished: bool,
    block: &[&[f32]],
    channels: usize,
    input: &mut Tape,
) -> Result<usize> {
    crate::stream::check_block(spec, block)?;
    if finished {
        return Err(Error::invalid("StemStream::process", "a call before finish()", "a call after finish()"));
    }
    let block = to_model_channels(block, spec.sample_rate, channels)?;
    for (t, b) in input.data.iter_mut().zip(block.iter()) {
        t.extend_from_slice(b);
    }
    Ok(block[0].len())
}

/// Runs a whole buffer through a stream in blocks of `block_len` frames,
/// reporting progress in frames and checking for cancellation between blocks.
pub(crate) fn feed_whole(
    stream: &mut dyn FrameStream,
    mix: &[Vec<f32>],
    block_len: usize,
    stems: usize,
    opts: &SeparateOptions<'_>,
) -> Result<StemAudio> {
    let n = mix[0].len();
    let mut out = stem_frames(stems);
    let mut counter = Counter::new(n as u64, opts);
    counter.report();
    for start in (0..n).step_by(block_len.max(1)) {
        opts.check_cancel()?;
        let end = (start + block_len).min(n);
        let block: Vec<&[f32]> = mix.iter().map(|c| &c[start..end]).collect();
        stream.process(&block, &mut out)?;
        counter.done = end as u64;
        counter.report();
    }
    stream.finish(&mut out)?;
    Ok(out)
}

/// Progress of the separation stage: segments run out of all segments.
pub(crate) struct Counter<'a, 'b> {
    pub done: u64,
    pub total: u64,
    pub opts: &'a SeparateOptions<'b>,
}

impl<'a, 'b> Counter<'a, 'b> {
    pub fn new(total: u64, opts: &'a SeparateOptions<'b>) -> Self {
        Self { done: 0, total, opts }
    }
    pub fn report(&self) {
        self.opts.report(Stage::Separate, self.done, self.total);
    }
}
