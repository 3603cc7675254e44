//! Probing reads headers only and must never panic on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = splitsound_core::probe_bytes(data.to_vec(), None) {
        assert!(info.channels > 0 && info.sample_rate >= splitsound_core::MIN_SAMPLE_RATE);
    }
});
