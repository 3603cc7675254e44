//! A corpus of bad files, generated here, and the typed error each must give.
//! None may panic, hang or decode to garbage silently.

mod common;
use common::*;
use std::path::{Path, PathBuf};

use splitsound_core::{
    AudioBuffer, DecodeOptions, Error, OutputFormat, SampleEncoding, WriteOptions, decode_bytes, decode_file, encode,
    probe,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn good_wav(encoding: SampleEncoding) -> Vec<u8> {
    let a = AudioBuffer::new(44100, vec![noise(44100, 1, 0.5), noise(44100, 2, 0.5)]).unwrap();
    encode(&a, &WriteOptions { encoding, ..Default::default() }).unwrap()
}

fn good_flac() -> Vec<u8> {
    let a = AudioBuffer::new(44100, vec![noise(44100, 3, 0.5), noise(44100, 4, 0.5)]).unwrap();
    encode(&a, &WriteOptions { format: OutputFormat::Flac, ..Default::default() }).unwrap()
}

fn decode(p: &Path) -> Result<AudioBuffer, Error> {
    let r = std::panic::catch_unwind(|| decode_file(p, &DecodeOptions::default()));
    r.unwrap_or_else(|_| panic!("{} made the decoder panic", p.display()))
}

fn expect(p: &Path, codes: &[&str]) {
    match decode(p) {
        Ok(a) => panic!("{}: decoded {} frames instead of failing with {codes:?}", p.display(), a.frames()),
        Err(e) => {
            assert!(codes.contains(&e.code()), "{}: got {} ({e}), expected one of {codes:?}", p.display(), e.code())
        }
    }
    // probe must fail the same way or succeed, never panic.
    let _ = std::panic::catch_unwind(|| probe(p)).expect("probe panicked");
}

#[test]
fn empty_and_missing() {
    let d = scratch("bad_empty");
    expect(&write(&d, "empty.wav", b""), &["empty"]);
    expect(&d.join("does-not-exist.wav"), &["io"]);
    expect(&d, &["io", "invalid_argument"]);
}

#[test]
fn random_bytes_and_text() {
    let d = scratch("bad_random");
    for (i, len) in [1usize, 7, 100, 4096, 200_000].into_iter().enumerate() {
        let bytes: Vec<u8> = noise(len, 50 + i as u64, 1.0).iter().map(|x| (x * 127.0 + 128.0) as u8).collect();
        for ext in ["wav", "mp3", "flac", "m4a", "bin", "ogg"] {
            expect(
                &write(&d, &format!("random{len}.{ext}"), &bytes),
                &["unrecognized_format", "corrupt", "truncated", "empty"],
            );
        }
    }
    expect(&write(&d, "notes.wav", b"{\"this\": \"is json, not audio\"}\n"), &["unrecognized_format"]);
}

#[test]
fn truncated_files() {
    let d = scratch("bad_truncated");
    let wav = good_wav(SampleEncoding::I16);
    expect(&write(&d, "header-cut.wav", &wav[..20]), &["corrupt", "unrecognized_format", "truncated"]);
    expect(&write(&d, "half.wav", &wav[..wav.len() / 2]), &["truncated"]);
    expect(&write(&d, "odd-cut.wav", &wav[..wav.len() - 3]), &["truncated"]);
    let flac = good_flac();
    expect(&write(&d, "half.flac", &flac[..flac.len() / 2]), &["truncated", "corrupt"]);
    expect(&write(&d, "head.flac", &flac[..30]), &["corrupt", "unrecognized_format", "truncated"]);
    // The caller may accept a truncated file knowingly.
    let p = write(&d, "accepted.wav", &wav[..wav.len() / 2]);
    let a = decode_file(&p, &DecodeOptions { allow_truncated: true, ..Default::default() }).unwrap();
    assert!(a.frames() > 20_000 && a.frames() < 23_000, "{}", a.frames());
}

fn patch(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + value.len()].copy_from_slice(value);
    b
}

#[test]
fn absurd_headers() {
    let d = scratch("bad_headers");
    let wav = good_wav(SampleEncoding::I16);
    // Canonical 44-byte header: channels @22, rate @24, bits @34, data size @40.
    expect(
        &write(&d, "zero-channels.wav", &patch(&wav, 22, &0u16.to_le_bytes())),
        &["corrupt", "invalid_channels", "unsupported"],
    );
    expect(
        &write(&d, "zero-rate.wav", &patch(&wav, 24, &0u32.to_le_bytes())),
        &["corrupt", "unsupported_sample_rate", "unsupported"],
    );
    expect(&write(&d, "rate-1hz.wav", &patch(&wav, 24, &1u32.to_le_bytes())), &["unsupported_sample_rate", "corrupt"]);
    expect(
        &write(&d, "rate-4ghz.wav", &patch(&wav, 24, &4_000_000_000u32.to_le_bytes())),
        &["unsupported_sample_rate", "corrupt"],
    );
    expect(&write(&d, "bits-7.wav", &patch(&wav, 34, &7u16.to_le_bytes())), &["corrupt", "unsupported"]);
    expect(&write(&d, "huge-data.wav", &patch(&wav, 40, &0xFFFF_FFF0u32.to_le_bytes())), &["truncated", "corrupt"]);
    expect(
        &write(&d, "many-channels.wav", &patch(&wav, 22, &65535u16.to_le_bytes())),
        &["corrupt", "unsupported", "invalid_channels", "truncated"],
    );
}

#[test]
fn non_finite_samples() {
    let d = scratch("bad_nan");
    let mut a = AudioBuffer::new(44100, vec![noise(1000, 5, 0.5), noise(1000, 6, 0.5)]).unwrap();
    let bytes = encode(&a, &WriteOptions { encoding: SampleEncoding::F32, ..Default::default() }).unwrap();
    // Patch frame 123 of channel 1 to NaN and frame 500 of channel 0 to +inf in the data chunk.
    let data = bytes.len() - 1000 * 2 * 4;
    let mut b = patch(&bytes, data + (123 * 2 + 1) * 4, &f32::NAN.to_le_bytes());
    b = patch(&b, data + (500 * 2 + 1) * 4, &f32::INFINITY.to_le_bytes());
    let p = write(&d, "nan.wav", &b);
    match decode(&p) {
        Err(Error::NonFinite { channel: 1, frame: 123, .. }) => {}
        other => panic!("{other:?}"),
    }
    // The encoder refuses NaN too.
    a.channels_mut().next().unwrap()[3] = f32::NAN;
    assert!(matches!(encode(&a, &WriteOptions::default()), Err(Error::NonFinite { .. })));
}

#[test]
fn wrong_extension_is_fine_and_bytes_in_memory_work() {
    let d = scratch("bad_ext");
    let flac = good_flac();
    let a = decode(&write(&d, "really-flac.mp3", &flac)).unwrap();
    assert_eq!(a.frames(), 44100);
    let b = decode_bytes(flac.clone(), Some("wav"), &DecodeOptions::default()).unwrap();
    assert_eq!(a, b);
    assert!(matches!(decode_bytes(vec![], None, &DecodeOptions::default()), Err(Error::Empty { .. })));
}

/// Inputs the fuzzer found (core/tests/data/fuzz): each must give a typed error,
/// in release builds and, through the decoder's panic guard, in debug builds.
#[test]
fn fuzzer_findings() {
    let dir = common::repo_root().join("core/tests/data/fuzz");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let probed = splitsound_core::probe_bytes(bytes.clone(), None);
        assert!(
            matches!(probed, Err(Error::Corrupt { .. } | Error::UnrecognizedFormat { .. })),
            "{}: {probed:?}",
            path.display()
        );
        let decoded = splitsound_core::decode_bytes(bytes, None, &DecodeOptions::default());
        assert!(decoded.is_err(), "{}", path.display());
    }
}
