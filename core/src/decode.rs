//! Decoding any supported container/codec to planar `f32` (symphonia).
//!
//! Formats: WAV (8/16/24/32-bit int, 32/64-bit float), AIFF, CAF, FLAC, MP3 (and
//! MP1/MP2), Ogg Vorbis, AAC and ALAC in MP4/M4A/MOV, MKV/WebM audio, ADTS AAC.
//! Video files (MP4, MOV, MKV, WebM) are accepted: the container's default audio
//! track is decoded and the video is skipped. Opus has no well-kept pure-Rust
//! decoder yet, so it is reported as [`Error::Unsupported`] naming the codec.
//!
//! Lossy streams are trimmed for gapless playback (encoder delay and padding from
//! the LAME/Xing header or the container) so lengths match FFmpeg's.
//!
//! [`StreamDecoder`] yields fixed-size blocks so a long file never sits in memory
//! whole; [`decode_file`] collects everything into one [`AudioBuffer`].

use std::fs::File;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::audio::{AudioBuffer, check_sample_rate};
use crate::error::{Error, Limit, Result};
use crate::mp4edit::{Edit, read_audio_edit};

/// Limits and behaviour for decoding untrusted input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeOptions {
    /// Refuse inputs larger than this many bytes (checked before reading).
    pub max_bytes: Option<u64>,
    /// Refuse inputs longer than this; checked against the header before decoding
    /// and again while decoding, for streams whose header does not say.
    pub max_duration_secs: Option<f64>,
    /// Return what could be decoded from a file that ends before its header's
    /// declared length instead of [`Error::Truncated`].
    pub allow_truncated: bool,
    /// Frames per block yielded by [`StreamDecoder`].
    pub block_frames: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_bytes: None, max_duration_secs: None, allow_truncated: false, block_frames: 1 << 16 }
    }
}

/// What [`probe`] learns from the headers, without decoding the stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MediaInfo {
    /// Short container name, e.g. `wav`, `flac`, `isomp4`, `mkv`, `ogg`, `mp3`.
    pub container: String,
    /// Short codec name, e.g. `pcm_s16le`, `flac`, `mp3`, `aac`, `vorbis`, `alac`.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Playable frames (encoder delay and padding excluded) when the header says.
    pub frames: Option<u64>,
    pub duration_secs: Option<f64>,
    /// Bits per sample of the coded stream, for PCM and lossless codecs.
    pub bits_per_sample: Option<u32>,
    /// Number of tracks of any kind in the container (audio, video, subtitles).
    pub tracks: usize,
    /// Size of the input in bytes, when known.
    pub bytes: Option<u64>,
}

/// Reads the headers of a file and reports its format, without decoding it whole.
pub fn probe(path: impl AsRef<Path>) -> Result<MediaInfo> {
    let opts = DecodeOptions::default();
    Ok(StreamDecoder::open(path, &opts)?.info().clone())
}

/// Like [`probe`], for bytes in memory. `extension` is an optional hint (`"mp3"`).
pub fn probe_bytes(bytes: Vec<u8>, extension: Option<&str>) -> Result<MediaInfo> {
    let opts = DecodeOptions::default();
    Ok(StreamDecoder::from_bytes(bytes, extension, &opts)?.info().clone())
}

/// Decodes a whole file to one buffer at its own rate and channel count.
pub fn decode_file(path: impl AsRef<Path>, opts: &DecodeOptions) -> Result<AudioBuffer> {
    StreamDecoder::open(path, opts)?.collect_all()
}

/// Decodes a whole in-memory file. `extension` is an optional hint (`"mp3"`).
pub fn decode_bytes(bytes: Vec<u8>, extension: Option<&str>, opts: &DecodeOptions) -> Result<AudioBuffer> {
    StreamDecoder::from_bytes(bytes, extension, opts)?.collect_all()
}

/// A decoder that yields blocks of [`DecodeOptions::block_frames`] frames.
///
/// Memory held is one block plus the codec's state, whatever the stream's length.
pub struct StreamDecoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: MediaInfo,
    opts: DecodeOptions,
    max_packet_frames: u64,
    /// The header's frame count is exact (PCM, FLAC), not rounded to packets.
    exact_length: bool,
    /// Frames still to drop from the start (MP4 edit list).
    skip_frames: u64,
    /// Packets from this timestamp on are dropped (MP4 edit list).
    end_pts: Option<i64>,
    /// Decoded samples not yet handed out.
    pending: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    decoded_frames: u64,
    finished: bool,
}

/// Consecutive undecodable packets after which the stream is declared corrupt.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 64;

impl StreamDecoder {
    /// Opens a file and reads its headers.
    pub fn open(path: impl AsRef<Path>, opts: &DecodeOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if path.is_dir() {
            return Err(Error::invalid("path", "a file", format!("directory {}", path.display())));
        }
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let edit = File::open(path).ok().and_then(|mut f| read_audio_edit(&mut f, len));
        let mut first = Some(file);
        let source = || -> Result<Box<dyn MediaSource>> {
            match first.take() {
                Some(f) => Ok(Box::new(f)),
                None => Ok(Box::new(File::open(path).map_err(|e| Error::io(path, e))?)),
            }
        };
        Self::from_source(source, len, ext.as_deref(), edit, opts)
    }

    /// Reads headers from bytes in memory.
    pub fn from_bytes(bytes: Vec<u8>, extension: Option<&str>, opts: &DecodeOptions) -> Result<Self> {
        let len = bytes.len() as u64;
        let edit = read_audio_edit(&mut Cursor::new(&bytes[..]), len);
        let bytes: Arc<[u8]> = bytes.into();
        let source = || -> Result<Box<dyn MediaSource>> { Ok(Box::new(Cursor::new(Arc::clone(&bytes)))) };
        Self::from_source(source, len, extension, edit, opts)
    }

    /// `source` is called once, or twice when probing with the extension hint
    /// fails (a FLAC file named `.wav`) and we retry by content alone.
    fn from_source(
        mut source: impl FnMut() -> Result<Box<dyn MediaSource>>,
        len: u64,
        extension: Option<&str>,
        edit: Option<Edit>,
        opts: &DecodeOptions,
    ) -> Result<Self> {
        if opts.block_frames == 0 {
            return Err(Error::invalid("block_frames", "at least 1", 0));
        }
        if len == 0 {
            return Err(Error::Empty { what: "input file".into() });
        }
        if let Some(max) = opts.max_bytes
            && len > max
        {
            return Err(Error::TooLarge { limit: Limit::Bytes, max: max as f64, actual: len as f64 });
        }
        let probe = |source: Box<dyn MediaSource>, ext: Option<&str>| {
            let mut hint = Hint::new();
            if let Some(ext) = ext {
                hint.with_extension(ext);
            }
            let mss = MediaSourceStream::new(source, Default::default());
            symphonia::default::get_probe().probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        };
        let format = guarded("reading the container", || {
            match probe(source()?, extension) {
                Err(_) if extension.is_some() => probe(source()?, None),
                other => other,
            }
            .map_err(|e| match e {
                SymError::Unsupported(_) => Error::UnrecognizedFormat { hint: extension.map(str::to_owned) },
                other => map_header_error(other),
            })
        })?;
        let container = format.format_info().short_name.to_string();
        let tracks = format.tracks().len();

        let track = select_audio_track(format.as_ref())?;
        let params = track.codec_params.as_ref().and_then(CodecParameters::audio).ok_or(Error::NoAudioTrack)?.clone();
        let codec_name = codec_name(params.codec);
        let decoder = codecs().make_audio_decoder(&params, &AudioDecoderOptions::default()).map_err(|e| match e {
            SymError::Unsupported(_) => unsupported_codec(&codec_name),
            other => map_header_error(other),
        })?;
        let mut frames = track.num_frames;
        // MP4/MOV: apply the edit list as FFmpeg does (symphonia parses but ignores it).
        // The start is trimmed to the frame; the end, like FFmpeg, by dropping the
        // packets that start after the edit (so lengths match FFmpeg's).
        let mut trim = (0u64, None);
        if let (Some(e), Some(rate), true) = (edit, params.sample_rate, container == "isomp4") {
            let to_frames = |t: u64| (t as u128 * rate as u128 / e.media_timescale as u128) as u64;
            let end_ts = (e.skip + e.duration) as u128 * track.time_base.map_or(0, |tb| tb.denom.get() as u128)
                / (e.media_timescale as u128 * track.time_base.map_or(1, |tb| tb.numer.get() as u128)).max(1);
            trim = (to_frames(e.skip), (end_ts > 0).then_some(end_ts as i64));
            frames = Some(to_frames(e.duration));
        }
        let duration_secs = match (track.time_base, track.duration, params.sample_rate, frames) {
            (_, _, Some(sr), Some(n)) if sr > 0 => Some(n as f64 / sr as f64),
            (Some(tb), Some(d), _, _) => tb.calc_duration(d).map(|t| t.as_secs_f64()),
            _ => None,
        };
        let track_id = track.id;
        if params.sample_rate == Some(0) {
            return Err(Error::UnsupportedSampleRate {
                rate: 0,
                min: crate::MIN_SAMPLE_RATE,
                max: crate::MAX_SAMPLE_RATE,
            });
        }
        let exact_length = codec_name.starts_with("pcm_") || params.codec == CODEC_ID_FLAC;
        let max_packet_frames = params.max_frames_per_packet.unwrap_or(8192);

        if let (Some(max), Some(d)) = (opts.max_duration_secs, duration_secs)
            && d > max
        {
            return Err(Error::TooLarge { limit: Limit::DurationSecs, max, actual: d });
        }

        let mut this = StreamDecoder {
            format,
            decoder,
            track_id,
            info: MediaInfo {
                container,
                codec: codec_name,
                sample_rate: params.sample_rate.unwrap_or(0),
                channels: params.channels.as_ref().map_or(0, |c| c.count()),
                frames,
                duration_secs,
                bits_per_sample: params.bits_per_sample,
                tracks,
                bytes: Some(len),
            },
            opts: opts.clone(),
            max_packet_frames,
            exact_length,
            skip_frames: trim.0,
            end_pts: trim.1,
            pending: Vec::new(),
            scratch: Vec::new(),
            decoded_frames: 0,
            finished: false,
        };
        // Some streams only reveal rate or channels in their first packet.
        if this.info.sample_rate == 0 || this.info.channels == 0 {
            this.fill(1)?;
            if this.pending.is_empty() || this.info.sample_rate == 0 {
                return Err(Error::Empty { what: "audio stream".into() });
            }
        }
        if this.info.channels == 0 {
            return Err(Error::InvalidChannels { detail: "the stream declares zero channels".into() });
        }
        check_sample_rate(this.info.sample_rate)?;
        Ok(this)
    }

    /// Format facts read from the headers.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// Frames handed out so far plus frames buffered.
    pub fn decoded_frames(&self) -> u64 {
        self.decoded_frames
    }

    /// The next block of up to `block_frames` frames; `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<AudioBuffer>> {
        let want = self.opts.block_frames;
        self.fill(want)?;
        let have = self.pending.first().map_or(0, Vec::len);
        if have == 0 {
            return Ok(None);
        }
        let take = have.min(want);
        let block: Vec<Vec<f32>> = self
            .pending
            .iter_mut()
            .map(|c| {
                let rest = c.split_off(take);
                std::mem::replace(c, rest)
            })
            .collect();
        AudioBuffer::new(self.info.sample_rate, block).map(Some)
    }

    /// Decodes everything that is left into one buffer.
    pub fn collect_all(mut self) -> Result<AudioBuffer> {
        // Decode straight into the pending buffers, reserved from the header's
        // length when it is known, instead of going through blocks.
        if let Some(n) = self.info.frames {
            let n = n.min(1 << 28) as usize;
            if self.pending.len() != self.info.channels {
                self.pending = vec![Vec::new(); self.info.channels];
            }
            self.pending.iter_mut().for_each(|c| c.reserve_exact(n.saturating_sub(c.len())));
        }
        self.fill(usize::MAX)?;
        let out = std::mem::take(&mut self.pending);
        if out.first().is_none_or(Vec::is_empty) {
            return Err(Error::Empty { what: "decoded audio".into() });
        }
        AudioBuffer::new(self.info.sample_rate, out)
    }

    /// Decodes packets until `want` frames are pending or the stream ends.
    fn fill(&mut self, want: usize) -> Result<()> {
        let mut bad_packets = 0usize;
        let mut hit_eof_error = false;
        while !self.finished && self.pending.first().map_or(0, Vec::len) < want {
            let format = &mut self.format;
            let next = guarded("reading a packet", || Ok(format.next_packet()))?;
            let packet = match next {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.finished = true;
                    break;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    hit_eof_error = true;
                    self.finished = true;
                    break;
                }
                Err(SymError::ResetRequired) => {
                    // A chained Ogg stream changed its track list: treat as the end
                    // of the first logical stream, as most players do.
                    self.finished = true;
                    break;
                }
                Err(SymError::DecodeError(d)) => {
                    bad_packets += 1;
                    if bad_packets > MAX_CONSECUTIVE_BAD_PACKETS {
                        return Err(Error::Corrupt { detail: d.to_string() });
                    }
                    continue;
                }
                Err(e) => return Err(map_stream_error(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            if self.end_pts.is_some_and(|e| packet.pts.get() >= e) {
                self.finished = true;
                break;
            }
            let decoder = &mut self.decoder;
            let decoded = guarded("decoding a packet", || Ok(decoder.decode(&packet)))?;
            match decoded {
                Ok(buf) => {
                    bad_packets = 0;
                    let spec = buf.spec();
                    let (rate, channels) = (spec.rate(), spec.channels().count());
                    if buf.frames() == 0 {
                        continue;
                    }
                    if self.info.sample_rate == 0 {
                        self.info.sample_rate = rate;
                    }
                    if self.info.channels == 0 {
                        self.info.channels = channels;
                    }
                    if channels != self.info.channels || rate != self.info.sample_rate {
                        return Err(Error::Unsupported {
                            what: format!(
                                "stream that changes format mid-way ({}ch/{}Hz → {channels}ch/{rate}Hz)",
                                self.info.channels, self.info.sample_rate
                            ),
                            suggestion: None,
                        });
                    }
                    if self.pending.len() != channels {
                        self.pending = vec![Vec::with_capacity(want.min(1 << 20)); channels];
                    }
                    let n = buf.frames();
                    let skip = self.skip_frames.min(n as u64) as usize;
                    self.skip_frames -= skip as u64;
                    let start = self.pending[0].len();
                    if skip == 0 {
                        // Convert straight into the pending buffers.
                        self.pending.iter_mut().for_each(|p| p.resize(start + n, 0.0));
                        let mut tails: Vec<&mut [f32]> = self.pending.iter_mut().map(|p| &mut p[start..]).collect();
                        buf.copy_to_slice_planar::<f32, _>(&mut tails);
                    } else {
                        buf.copy_to_vecs_planar::<f32>(&mut self.scratch);
                        for (p, s) in self.pending.iter_mut().zip(&self.scratch) {
                            p.extend_from_slice(&s[skip..]);
                        }
                    }
                    for (ch, p) in self.pending.iter().enumerate() {
                        let new = &p[start..];
                        if let Some(i) = new.iter().position(|x| !x.is_finite()) {
                            let frame = (self.decoded_frames + i as u64) as usize;
                            return Err(Error::NonFinite { channel: ch, frame, value: new[i] });
                        }
                    }
                    let (end, skip) = (n as u64, skip as u64);
                    self.decoded_frames += end - skip;
                    if let Some(max) = self.opts.max_duration_secs {
                        let secs = self.decoded_frames as f64 / self.info.sample_rate as f64;
                        if secs > max {
                            return Err(Error::TooLarge { limit: Limit::DurationSecs, max, actual: secs });
                        }
                    }
                }
                Err(SymError::DecodeError(d)) => {
                    bad_packets += 1;
                    if bad_packets > MAX_CONSECUTIVE_BAD_PACKETS {
                        return Err(Error::Corrupt { detail: d.to_string() });
                    }
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    hit_eof_error = true;
                    self.finished = true;
                }
                Err(e) => return Err(map_stream_error(e)),
            }
        }
        if self.finished && !self.opts.allow_truncated {
            self.check_complete(hit_eof_error)?;
        }
        Ok(())
    }

    fn check_complete(&self, hit_eof_error: bool) -> Result<()> {
        let Some(expected) = self.info.frames else {
            return Ok(());
        };
        // Headers may round the length to whole packets (CAF, lossy codecs), so a
        // shortfall within one packet counts only if the file ended abruptly.
        let tolerance = if self.exact_length { 0 } else { self.max_packet_frames };
        let short = self.decoded_frames + tolerance < expected;
        if short || (hit_eof_error && self.decoded_frames < expected) {
            return Err(Error::Truncated { expected_frames: expected, decoded_frames: self.decoded_frames });
        }
        Ok(())
    }
}

impl Iterator for StreamDecoder {
    type Item = Result<AudioBuffer>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// symphonia's codecs, plus libopus when the `opus` feature is on.
/// Runs a step of a third-party parser, turning a panic inside it into
/// [`Error::Corrupt`]. Such panics are arithmetic overflows on hostile headers
/// that only trap in builds with overflow checks (debug builds); release builds
/// wrap and report the bad header as an error on their own.
fn guarded<T>(what: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Corrupt { detail: format!("{what} failed on this input ({why})") })
    })
}

fn codecs() -> &'static symphonia::core::codecs::registry::CodecRegistry {
    #[cfg(feature = "opus")]
    {
        use std::sync::OnceLock;
        static REGISTRY: OnceLock<symphonia::core::codecs::registry::CodecRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let mut r = symphonia::core::codecs::registry::CodecRegistry::new();
            symphonia::default::register_enabled_codecs(&mut r);
            r.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
            r
        })
    }
    #[cfg(not(feature = "opus"))]
    symphonia::default::get_codecs()
}

fn select_audio_track(format: &dyn FormatReader) -> Result<&Track> {
    if let Some(t) = format.default_track(TrackType::Audio) {
        return Ok(t);
    }
    // An audio track whose codec has no decoder: name it.
    let unknown = format.tracks().iter().find_map(|t| t.codec_params.as_ref().and_then(CodecParameters::audio));
    match unknown {
        Some(p) => Err(unsupported_codec(&codec_name(p.codec))),
        None => Err(Error::NoAudioTrack),
    }
}

fn unsupported_codec(name: &str) -> Error {
    let suggestion = if name == "opus" && cfg!(not(feature = "opus")) {
        "this build has no Opus decoder: enable splitsound-core's `opus` feature, or convert first, e.g. `ffmpeg -i INPUT -c:a flac OUTPUT.flac`"
    } else {
        "convert it first, e.g. `ffmpeg -i INPUT -c:a flac OUTPUT.flac`"
    };
    Error::Unsupported { what: format!("codec `{name}`"), suggestion: Some(suggestion.into()) }
}

fn map_header_error(e: SymError) -> Error {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt { detail: "the file ends inside its header (truncated?)".into() }
        }
        SymError::IoError(io) => Error::Io { path: None, source: io },
        SymError::DecodeError(d) => Error::Corrupt { detail: d.to_string() },
        SymError::LimitError(d) => Error::Corrupt { detail: format!("header exceeds a decoder limit: {d}") },
        SymError::Unsupported(d) => Error::Unsupported { what: d.to_string(), suggestion: None },
        other => Error::Corrupt { detail: other.to_string() },
    }
}

fn map_stream_error(e: SymError) -> Error {
    match e {
        SymError::IoError(io) => Error::Io { path: None, source: io },
        SymError::Unsupported(d) => Error::Unsupported { what: d.to_string(), suggestion: None },
        other => Error::Corrupt { detail: other.to_string() },
    }
}

/// FFmpeg-style short name of a codec id.
fn codec_name(id: AudioCodecId) -> String {
    let known: &[(AudioCodecId, &str)] = &[
        (CODEC_ID_PCM_S32LE, "pcm_s32le"),
        (CODEC_ID_PCM_S32BE, "pcm_s32be"),
        (CODEC_ID_PCM_S24LE, "pcm_s24le"),
        (CODEC_ID_PCM_S24BE, "pcm_s24be"),
        (CODEC_ID_PCM_S16LE, "pcm_s16le"),
        (CODEC_ID_PCM_S16BE, "pcm_s16be"),
        (CODEC_ID_PCM_S8, "pcm_s8"),
        (CODEC_ID_PCM_U8, "pcm_u8"),
        (CODEC_ID_PCM_U16LE, "pcm_u16le"),
        (CODEC_ID_PCM_U24LE, "pcm_u24le"),
        (CODEC_ID_PCM_U32LE, "pcm_u32le"),
        (CODEC_ID_PCM_F32LE, "pcm_f32le"),
        (CODEC_ID_PCM_F32BE, "pcm_f32be"),
        (CODEC_ID_PCM_F64LE, "pcm_f64le"),
        (CODEC_ID_PCM_F64BE, "pcm_f64be"),
        (CODEC_ID_PCM_ALAW, "pcm_alaw"),
        (CODEC_ID_PCM_MULAW, "pcm_mulaw"),
        (CODEC_ID_ADPCM_MS, "adpcm_ms"),
        (CODEC_ID_ADPCM_IMA_WAV, "adpcm_ima_wav"),
        (CODEC_ID_ADPCM_IMA_QT, "adpcm_ima_qt"),
        (CODEC_ID_VORBIS, "vorbis"),
        (CODEC_ID_OPUS, "opus"),
        (CODEC_ID_SPEEX, "speex"),
        (CODEC_ID_MP1, "mp1"),
        (CODEC_ID_MP2, "mp2"),
        (CODEC_ID_MP3, "mp3"),
        (CODEC_ID_AAC, "aac"),
        (CODEC_ID_AC3, "ac3"),
        (CODEC_ID_EAC3, "eac3"),
        (CODEC_ID_DCA, "dts"),
        (CODEC_ID_WMA, "wma"),
        (CODEC_ID_FLAC, "flac"),
        (CODEC_ID_WAVPACK, "wavpack"),
        (CODEC_ID_MONKEYS_AUDIO, "ape"),
        (CODEC_ID_ALAC, "alac"),
        (CODEC_ID_TTA, "tta"),
        (CODEC_ID_TRUEHD, "truehd"),
    ];
    known.iter().find(|(k, _)| *k == id).map(|(_, n)| n.to_string()).unwrap_or_else(|| format!("{id}"))
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("info", &self.info)
            .field("decoded_frames", &self.decoded_frames)
            .finish_non_exhaustive()
    }
}
