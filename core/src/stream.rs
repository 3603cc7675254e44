//! Separation of input that arrives in blocks, holding only what the separator
//! needs in flight: the engine under the file path ([`crate::separate_file`]),
//! which therefore runs any length in bounded memory.
//!
//! A [`StemStream`] takes planar blocks (`&[&[f32]]`) at the separator's rate
//! (the input's channel count, which it adapts itself) and returns the stem
//! frames that are final as [`Stems`]. Joined ([`Stems::append`]), its output
//! equals [`Separator::separate`] of the concatenated input (within float
//! round-off, 1e-6).
//!
//! How each separator bounds its memory:
//! - Built-ins are local: an output sample depends on the input within a fixed
//!   reach (the STFT window, the median filters, REPET's lag window). They are
//!   run on overlapping windows whose edges lie farther than that reach from the
//!   samples kept, so what is kept equals the whole-input result.
//! - HT-Demucs runs segment by segment, the segments of every shift and every
//!   model of a bag in flight together, and releases output once no later
//!   segment can add to it. Its normalisation by the whole input's mean and
//!   standard deviation is taken in a first pass ([`StemStream::prepass`]), or
//!   given ([`StemStream::set_input_stats`]) for live input.
//! - MDX-Net runs `demix`'s chunks the same way.
//! - Open-Unmix runs on overlapping windows when given `segment_secs` (an
//!   approximation of the reference, whose LSTM reads the whole track);
//!   otherwise it, like any separator without a stream of its own, collects the
//!   input and separates it at the end.

use std::ops::Range;

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stems};

/// Stems × channels × frames: what the pipelines append to internally.
pub(crate) type StemAudio = Vec<Vec<Vec<f32>>>;

/// What a stream is told about its input before the first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// The rate of the blocks; must be the separator's rate when it has one.
    pub sample_rate: u32,
    /// Channels of the blocks.
    pub channels: usize,
    /// Total frames, when known (for progress).
    pub frames: Option<u64>,
}

/// A separation in progress; see the [module documentation](self).
///
/// Blocks are planar, `&[&[f32]]`: one slice per channel, all of one length.
pub trait StemStream {
    /// Whether the stream must see the whole input through [`StemStream::prepass`]
    /// before the first [`StemStream::process`] (HT-Demucs's normalisation).
    fn needs_prepass(&self) -> bool {
        false
    }
    /// Shows the stream one block of the first pass.
    fn prepass(&mut self, _block: &[&[f32]]) -> Result<()> {
        Ok(())
    }
    /// Sets the statistics a prepass would measure (the mono mix's mean and
    /// standard deviation), for live input that has no whole; afterwards no
    /// prepass is needed. Streams without such statistics ignore it.
    fn set_input_stats(&mut self, _mean: f32, _std: f32) {}
    /// Feeds one block and returns the stem frames it finished: every stem with
    /// the same number of frames (often none), following those returned before.
    fn process(&mut self, block: &[&[f32]]) -> Result<Stems>;
    /// Ends the input and returns the rest of the output.
    fn finish(&mut self) -> Result<Stems>;
}

/// The pipelines' side of a stream: [`StemStream`] with the finished frames
/// appended to a buffer (stems × channels; every stem and channel grows by the
/// same count; a stem with no channels yet is given them).
pub(crate) trait FrameStream {
    fn needs_prepass(&self) -> bool {
        false
    }
    fn prepass(&mut self, _block: &[&[f32]]) -> Result<()> {
        Ok(())
    }
    fn set_input_stats(&mut self, _mean: f32, _std: f32) {}
    fn process(&mut self, block: &[&[f32]], out: &mut StemAudio) -> Result<()>;
    fn finish(&mut self, out: &mut StemAudio) -> Result<()>;
}

/// A [`FrameStream`] with its stems' names, rate and channels: a [`StemStream`].
pub(crate) struct Named<'s> {
    inner: Box<dyn FrameStream + 's>,
    names: Vec<String>,
    rate: u32,
    channels: usize,
}

impl<'s> Named<'s> {
    /// `inner`, whose stems are `names` with `channels` channels at `spec`'s
    /// rate, as a [`StemStream`].
    pub fn boxed(
        names: Vec<String>,
        channels: usize,
        spec: &StreamSpec,
        inner: impl FrameStream + 's,
    ) -> Box<dyn StemStream + 's> {
        Box::new(Named { inner: Box::new(inner), names, rate: spec.sample_rate, channels })
    }

    fn stems(&self, out: StemAudio) -> Result<Stems> {
        if out.len() != self.names.len() {
            return Err(Error::InvalidChannels {
                detail: format!("a stream made {} stems, the separator names {}", out.len(), self.names.len()),
            });
        }
        let stems = self
            .names
            .iter()
            .zip(out)
            .map(|(n, c)| {
                let c = if c.is_empty() { vec![Vec::new(); self.channels] } else { c };
                Ok((n.clone(), AudioBuffer::new(self.rate, c)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Stems::new(stems)
    }
}

impl StemStream for Named<'_> {
    fn needs_prepass(&self) -> bool {
        self.inner.needs_prepass()
    }
    fn prepass(&mut self, block: &[&[f32]]) -> Result<()> {
        self.inner.prepass(block)
    }
    fn set_input_stats(&mut self, mean: f32, std: f32) {
        self.inner.set_input_stats(mean, std)
    }
    fn process(&mut self, block: &[&[f32]]) -> Result<Stems> {
        let mut out = stem_frames(self.names.len());
        self.inner.process(block, &mut out)?;
        self.stems(out)
    }
    fn finish(&mut self) -> Result<Stems> {
        let mut out = stem_frames(self.names.len());
        self.inner.finish(&mut out)?;
        self.stems(out)
    }
}

/// Empty output buffers for `stems` stems (their channels come with the first frames).
pub(crate) fn stem_frames(stems: usize) -> StemAudio {
    vec![Vec::new(); stems]
}

/// Stems' channels, in order, without their names: for appending.
pub(crate) fn into_frames(stems: Stems) -> StemAudio {
    stems.into_vec().into_iter().map(|(_, b)| b.into_channels()).collect()
}

/// The planar view of owned channels.
pub(crate) fn planar(channels: &[Vec<f32>]) -> Vec<&[f32]> {
    channels.iter().map(Vec::as_slice).collect()
}

pub(crate) fn check_block(spec: &StreamSpec, block: &[&[f32]]) -> Result<usize> {
    if block.len() != spec.channels {
        return Err(Error::InvalidChannels {
            detail: format!("a stream opened for {} channels got a block of {}", spec.channels, block.len()),
        });
    }
    let n = block.first().map_or(0, |c| c.len());
    if block.iter().any(|c| c.len() != n) {
        return Err(Error::InvalidChannels { detail: "channels of one block differ in length".into() });
    }
    for (ch, c) in block.iter().enumerate() {
        if let Some(frame) = c.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { channel: ch, frame, value: c[frame] });
        }
    }
    Ok(n)
}

fn append(out: &mut StemAudio, stems: &Stems, range: Range<usize>) -> Result<()> {
    if out.len() != stems.len() {
        return Err(Error::InvalidChannels {
            detail: format!("output buffers for {} stems, the separator makes {}", out.len(), stems.len()),
        });
    }
    for (o, (_, s)) in out.iter_mut().zip(stems.iter()) {
        if o.len() != s.num_channels() {
            *o = vec![Vec::new(); s.num_channels()];
        }
        for (oc, sc) in o.iter_mut().zip(s.channels()) {
            oc.extend_from_slice(&sc[range.clone()]);
        }
    }
    Ok(())
}

/// The fallback stream: collects the whole input and separates it at the end.
pub(crate) struct Whole<'s, S: Separator + ?Sized> {
    sep: &'s mut S,
    spec: StreamSpec,
    input: Vec<Vec<f32>>,
    opts: SeparateOptions<'s>,
}

impl<'s, S: Separator + ?Sized> Whole<'s, S> {
    /// `sep`'s stream that collects the input and separates it at the end.
    pub fn boxed(sep: &'s mut S, spec: StreamSpec, opts: SeparateOptions<'s>) -> Box<dyn StemStream + 's> {
        let (names, channels) = (sep.stems().to_vec(), sep.output_channels(spec.channels));
        Named::boxed(names, channels, &spec, Self { sep, spec, input: vec![Vec::new(); spec.channels], opts })
    }
}

impl<S: Separator + ?Sized> FrameStream for Whole<'_, S> {
    fn process(&mut self, block: &[&[f32]], _out: &mut StemAudio) -> Result<()> {
        check_block(&self.spec, block)?;
        self.input.iter_mut().zip(block).for_each(|(i, b)| i.extend_from_slice(b));
        Ok(())
    }
    fn finish(&mut self, out: &mut StemAudio) -> Result<()> {
        let input = std::mem::take(&mut self.input);
        if input.first().is_none_or(Vec::is_empty) {
            return Err(Error::Empty { what: "input audio".into() });
        }
        let audio = AudioBuffer::new(self.spec.sample_rate, input)?;
        let stems = self.sep.separate(&audio, &self.opts)?;
        append(out, &stems, 0..audio.frames())
    }
}

/// How far a local separator's output depends on its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    /// Input samples on either side of an output sample that can change it.
    pub context: usize,
    /// Window starts must be multiples of this (the STFT hop), so the window's
    /// frames are the whole input's frames.
    pub align: usize,
    /// Output frames per window; 0: at least 20 s.
    pub core: usize,
}

/// A separator whose output is local (see [`Reach`]) and can be computed for
/// a window of a longer input.
pub(crate) trait Local: Separator {
    fn reach(&self, sample_rate: u32) -> Reach;
    /// Stems of `window`, which starts `start` frames into an input of `total`
    /// frames (`None` while unknown: then the window does not reach the end).
    /// Only the frames in `keep` need to be exact: the rest are cropped.
    fn separate_window(
        &mut self,
        window: &AudioBuffer,
        _keep: Range<usize>,
        _total: Option<usize>,
        opts: &SeparateOptions<'_>,
    ) -> Result<Stems> {
        self.separate(window, opts)
    }
}

/// Output frames computed per window of a local separator, at least (longer
/// when the reach is). Windows are `core + 2 · context` long.
const CORE_SECS: usize = 20;

/// A local separator run on overlapping windows.
pub(crate) struct Windowed<'s, S: Local + ?Sized> {
    sep: &'s mut S,
    spec: StreamSpec,
    reach: Reach,
    core: usize,
    /// Input from frame `buf_start` on.
    buf: Vec<Vec<f32>>,
    buf_start: usize,
    /// Frames received.
    received: usize,
    /// First frame not yet output.
    next: usize,
    opts: SeparateOptions<'s>,
}

impl<'s, S: Local + ?Sized> Windowed<'s, S> {
    pub fn new(sep: &'s mut S, spec: StreamSpec, opts: SeparateOptions<'s>) -> Self {
        let reach = sep.reach(spec.sample_rate);
        let core = if reach.core > 0 { reach.core } else { (CORE_SECS * spec.sample_rate as usize).max(reach.context) };
        let core = core.next_multiple_of(reach.align);
        Self { sep, spec, reach, core, buf: vec![Vec::new(); spec.channels], buf_start: 0, received: 0, next: 0, opts }
    }

    /// `sep`'s stream on overlapping windows.
    pub fn boxed(sep: &'s mut S, spec: StreamSpec, opts: SeparateOptions<'s>) -> Box<dyn StemStream + 's> {
        let (names, channels) = (sep.stems().to_vec(), sep.output_channels(spec.channels));
        Named::boxed(names, channels, &spec, Self::new(sep, spec, opts))
    }

    /// Separates the window around `next..next + core` (to `end`, the input's
    /// end when `last`) and appends the kept frames.
    fn step(&mut self, end: usize, last: bool, out: &mut StemAudio) -> Result<()> {
        let ctx = self.reach.context;
        let start = self.next.saturating_sub(ctx) / self.reach.align * self.reach.align;
        let keep_end = if last { end.min(self.next + self.core) } else { self.next + self.core };
        let window: Vec<Vec<f32>> =
            self.buf.iter().map(|c| c[start - self.buf_start..end - self.buf_start].to_vec()).collect();
        let audio = AudioBuffer::new(self.spec.sample_rate, window)?;
        let keep = self.next - start..keep_end - start;
        // The input's length, where known: the last window's end, or what the
        // container declared (REPET's exclusion zone shrinks for short inputs).
        let total = if last { Some(end) } else { self.spec.frames.map(|n| n as usize) };
        let stems = self.sep.separate_window(&audio, keep.clone(), total, &self.opts)?;
        append(out, &stems, keep)?;
        self.next = keep_end;
        // Drop input no later window reads.
        let first_needed = self.next.saturating_sub(ctx) / self.reach.align * self.reach.align;
        if first_needed > self.buf_start {
            let d = first_needed - self.buf_start;
            self.buf.iter_mut().for_each(|c| {
                c.drain(..d);
            });
            self.buf_start = first_needed;
        }
        Ok(())
    }
}

impl<S: Local + ?Sized> FrameStream for Windowed<'_, S> {
    fn process(&mut self, block: &[&[f32]], out: &mut StemAudio) -> Result<()> {
        let n = check_block(&self.spec, block)?;
        self.buf.iter_mut().zip(block).for_each(|(b, x)| b.extend_from_slice(x));
        self.received += n;
        while self.received >= self.next + self.core + self.reach.context {
            self.opts.check_cancel()?;
            let end = self.next + self.core + self.reach.context;
            self.step(end, false, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut StemAudio) -> Result<()> {
        if self.received == 0 {
            return Err(Error::Empty { what: "input audio".into() });
        }
        while self.next < self.received {
            self.opts.check_cancel()?;
            self.step(self.received, true, out)?;
        }
        Ok(())
    }
}
