//! Writing: every format/encoding decodes back (by us and by FFmpeg) to the
//! quantised input; dither stays within one LSB; files appear atomically.

mod common;
use common::*;
use std::process::Command;

use splitsound_core::{
    AudioBuffer, ClipMode, DecodeOptions, OutputFormat, SampleEncoding, WriteOptions, decode_file, write_file,
};

fn signal() -> AudioBuffer {
    AudioBuffer::new(48000, vec![noise(48_001, 21, 0.9), noise(48_001, 22, 0.3), noise(48_001, 23, 0.6)]).unwrap()
}

#[test]
fn every_format_round_trips_through_us_and_ffmpeg() {
    require("ffmpeg");
    let dir = scratch("write_roundtrip");
    let src = signal();
    for (format, encoding, lsb) in [
        (OutputFormat::Wav, SampleEncoding::I16, 1.0 / 32768.0),
        (OutputFormat::Wav, SampleEncoding::I24, 1.0 / 8388608.0),
        (OutputFormat::Wav, SampleEncoding::F32, 0.0),
        (OutputFormat::Flac, SampleEncoding::I16, 1.0 / 32768.0),
        (OutputFormat::Flac, SampleEncoding::I24, 1.0 / 8388608.0),
    ] {
        let opts = WriteOptions { format, encoding, clip: ClipMode::None, dither: false };
        let path = dir.join(format!("out-{encoding:?}.{}", format.extension()));
        write_file(&path, &src, &opts).unwrap();
        let back = decode_file(&path, &DecodeOptions::default()).unwrap();
        assert_eq!((back.sample_rate(), back.num_channels(), back.frames()), (48000, 3, 48_001));
        for (a, b) in src.channels().iter().zip(back.channels()) {
            let err = max_abs_diff(a, b);
            assert!(err <= lsb * 0.5 + 1e-9, "{format:?}/{encoding:?}: error {err} > half an LSB");
        }
        // FFmpeg reads exactly what we read.
        let out =
            Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&path).args(["-f", "f32le", "-"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs: Vec<f32> = out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(max_abs_diff(&back.to_interleaved(), &theirs), 0.0, "{format:?}/{encoding:?} vs ffmpeg");
    }
}

/// WAVE_FORMAT_EXTENSIBLE where Microsoft's rule asks for it (more than two
/// channels, PCM above 16 bits), with the channel mask of ffmpeg's default
/// layout; plain PCM and float otherwise. ffprobe reads the tag, the bits and
/// the layout back; the samples round-trip as above.
#[test]
fn wav_headers_are_extensible_where_the_format_calls_for_it() {
    require("ffprobe");
    let dir = scratch("write_extensible");
    let probe = |path: &std::path::Path| -> serde_json::Value {
        let out =
            Command::new("ffprobe").args(["-v", "error", "-show_streams", "-of", "json"]).arg(path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["streams"][0].clone()
    };
    for (channels, encoding, extensible, codec, layout) in [
        // Plain PCM and float carry no speaker positions.
        (2, SampleEncoding::I16, false, "pcm_s16le", ""),
        (2, SampleEncoding::F32, false, "pcm_f32le", ""),
        (2, SampleEncoding::I24, true, "pcm_s24le", "stereo"),
        (1, SampleEncoding::I24, true, "pcm_s24le", "mono"),
        (6, SampleEncoding::I16, true, "pcm_s16le", "5.1"),
        (6, SampleEncoding::F32, true, "pcm_f32le", "5.1"),
        (8, SampleEncoding::I24, true, "pcm_s24le", "7.1"),
    ] {
        let audio = AudioBuffer::new(44100, (0..channels).map(|c| noise(4410, 30 + c as u64, 0.5)).collect()).unwrap();
        let opts = WriteOptions { format: OutputFormat::Wav, encoding, clip: ClipMode::None, dither: false };
        let path = dir.join(format!("{channels}-{encoding:?}.wav"));
        write_file(&path, &audio, &opts).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let tag = u16::from_le_bytes([bytes[20], bytes[21]]);
        assert_eq!(tag == 0xFFFE, extensible, "{channels} × {encoding:?}: format tag {tag:#x}");
        let s = probe(&path);
        assert_eq!(s["codec_name"], codec, "{channels} × {encoding:?}: {s}");
        assert_eq!(s["channels"], channels, "{channels} × {encoding:?}");
        let want = if layout.is_empty() { serde_json::Value::Null } else { layout.into() };
        assert_eq!(s["channel_layout"], want, "{channels} × {encoding:?}: {s}");
        let back = decode_file(&path, &DecodeOptions::default()).unwrap();
        assert_eq!((back.num_channels(), back.frames()), (channels, 4410));
        let lsb = if encoding == SampleEncoding::F32 { 0.0 } else { 1.0 / (1u32 << (encoding.bits() - 1)) as f32 };
        for (a, b) in audio.channels().iter().zip(back.channels()) {
            assert!(max_abs_diff(a, b) <= lsb * 0.5 + 1e-9, "{channels} × {encoding:?}");
        }
    }
}

#[test]
fn dither_is_tpdf_within_one_lsb_and_reproducible() {
    let dir = scratch("write_dither");
    let src = AudioBuffer::new(44100, vec![noise(20_000, 31, 0.5)]).unwrap();
    let opts = WriteOptions { dither: true, clip: ClipMode::None, ..Default::default() };
    let a = dir.join("a.wav");
    let b = dir.join("b.wav");
    write_file(&a, &src, &opts).unwrap();
    write_file(&b, &src, &opts).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let back = decode_file(&a, &DecodeOptions::default()).unwrap();
    let err: Vec<f32> = src.channel(0).iter().zip(back.channel(0)).map(|(x, y)| (y - x) * 32768.0).collect();
    assert!(err.iter().all(|e| e.abs() <= 1.5), "dither beyond 1.5 LSB");
    let mean = err.iter().sum::<f32>() / err.len() as f32;
    let var = err.iter().map(|e| (e - mean).powi(2)).sum::<f32>() / err.len() as f32;
    // TPDF of ±1 LSB plus rounding: variance 1/6 + 1/12 = 0.25 LSB².
    assert!(mean.abs() < 0.02 && (var - 0.25).abs() < 0.03, "mean {mean}, variance {var}");
}

#[test]
fn clipping_policies() {
    let dir = scratch("write_clip");
    let loud = AudioBuffer::new(44100, vec![vec![1.5, -2.0, 0.5, 0.0]]).unwrap();
    let read = |clip| {
        let p = dir.join("c.wav");
        write_file(&p, &loud, &WriteOptions { clip, encoding: SampleEncoding::F32, ..Default::default() }).unwrap();
        decode_file(&p, &DecodeOptions::default()).unwrap().channel(0).to_vec()
    };
    assert_eq!(read(ClipMode::None), vec![1.5, -2.0, 0.5, 0.0]);
    assert_eq!(read(ClipMode::Clamp), vec![0.99, -0.99, 0.5, 0.0]);
    let r = read(ClipMode::Rescale);
    assert!((r[1] + 2.0 / 2.02).abs() < 1e-6 && r.iter().all(|x| x.abs() < 1.0));
}

#[test]
fn failed_writes_leave_nothing() {
    let dir = scratch("write_atomic");
    let bad = AudioBuffer::new(44100, vec![vec![0.0, f32::NAN]]).unwrap();
    assert!(write_file(dir.join("x.wav"), &bad, &WriteOptions::default()).is_err());
    assert!(write_file(dir.join("missing-dir/x.wav"), &signal(), &WriteOptions::default()).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "partial files left behind");
}
