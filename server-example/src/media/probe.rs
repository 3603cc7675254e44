//! Checking an upload before it becomes an asset: it must decode from start
//! to end, have sound in it, and last no longer than the limit.

use std::path::Path;

use splitsound_core::{DecodeOptions, StreamDecoder};

use crate::error::ServiceError;

#[derive(Debug, Clone)]
pub struct MediaProbe {
    pub duration_secs: f64,
    pub sample_rate: u32,
    pub channels: usize,
    pub container: String,
    pub codec: String,
}

/// Decodes the whole file (block by block, in constant memory) rather than
/// trusting its header, which may lie about the length or hide a corrupt body.
pub fn probe_media(path: &Path, max_duration_secs: f64) -> Result<MediaProbe, ServiceError> {
    let undecodable = |e: splitsound_core::Error| {
        if let splitsound_core::Error::TooLarge { .. } = e {
            ServiceError::unprocessable("too_long", format!("files up to {max_duration_secs} s: {e}"))
        } else {
            ServiceError::unprocessable("undecodable", format!("not audio we can decode ({}): {e}", e.code()))
        }
    };
    let opts = DecodeOptions { max_duration_secs: Some(max_duration_secs), ..DecodeOptions::default() };
    let mut dec = StreamDecoder::open(path, &opts).map_err(undecodable)?;
    let info = dec.info().clone();
    while dec.next_block().map_err(undecodable)?.is_some() {}
    let frames = dec.decoded_frames();
    if frames == 0 {
        return Err(ServiceError::unprocessable("no_audio", "the file has an audio track but no samples"));
    }
    let duration_secs = frames as f64 / info.sample_rate as f64;
    if duration_secs > max_duration_secs {
        return Err(ServiceError::unprocessable(
            "too_long",
            format!("files up to {max_duration_secs} s; this one lasts {duration_secs:.1} s"),
        ));
    }
    Ok(MediaProbe {
        duration_secs,
        sample_rate: info.sample_rate,
        channels: info.channels,
        container: info.container,
        codec: info.codec,
    })
}
