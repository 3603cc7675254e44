//! Any bytes, any extension hint: decode must return audio or a typed error,
//! never panic, hang or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitsound_core::{DecodeOptions, decode_bytes};

const HINTS: &[Option<&str>] = &[None, Some("wav"), Some("mp3"), Some("flac"), Some("ogg"), Some("m4a"), Some("mkv")];

fuzz_target!(|data: &[u8]| {
    // The last byte picks the hint, so seed files keep their headers intact.
    let Some((&h, rest)) = data.split_last() else { return };
    let opts = DecodeOptions { max_duration_secs: Some(30.0), max_bytes: Some(1 << 20), ..Default::default() };
    if let Ok(a) = decode_bytes(rest.to_vec(), HINTS[h as usize % HINTS.len()], &opts) {
        assert!(a.frames() > 0 && a.num_channels() > 0);
        a.check_finite().unwrap();
    }
});
