//! Encoding stems to WAV or FLAC, with a clipping policy, optional TPDF dither,
//! and atomic file writes (temporary file in the target directory, then rename).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flacenc::component::BitRepr;
use flacenc::error::{Verified, Verify};

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};

/// Container/codec of written files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Wav,
    Flac,
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;
    /// `wav` or `flac`.
    fn from_str(s: &str) -> Result<Self> {
        Error::parse_name("format", s, &[("wav", OutputFormat::Wav), ("flac", OutputFormat::Flac)])
    }
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Wav => "wav",
            OutputFormat::Flac => "flac",
        }
    }
}

/// Sample encoding of written files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleEncoding {
    /// 16-bit integer (WAV, FLAC).
    #[default]
    I16,
    /// 24-bit integer (WAV, FLAC).
    I24,
    /// 32-bit IEEE float (WAV only).
    F32,
}

impl SampleEncoding {
    /// 16, 24, or 32 (float).
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            16 => Ok(SampleEncoding::I16),
            24 => Ok(SampleEncoding::I24),
            32 => Ok(SampleEncoding::F32),
            b => Err(Error::invalid("bits", "16, 24 or 32 (float)", b)),
        }
    }

    pub fn bits(self) -> u16 {
        match self {
            SampleEncoding::I16 => 16,
            SampleEncoding::I24 => 24,
            SampleEncoding::F32 => 32,
        }
    }
}

/// What to do with samples outside `[-1, 1]`, as demucs's `--clip-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// Divide the whole stem by `max(1.01 · peak, 1)`: no clipping, no distortion.
    #[default]
    Rescale,
    /// Clamp every sample to `[-0.99, 0.99]`.
    Clamp,
    /// Leave samples alone. Float output keeps them; integer output saturates.
    None,
}

impl std::str::FromStr for ClipMode {
    type Err = Error;
    /// `rescale`, `clamp` or `none`.
    fn from_str(s: &str) -> Result<Self> {
        Error::parse_name(
            "clip",
            s,
            &[("rescale", ClipMode::Rescale), ("clamp", ClipMode::Clamp), ("none", ClipMode::None)],
        )
    }
}

/// How to write one stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteOptions {
    pub format: OutputFormat,
    pub encoding: SampleEncoding,
    pub clip: ClipMode,
    /// Add triangular (TPDF) dither of ±1 LSB before rounding to 16 bits.
    pub dither: bool,
}

impl WriteOptions {
    /// Fails on combinations no encoder takes (32-bit float FLAC).
    pub fn validate(&self) -> Result<()> {
        if self.format == OutputFormat::Flac && self.encoding == SampleEncoding::F32 {
            return Err(Error::invalid("encoding", "16 or 24 bits for FLAC", "32-bit float"));
        }
        Ok(())
    }
}

/// Applies the clip policy, returning planar samples ready to quantise.
pub fn apply_clip(audio: &AudioBuffer, mode: ClipMode) -> Vec<Vec<f32>> {
    match mode {
        ClipMode::None => audio.channels().to_vec(),
        ClipMode::Clamp => audio.channels().iter().map(|c| c.iter().map(|x| x.clamp(-0.99, 0.99)).collect()).collect(),
        ClipMode::Rescale => {
            let div = (1.01 * audio.peak()).max(1.0);
            audio.channels().iter().map(|c| c.iter().map(|x| x / div).collect()).collect()
        }
    }
}

/// Small deterministic generator for dither (xorshift64*), so output is reproducible.
struct Dither(u64);
impl Dither {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Triangular noise in (-1, 1) LSB.
    fn tpdf(&mut self) -> f32 {
        self.uniform() - self.uniform()
    }
}

fn quantise(x: f32, bits: u16, dither: Option<&mut Dither>) -> i32 {
    let scale = (1i64 << (bits - 1)) as f32;
    let (lo, hi) = (-scale, scale - 1.0);
    let mut v = x * scale;
    if let Some(d) = dither {
        v += d.tpdf();
    }
    v.round().clamp(lo, hi) as i32
}

/// How samples are brought into range before quantising: the clip policy with
/// the rescale divisor already known.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gain {
    Divide(f32),
    Clamp,
    None,
}

impl Gain {
    #[inline]
    fn apply(self, x: f32) -> f32 {
        match self {
            Gain::Divide(d) => x / d,
            Gain::Clamp => x.clamp(-0.99, 0.99),
            Gain::None => x,
        }
    }
}

/// The divisor [`ClipMode::Rescale`] uses for a stem whose peak is `peak`.
fn rescale_divisor(peak: f32) -> f32 {
    (1.01 * peak).max(1.0)
}

/// Frames per FLAC block (flacenc's default) and per WAV write.
const BLOCK: usize = 4096;

/// An encoder that takes a stem in blocks and writes WAV or FLAC to a seekable
/// sink, patching the header's lengths (and FLAC's STREAMINFO) at
/// [`Encoder::finish`]. Memory is one block, whatever the length.
struct Encoder<W: Write + Seek> {
    sink: W,
    opts: WriteOptions,
    gain: Gain,
    channels: usize,
    sample_rate: u32,
    frames: u64,
    dither: Option<Dither>,
    /// Interleaved integers waiting for a whole FLAC block.
    ints: Vec<i32>,
    bytes: Vec<u8>,
    flac: Option<Box<FlacState>>,
}

struct FlacState {
    predict: Verified<flacenc::config::Encoder>,
    verbatim: Verified<flacenc::config::Encoder>,
    stream: flacenc::component::Stream,
    framebuf: flacenc::source::FrameBuf,
    md5: flacenc::source::Context,
    frame_number: usize,
    header_len: usize,
}

fn flac_err(e: impl std::fmt::Debug) -> Error {
    Error::Encode { detail: format!("FLAC: {e:?}") }
}

impl<W: Write + Seek> Encoder<W> {
    fn new(mut sink: W, sample_rate: u32, channels: usize, opts: &WriteOptions, gain: Gain) -> Result<Self> {
        opts.validate()?;
        if channels == 0 {
            return Err(Error::invalid("channels", "at least 1", 0));
        }
        let bits = opts.encoding.bits() as usize;
        let flac = match opts.format {
            OutputFormat::Wav => {
                sink.write_all(&wav_header(sample_rate, channels as u16, opts.encoding, 0)?).map_err(io)?;
                None
            }
            OutputFormat::Flac => {
                let verify = |c: flacenc::config::Encoder| {
                    c.into_verified()
                        .map_err(|(_, e)| Error::Encode { detail: format!("FLAC encoder configuration: {e:?}") })
                };
                let mut verbatim = flacenc::config::Encoder::default();
                verbatim.subframe_coding.use_fixed = false;
                verbatim.subframe_coding.use_lpc = false;
                let stream = flacenc::component::Stream::new(sample_rate as usize, channels, bits).map_err(flac_err)?;
                let header = flac_bytes(&stream)?;
                sink.write_all(&header).map_err(io)?;
                Some(Box::new(FlacState {
                    predict: verify(flacenc::config::Encoder::default())?,
                    verbatim: verify(verbatim)?,
                    stream,
                    framebuf: flacenc::source::FrameBuf::with_size(channels, BLOCK).map_err(flac_err)?,
                    md5: flacenc::source::Context::new(bits, channels),
                    frame_number: 0,
                    header_len: header.len(),
                }))
            }
        };
        Ok(Self {
            sink,
            opts: *opts,
            gain,
            channels,
            sample_rate,
            frames: 0,
            dither: (opts.dither && bits == 16).then_some(Dither(0x9E37_79B9_7F4A_7C15)),
            ints: Vec::with_capacity(BLOCK * channels),
            bytes: Vec::new(),
            flac,
        })
    }

    /// Appends interleaved samples (whole frames).
    fn write_interleaved(&mut self, samples: &[f32]) -> Result<()> {
        debug_assert_eq!(samples.len() % self.channels, 0);
        check_finite_interleaved(samples, self.channels, self.frames)?;
        self.frames += (samples.len() / self.channels) as u64;
        let bits = self.opts.encoding.bits();
        match self.opts.format {
            OutputFormat::Wav => {
                let data = self.frames * self.channels as u64 * bits as u64 / 8;
                if wav_riff_len(data, self.channels as u16, self.opts.encoding) > u32::MAX as u64 {
                    return Err(Error::Encode {
                        detail: format!("{data} bytes of samples exceed WAV's 4 GiB limit; write FLAC instead"),
                    });
                }
                self.bytes.clear();
                if self.opts.encoding == SampleEncoding::F32 {
                    samples.iter().for_each(|&x| self.bytes.extend_from_slice(&self.gain.apply(x).to_le_bytes()));
                } else {
                    let n = bits as usize / 8;
                    for &x in samples {
                        let v = quantise(self.gain.apply(x), bits, self.dither.as_mut());
                        self.bytes.extend_from_slice(&v.to_le_bytes()[..n]);
                    }
                }
                self.sink.write_all(&self.bytes).map_err(io)
            }
            OutputFormat::Flac => {
                let mut rest = samples;
                while !rest.is_empty() {
                    let room = BLOCK * self.channels - self.ints.len();
                    let (now, later) = rest.split_at(room.min(rest.len()));
                    for &x in now {
                        self.ints.push(quantise(self.gain.apply(x), bits, self.dither.as_mut()));
                    }
                    rest = later;
                    if self.ints.len() == BLOCK * self.channels {
                        self.flac_block()?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Encodes the pending integers as one FLAC frame.
    fn flac_block(&mut self) -> Result<()> {
        use flacenc::source::Fill;
        let f = self.flac.as_mut().expect("FLAC state exists for FLAC output");
        let frames = self.ints.len() / self.channels;
        if frames == 0 {
            return Ok(());
        }
        if frames != f.framebuf.size() {
            f.framebuf.resize(frames);
        }
        (&mut f.framebuf, &mut f.md5).fill_interleaved(&self.ints).map_err(flac_err)?;
        let info = f.stream.stream_info();
        let mut frame =
            flacenc::encode_fixed_size_frame(&f.predict, &f.framebuf, f.frame_number, info).map_err(flac_err)?;
        // flacenc's predictors cap the Rice parameter at 14, so loud noise-like
        // 24-bit blocks can come out many times larger than raw, which some
        // readers (FFmpeg) then fail to parse; such a block is stored verbatim.
        let bits = self.opts.encoding.bits() as usize;
        if frame.count_bits() / 8 > frames * self.channels * bits / 8 + 64 {
            frame =
                flacenc::encode_fixed_size_frame(&f.verbatim, &f.framebuf, f.frame_number, info).map_err(flac_err)?;
        }
        f.stream.stream_info_mut().update_frame_info(&frame);
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame.write(&mut sink).map_err(flac_err)?;
        self.sink.write_all(sink.as_slice()).map_err(io)?;
        f.frame_number += 1;
        self.ints.clear();
        Ok(())
    }

    /// Writes the last block, patches the header and returns the sink.
    fn finish(mut self) -> Result<W> {
        match self.opts.format {
            OutputFormat::Wav => {
                let header = wav_header(self.sample_rate, self.channels as u16, self.opts.encoding, self.frames)?;
                self.sink.seek(SeekFrom::Start(0)).map_err(io)?;
                self.sink.write_all(&header).map_err(io)?;
            }
            OutputFormat::Flac => {
                self.flac_block()?;
                let f = self.flac.as_mut().expect("FLAC state exists for FLAC output");
                let digest = f.md5.md5_digest();
                let info = f.stream.stream_info_mut();
                info.set_md5_digest(&digest);
                // STREAMINFO's minimum block size must exclude the last block (FLAC
                // format spec); counting the short last block makes some decoders
                // (symphonia among them) take the stream for variable-block-size.
                info.set_block_sizes(BLOCK, BLOCK).map_err(flac_err)?;
                let header = flac_bytes(&f.stream)?;
                debug_assert_eq!(header.len(), f.header_len);
                self.sink.seek(SeekFrom::Start(0)).map_err(io)?;
                self.sink.write_all(&header).map_err(io)?;
            }
        }
        self.sink.seek(SeekFrom::End(0)).map_err(io)?;
        self.sink.flush().map_err(io)?;
        Ok(self.sink)
    }
}

/// [`Error::NonFinite`] at the first NaN or infinity of interleaved samples
/// that start at frame `first_frame`.
fn check_finite_interleaved(samples: &[f32], channels: usize, first_frame: u64) -> Result<()> {
    match samples.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFinite {
            channel: i % channels,
            frame: (first_frame + (i / channels) as u64) as usize,
            value: samples[i],
        }),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io { path: None, source: e }
}

/// `fLaC` and the STREAMINFO block of a stream without frames.
fn flac_bytes(stream: &flacenc::component::Stream) -> Result<Vec<u8>> {
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).map_err(flac_err)?;
    Ok(sink.as_slice().to_vec())
}

/// Whether the WAV needs WAVE_FORMAT_EXTENSIBLE: more than two channels, or
/// PCM of more than 16 bits (Microsoft's rule, which players and libsndfile follow).
fn wav_extensible(channels: u16, encoding: SampleEncoding) -> bool {
    channels > 2 || (encoding != SampleEncoding::F32 && encoding.bits() > 16)
}

/// The `fmt ` chunk's body length: 16 for PCM, 18 for float, 40 extensible.
fn wav_fmt_len(channels: u16, encoding: SampleEncoding) -> u32 {
    if wav_extensible(channels, encoding) {
        40
    } else if encoding == SampleEncoding::F32 {
        18
    } else {
        16
    }
}

fn wav_riff_len(data_len: u64, channels: u16, encoding: SampleEncoding) -> u64 {
    // Float data carries a `fact` chunk (12 bytes).
    let fact_len = if encoding == SampleEncoding::F32 { 12 } else { 0 };
    4 + (8 + wav_fmt_len(channels, encoding) as u64) + fact_len + 8 + data_len
}

/// The speakers of `channels` channels in WAV order, as ffmpeg lays them out
/// by default (mono, stereo, 3.0, quad, 5.0, 5.1, 6.1, 7.1); none above 8.
fn wav_channel_mask(channels: u16) -> u32 {
    match channels {
        1 => 0x4,
        2 => 0x3,
        3 => 0x7,
        4 => 0x33,
        5 => 0x37,
        6 => 0x3F,
        7 => 0x70F,
        8 => 0x63F,
        _ => 0,
    }
}

/// A WAV header for `frames` frames (0 while the length is not yet known).
fn wav_header(sample_rate: u32, channels: u16, encoding: SampleEncoding, frames: u64) -> Result<Vec<u8>> {
    let bits = encoding.bits();
    let bytes_per_sample = bits as u64 / 8;
    let data_len = frames * channels as u64 * bytes_per_sample;
    let is_float = encoding == SampleEncoding::F32;
    let riff_len = wav_riff_len(data_len, channels, encoding);
    if riff_len > u32::MAX as u64 {
        return Err(Error::Encode {
            detail: format!("{data_len} bytes of samples exceed WAV's 4 GiB limit; write FLAC instead"),
        });
    }
    let extensible = wav_extensible(channels, encoding);
    let fmt_len = wav_fmt_len(channels, encoding);
    // WAVE_FORMAT_PCM, _IEEE_FLOAT, _EXTENSIBLE.
    let tag: u16 = if extensible {
        0xFFFE
    } else if is_float {
        3
    } else {
        1
    };
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(riff_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&fmt_len.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    let block_align = channels as u32 * bytes_per_sample as u32;
    out.extend_from_slice(&(sample_rate * block_align).to_le_bytes());
    out.extend_from_slice(&(block_align as u16).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        out.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        out.extend_from_slice(&bits.to_le_bytes()); // wValidBitsPerSample
        out.extend_from_slice(&wav_channel_mask(channels).to_le_bytes());
        // The SubFormat GUID: the format tag, then 0000-0010-8000-00AA00389B71.
        out.extend_from_slice(&(if is_float { 3u32 } else { 1u32 }).to_le_bytes());
        out.extend_from_slice(&[0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]);
    } else if is_float {
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    if is_float {
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(frames as u32).to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    Ok(out)
}

/// Encodes a buffer to the bytes of a WAV or FLAC file.
pub fn encode(audio: &AudioBuffer, opts: &WriteOptions) -> Result<Vec<u8>> {
    opts.validate()?;
    audio.check_finite()?;
    let gain = match opts.clip {
        ClipMode::Rescale => Gain::Divide(rescale_divisor(audio.peak())),
        ClipMode::Clamp => Gain::Clamp,
        ClipMode::None => Gain::None,
    };
    let mut enc = Encoder::new(Cursor::new(Vec::new()), audio.sample_rate(), audio.num_channels(), opts, gain)?;
    let mut block = Vec::with_capacity(BLOCK * audio.num_channels());
    for start in (0..audio.frames()).step_by(BLOCK) {
        let end = (start + BLOCK).min(audio.frames());
        block.clear();
        for i in start..end {
            block.extend(audio.channels().iter().map(|c| c[i]));
        }
        enc.write_interleaved(&block)?;
    }
    Ok(enc.finish()?.into_inner())
}

/// A stem written to a file block by block, atomically: samples go to a
/// temporary file beside the destination and [`StemWriter::commit`] renames it
/// into place; dropping the writer uncommitted removes everything.
///
/// With [`ClipMode::Rescale`] the divisor depends on the whole stem's peak, so
/// samples are first spooled as 32-bit floats to a second temporary file and
/// encoded at [`StemWriter::finish`]; memory stays one block either way.
pub struct StemWriter {
    state: WriterState,
    dest: PathBuf,
    channels: usize,
}

enum WriterState {
    Direct(PendingFile, Encoder<BufWriter<File>>),
    Spool { spool: PendingFile, file: BufWriter<File>, peak: f32, frames: u64, rate: u32, opts: WriteOptions },
    Done,
}

impl std::fmt::Debug for StemWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StemWriter").field("dest", &self.dest).field("channels", &self.channels).finish()
    }
}

impl StemWriter {
    pub fn create(dest: impl Into<PathBuf>, sample_rate: u32, channels: usize, opts: &WriteOptions) -> Result<Self> {
        opts.validate()?;
        let dest = dest.into();
        let state = match opts.clip {
            ClipMode::Rescale => {
                let spool_dest = dest.with_extension("f32spool");
                let (spool, file) = PendingFile::create(&spool_dest)?;
                WriterState::Spool {
                    spool,
                    file: BufWriter::with_capacity(1 << 16, file),
                    peak: 0.0,
                    frames: 0,
                    rate: sample_rate,
                    opts: *opts,
                }
            }
            clip => {
                let gain = if clip == ClipMode::Clamp { Gain::Clamp } else { Gain::None };
                let (pending, file) = PendingFile::create(&dest)?;
                let enc = Encoder::new(BufWriter::with_capacity(1 << 16, file), sample_rate, channels, opts, gain)
                    .map_err(|e| e.with_path(pending.temp_path()))?;
                WriterState::Direct(pending, enc)
            }
        };
        Ok(Self { state, dest, channels })
    }

    /// Appends one block, planar (one slice per channel, equal lengths).
    pub fn write(&mut self, planar: &[&[f32]]) -> Result<()> {
        if planar.len() != self.channels {
            return Err(Error::InvalidChannels {
                detail: format!("a {}-channel writer got {} channels", self.channels, planar.len()),
            });
        }
        let frames = planar.first().map_or(0, |c| c.len());
        if planar.iter().any(|c| c.len() != frames) {
            return Err(Error::InvalidChannels { detail: "channels of one block differ in length".into() });
        }
        let mut interleaved = Vec::with_capacity(frames * self.channels);
        for i in 0..frames {
            interleaved.extend(planar.iter().map(|c| c[i]));
        }
        self.write_interleaved(&interleaved)
    }

    /// Appends interleaved frames.
    pub fn write_interleaved(&mut self, samples: &[f32]) -> Result<()> {
        if !samples.len().is_multiple_of(self.channels) {
            return Err(Error::InvalidChannels { detail: "a block must hold whole frames".into() });
        }
        match &mut self.state {
            WriterState::Direct(p, enc) => enc.write_interleaved(samples).map_err(|e| e.with_path(p.temp_path())),
            WriterState::Spool { spool, file, peak, frames, .. } => {
                check_finite_interleaved(samples, self.channels, *frames)?;
                *peak = samples.iter().fold(*peak, |m, x| m.max(x.abs()));
                *frames += (samples.len() / self.channels) as u64;
                let mut bytes = Vec::with_capacity(samples.len() * 4);
                samples.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                file.write_all(&bytes).map_err(|e| Error::io(spool.temp_path(), e))
            }
            WriterState::Done => Err(Error::invalid("writer", "not finished", "finished")),
        }
    }

    /// Encodes what is spooled, syncs the file and returns it, still under its
    /// temporary name: [`PendingFile::commit`] puts it in place.
    pub fn finish(mut self) -> Result<PendingFile> {
        match std::mem::replace(&mut self.state, WriterState::Done) {
            WriterState::Direct(pending, enc) => {
                let w = enc.finish().map_err(|e| e.with_path(pending.temp_path()))?;
                sync(w, pending.temp_path())?;
                Ok(pending)
            }
            WriterState::Spool { spool, file, peak, frames, rate, opts } => {
                let path = spool.temp_path().to_path_buf();
                let mut file = file.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
                file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(&path, e))?;
                let mut reader = BufReader::with_capacity(1 << 16, file);
                let (pending, out) = PendingFile::create(&self.dest)?;
                let gain = Gain::Divide(rescale_divisor(peak));
                let mut enc = Encoder::new(BufWriter::with_capacity(1 << 16, out), rate, self.channels, &opts, gain)?;
                let mut bytes = vec![0u8; BLOCK * self.channels * 4];
                let mut block = Vec::with_capacity(BLOCK * self.channels);
                let mut left = frames * self.channels as u64;
                while left > 0 {
                    let n = (bytes.len() as u64).min(left * 4) as usize;
                    reader.read_exact(&mut bytes[..n]).map_err(|e| Error::io(&path, e))?;
                    block.clear();
                    block.extend(bytes[..n].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                    enc.write_interleaved(&block).map_err(|e| e.with_path(pending.temp_path()))?;
                    left -= (n / 4) as u64;
                }
                let w = enc.finish().map_err(|e| e.with_path(pending.temp_path()))?;
                sync(w, pending.temp_path())?;
                drop(spool);
                Ok(pending)
            }
            WriterState::Done => Err(Error::invalid("writer", "not finished", "finished")),
        }
    }

    /// [`StemWriter::finish`], then [`PendingFile::commit`].
    pub fn commit(self) -> Result<PathBuf> {
        self.finish()?.commit()
    }
}

fn sync(w: BufWriter<File>, path: &Path) -> Result<()> {
    let f = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// A file written under a temporary name next to its destination. [`commit`]
/// renames it into place; dropping it uncommitted deletes it, so an error or a
/// cancellation never leaves a partial file behind.
///
/// [`commit`]: PendingFile::commit
#[derive(Debug)]
pub struct PendingFile {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PendingFile {
    const TEMP_SUFFIX: &str = ".partial";

    /// Whether a file name is one of these temporary files
    /// (`.<name>.<pid>.<n>.partial`): what a process killed mid-write leaves
    /// behind, for a sweeper to find.
    pub fn is_temp_name(name: &str) -> bool {
        name.starts_with('.') && name.ends_with(Self::TEMP_SUFFIX)
    }

    /// Writes `bytes` to a hidden temporary file beside `dest` and syncs it.
    pub fn write(dest: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self> {
        let (this, mut f) = Self::create(dest)?;
        f.write_all(bytes).map_err(|e| Error::io(&this.temp, e))?;
        f.sync_all().map_err(|e| Error::io(&this.temp, e))?;
        Ok(this)
    }

    /// Creates the hidden temporary file beside `dest` (read-write) for the
    /// caller to fill; it is removed when the `PendingFile` is dropped uncommitted.
    pub fn create(dest: impl Into<PathBuf>) -> Result<(Self, File)> {
        let dest = dest.into();
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = dest.file_name().ok_or_else(|| Error::invalid("path", "a file path", dest.display()))?;
        let temp = dir.join(format!(
            ".{}.{}.{}{}",
            name.to_string_lossy(),
            std::process::id(),
            unique_suffix(),
            Self::TEMP_SUFFIX
        ));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&temp, e))?;
        Ok((PendingFile { temp, dest, committed: false }, f))
    }

    /// Where the file lies until it is committed.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn destination(&self) -> &Path {
        &self.dest
    }

    /// Moves the file into place (atomic on the same filesystem).
    pub fn commit(mut self) -> Result<PathBuf> {
        fs::rename(&self.temp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(48)
}

/// Encodes and writes a file atomically.
pub fn write_file(path: impl AsRef<Path>, audio: &AudioBuffer, opts: &WriteOptions) -> Result<PathBuf> {
    let bytes = encode(audio, opts)?;
    PendingFile::write(path.as_ref(), &bytes)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_parse_as_the_bindings_write_them() {
        assert_eq!("flac".parse::<OutputFormat>().unwrap(), OutputFormat::Flac);
        assert_eq!("none".parse::<ClipMode>().unwrap(), ClipMode::None);
        assert_eq!(SampleEncoding::from_bits(24).unwrap(), SampleEncoding::I24);
        assert_eq!("boxcar".parse::<crate::WindowKind>().unwrap(), crate::WindowKind::Rectangular);
        assert_eq!("constant".parse::<crate::PadMode>().unwrap(), crate::PadMode::Constant);
        let e = "mp3".parse::<OutputFormat>().unwrap_err();
        assert_eq!(e.code(), "invalid_argument");
        assert!(e.to_string().contains("one of wav, flac"), "{e}");
        assert_eq!(SampleEncoding::from_bits(20).unwrap_err().code(), "invalid_argument");
        assert!("loud".parse::<ClipMode>().is_err() && "kaiser".parse::<crate::WindowKind>().is_err());
        for s in [crate::Stage::Analyse, crate::Stage::Write] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn quantise_rounds_and_saturates() {
        assert_eq!(quantise(0.5, 16, None), 16384);
        assert_eq!(quantise(1.5, 16, None), 32767);
        assert_eq!(quantise(-1.5, 16, None), -32768);
        assert_eq!(quantise(-1.0, 24, None), -(1 << 23));
    }

    #[test]
    fn clip_modes() {
        let a = AudioBuffer::new(8000, vec![vec![2.0, -0.5]]).unwrap();
        assert_eq!(apply_clip(&a, ClipMode::Clamp)[0], vec![0.99, -0.5]);
        let r = apply_clip(&a, ClipMode::Rescale);
        assert!((r[0][0] - 2.0 / 2.02).abs() < 1e-7);
        assert_eq!(apply_clip(&a, ClipMode::None)[0], vec![2.0, -0.5]);
    }

    #[test]
    fn flac_refuses_float() {
        let a = AudioBuffer::new(8000, vec![vec![0.0; 10]]).unwrap();
        let o = WriteOptions { format: OutputFormat::Flac, encoding: SampleEncoding::F32, ..Default::default() };
        assert!(matches!(encode(&a, &o), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn pending_file_is_removed_unless_committed() {
        let dir = std::env::temp_dir().join(format!("ss-pending-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("x.wav");
        let p = PendingFile::write(&dest, b"abc").unwrap();
        let temp = p.temp_path().file_name().unwrap().to_str().unwrap();
        assert!(PendingFile::is_temp_name(temp), "{temp}");
        assert!(!PendingFile::is_temp_name("x.wav") && !PendingFile::is_temp_name(".hidden.wav"));
        drop(p);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        PendingFile::write(&dest, b"abc").unwrap().commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        fs::remove_dir_all(&dir).unwrap();
    }
}
