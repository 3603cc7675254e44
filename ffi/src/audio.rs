//! Probing and decoding files into planar float audio.

use std::ffi::c_char;

use splitsound_core::{AudioBuffer, DecodeOptions, MediaInfo};

use crate::handle::{free_handle, get, give, handle};
use crate::status::{Failure, guard, splitsound_status};
use crate::strings::{arg_path, arg_str, need, put};

/// Limits on what decoding accepts; zero means no limit. Pass NULL for none.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct splitsound_decode_limits {
    /// Largest input in bytes.
    pub max_bytes: u64,
    /// Longest input in seconds.
    pub max_duration_secs: f64,
    /// Keep the decodable part of a file that ends before its header says,
    /// instead of failing with `SPLITSOUND_STATUS_TRUNCATED`.
    pub allow_truncated: bool,
}

/// What `splitsound_probe` found. Unknown numbers are 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct splitsound_media_info {
    pub sample_rate: u32,
    pub channels: u32,
    /// Frames per channel as declared by the container (0 when unknown).
    pub frames: u64,
    /// Duration in seconds (0 when unknown).
    pub duration_secs: f64,
    /// Bits per sample of the source codec (0 when not applicable).
    pub bits_per_sample: u32,
    /// Audio tracks in the container.
    pub tracks: u32,
    /// Size of the input in bytes.
    pub bytes: u64,
    /// Container name (`"wav"`, `"flac"`, `"mp4"`, …), NUL-terminated, truncated to fit.
    pub container: [c_char; 32],
    /// Codec name (`"pcm_s16le"`, `"flac"`, `"aac"`, …), NUL-terminated, truncated to fit.
    pub codec: [c_char; 32],
}

/// Decoded audio: planar 32-bit float at the file's rate and channel count.
/// Thread safety: a `const` handle may be read from several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct splitsound_audio {
    pub(crate) buf: AudioBuffer,
}

pub(crate) fn decode_options(limits: Option<&splitsound_decode_limits>) -> Result<DecodeOptions, Failure> {
    let mut o = DecodeOptions::default();
    if let Some(l) = limits {
        if l.max_duration_secs.is_nan() || l.max_duration_secs < 0.0 {
            return Err(Failure::invalid(format!(
                "max_duration_secs must be 0 or positive, got {}",
                l.max_duration_secs
            )));
        }
        o.max_bytes = (l.max_bytes > 0).then_some(l.max_bytes);
        o.max_duration_secs = (l.max_duration_secs > 0.0).then_some(l.max_duration_secs);
        o.allow_truncated = l.allow_truncated;
    }
    Ok(o)
}

fn fixed_name(s: &str) -> [c_char; 32] {
    let mut out = [0 as c_char; 32];
    // Truncate on a character boundary, leaving room for the NUL.
    let mut end = s.len().min(31);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..end]) {
        *o = *b as c_char;
    }
    out
}

fn media_info(i: &MediaInfo) -> splitsound_media_info {
    splitsound_media_info {
        sample_rate: i.sample_rate,
        channels: i.channels as u32,
        frames: i.frames.unwrap_or(0),
        duration_secs: i.duration_secs.unwrap_or(0.0),
        bits_per_sample: i.bits_per_sample.unwrap_or(0),
        tracks: i.tracks as u32,
        bytes: i.bytes.unwrap_or(0),
        container: fixed_name(&i.container),
        codec: fixed_name(&i.codec),
    }
}

/// Reads a file's format, rate, channels and length without decoding it.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_probe(path: *const c_char, out: *mut splitsound_media_info) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller passes a string or NULL.
        let path = unsafe { arg_path(path, "path") }?;
        need(out, "out")?;
        let info = splitsound_core::probe(path)?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { put(out, media_info(&info)) };
        Ok(())
    })
}

fn boxed(buf: AudioBuffer, out: *mut *mut splitsound_audio) {
    give(splitsound_audio { buf }, out)
}

/// Decodes a whole file (WAV, FLAC, MP3, AAC/M4A, Ogg Vorbis, Opus where built
/// in, AIFF, …) into `*out`, which the caller frees with `splitsound_audio_free`.
/// `limits` may be NULL.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_decode_file(
    path: *const c_char,
    limits: *const splitsound_decode_limits,
    out: *mut *mut splitsound_audio,
) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller passes a string or NULL, and `limits` NULL or valid.
        let (path, limits) = unsafe { (arg_path(path, "path")?, limits.as_ref()) };
        need(out, "out")?;
        let buf = splitsound_core::decode_file(path, &decode_options(limits)?)?;
        boxed(buf, out);
        Ok(())
    })
}

/// Decodes an in-memory file of `len` bytes. `extension` (`"mp3"`, may be NULL)
/// helps recognise formats without a signature. `limits` may be NULL.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_decode_memory(
    data: *const u8,
    len: usize,
    extension: *const c_char,
    limits: *const splitsound_decode_limits,
    out: *mut *mut splitsound_audio,
) -> splitsound_status {
    guard(|| {
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        need(out, "out")?;
        // SAFETY: `data` holds `len` bytes; `extension` is NULL or a string; `limits` NULL or valid.
        let (bytes, ext, limits) = unsafe {
            let ext = if extension.is_null() { None } else { Some(arg_str(extension, "extension")?) };
            (std::slice::from_raw_parts(data, len).to_vec(), ext, limits.as_ref())
        };
        let buf = splitsound_core::decode_bytes(bytes, ext, &decode_options(limits)?)?;
        boxed(buf, out);
        Ok(())
    })
}

/// Frees decoded audio; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_free(audio: *mut splitsound_audio) {
    // SAFETY: NULL or a handle from splitsound_decode_*, freed once.
    unsafe { free_handle(audio) }
}

/// Sample rate in Hz.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_sample_rate(
    audio: *const splitsound_audio,
    out: *mut u32,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(audio, "audio", out, |a| Ok(a.buf.sample_rate())) }
}

/// Number of channels.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_channels(
    audio: *const splitsound_audio,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(audio, "audio", out, |a| Ok(a.buf.num_channels())) }
}

/// Frames per channel.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_frames(audio: *const splitsound_audio, out: *mut usize) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(audio, "audio", out, |a| Ok(a.buf.frames())) }
}

/// Borrows channel `channel`: `*out_data` points to `*out_frames` floats owned
/// by `audio`, valid until `splitsound_audio_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_channel(
    audio: *const splitsound_audio,
    channel: usize,
    out_data: *mut *const f32,
    out_frames: *mut usize,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a live handle or NULL.
        let a = unsafe { handle(audio, "audio") }?;
        need(out_data, "out_data")?;
        need(out_frames, "out_frames")?;
        let ch = crate::strings::nth(a.buf.channels(), channel, "channel")?;
        // SAFETY: both checked non-NULL.
        unsafe {
            put(out_data, ch.as_ptr());
            put(out_frames, ch.len());
        }
        Ok(())
    })
}

/// Copies the audio interleaved (frame by frame) into `buf` of `len` floats and
/// the count written into `*out_n` (may be NULL). Too small:
/// `BUFFER_TOO_SMALL`, `*out_n` = floats needed, `buf` untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_audio_copy_interleaved(
    audio: *const splitsound_audio,
    buf: *mut f32,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a live handle or NULL.
        let a = unsafe { handle(audio, "audio") }?;
        let (channels, frames) = (a.buf.num_channels(), a.buf.frames());
        let needed = channels * frames;
        if len < needed {
            // SAFETY: NULL or valid by contract.
            unsafe { put(out_n, needed) };
            return Err(Failure::new(
                splitsound_status::BufferTooSmall,
                format!("a buffer of {len} floats; {needed} needed ({channels} channels × {frames} frames)"),
            ));
        }
        if buf.is_null() {
            return Err(Failure::null("buf"));
        }
        if !buf.is_aligned() {
            return Err(Failure::invalid("`buf` is not aligned for float"));
        }
        // SAFETY: `buf` holds `len` ≥ `needed` floats by contract; it cannot overlap `a`,
        // which the caller does not own memory of.
        splitsound_core::interleave_into(a.buf.channels(), unsafe { std::slice::from_raw_parts_mut(buf, needed) });
        // SAFETY: NULL or valid.
        unsafe { put(out_n, needed) };
        Ok(())
    })
}
