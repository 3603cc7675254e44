//! Encoding stems to WAV or FLAC, with a clipping policy, optional TPDF dither,
//! and atomic file writes (temporary file in the target directory, then rename).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use flacenc::component::BitRepr;
use flacenc::error::Verify;

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
    fn validate(&self) -> Result<()> {
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

/// Interleaved integers at `bits`, after clipping and optional dither.
fn to_ints(audio: &AudioBuffer, opts: &WriteOptions, bits: u16) -> Vec<i32> {
    let planar = apply_clip(audio, opts.clip);
    let mut dither = (opts.dither && bits == 16).then_some(Dither(0x9E37_79B9_7F4A_7C15));
    let frames = audio.frames();
    let mut out = Vec::with_capacity(frames * planar.len());
    for i in 0..frames {
        for c in &planar {
            out.push(quantise(c[i], bits, dither.as_mut()));
        }
    }
    out
}

/// Encodes a buffer to the bytes of a WAV or FLAC file.
pub fn encode(audio: &AudioBuffer, opts: &WriteOptions) -> Result<Vec<u8>> {
    opts.validate()?;
    audio.check_finite()?;
    match opts.format {
        OutputFormat::Wav => encode_wav(audio, opts),
        OutputFormat::Flac => encode_flac(audio, opts),
    }
}

fn encode_wav(audio: &AudioBuffer, opts: &WriteOptions) -> Result<Vec<u8>> {
    let channels = audio.num_channels() as u16;
    let bits = opts.encoding.bits();
    let bytes_per_sample = bits as usize / 8;
    let data_len = audio.frames() * channels as usize * bytes_per_sample;
    let is_float = opts.encoding == SampleEncoding::F32;
    let fmt_len: u32 = if is_float { 18 } else { 16 };
    let fact_len: u32 = if is_float { 12 } else { 0 };
    let riff_len = 4 + (8 + fmt_len as u64) + fact_len as u64 + 8 + data_len as u64;
    if riff_len > u32::MAX as u64 {
        return Err(Error::Encode {
            detail: format!("{data_len} bytes of samples exceed WAV's 4 GiB limit; write FLAC instead"),
        });
    }
    let mut out = Vec::with_capacity(riff_len as usize + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(riff_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&fmt_len.to_le_bytes());
    out.extend_from_slice(&(if is_float { 3u16 } else { 1u16 }).to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&audio.sample_rate().to_le_bytes());
    let block_align = channels as u32 * bytes_per_sample as u32;
    out.extend_from_slice(&(audio.sample_rate() * block_align).to_le_bytes());
    out.extend_from_slice(&(block_align as u16).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if is_float {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(audio.frames() as u32).to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    if is_float {
        let planar = apply_clip(audio, opts.clip);
        for i in 0..audio.frames() {
            for c in &planar {
                out.extend_from_slice(&c[i].to_le_bytes());
            }
        }
    } else {
        for v in to_ints(audio, opts, bits) {
            out.extend_from_slice(&v.to_le_bytes()[..bytes_per_sample]);
        }
    }
    Ok(out)
}

fn encode_flac(audio: &AudioBuffer, opts: &WriteOptions) -> Result<Vec<u8>> {
    let bits = opts.encoding.bits() as usize;
    let samples = to_ints(audio, opts, bits as u16);
    let bytes = flac_stream(audio, &samples, bits, true)?;
    // flacenc's predictors cap the Rice parameter at 14, so loud noise-like
    // 24-bit blocks can come out many times larger than raw, which some readers
    // (FFmpeg) then fail to parse. STREAMINFO's max frame size tells us; past the
    // size of a verbatim frame, encode verbatim instead.
    let block = flacenc::config::Encoder::default().block_size;
    let verbatim_frame = block * audio.num_channels() * bits / 8 + 64;
    let max_frame = u32::from_be_bytes([0, bytes[15], bytes[16], bytes[17]]) as usize;
    if max_frame > verbatim_frame { flac_stream(audio, &samples, bits, false) } else { Ok(bytes) }
}

fn flac_stream(audio: &AudioBuffer, samples: &[i32], bits: usize, predict: bool) -> Result<Vec<u8>> {
    let mut config = flacenc::config::Encoder::default();
    if !predict {
        config.subframe_coding.use_fixed = false;
        config.subframe_coding.use_lpc = false;
    }
    let config = config
        .into_verified()
        .map_err(|(_, e)| Error::Encode { detail: format!("FLAC encoder configuration: {e:?}") })?;
    let source =
        flacenc::source::MemSource::from_samples(samples, audio.num_channels(), bits, audio.sample_rate() as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| Error::Encode { detail: format!("FLAC: {e:?}") })?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).map_err(|e| Error::Encode { detail: format!("FLAC: {e:?}") })?;
    let mut bytes = sink.as_slice().to_vec();
    if bytes.len() < 18 || &bytes[..4] != b"fLaC" {
        return Err(Error::Encode { detail: "FLAC encoder produced no STREAMINFO".into() });
    }
    // STREAMINFO's minimum block size must exclude the last block (FLAC format
    // spec); flacenc counts the short last block, which makes some decoders
    // (symphonia among them) take the stream for variable-block-size. Every
    // block but the last has the fixed size, so min = max.
    bytes[8] = bytes[10];
    bytes[9] = bytes[11];
    Ok(bytes)
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
    /// Writes `bytes` to a hidden temporary file beside `dest` and syncs it.
    pub fn write(dest: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self> {
        let dest = dest.into();
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = dest.file_name().ok_or_else(|| Error::invalid("path", "a file path", dest.display()))?;
        let temp = dir.join(format!(".{}.{}.{}.partial", name.to_string_lossy(), std::process::id(), unique_suffix()));
        let this = PendingFile { temp, dest, committed: false };
        let mut f = File::create(&this.temp).map_err(|e| Error::io(&this.temp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&this.temp, e))?;
        f.sync_all().map_err(|e| Error::io(&this.temp, e))?;
        Ok(this)
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
        drop(p);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        PendingFile::write(&dest, b"abc").unwrap().commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        fs::remove_dir_all(&dir).unwrap();
    }
}
