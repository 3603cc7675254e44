//! HT-Demucs and MDX-Net stream: segment by segment (for HT-Demucs every shift
//! and every model of a bag in flight together) they give what the whole-buffer
//! path gives, through the block API with awkward block sizes and through the
//! file job (with resampling and channel conversion on the way in and out).
#![cfg(feature = "onnx")]

mod common;
use common::*;

use splitsound_core::model::{NeuralOptions, NeuralSeparator};
use splitsound_core::stream::StreamSpec;
use splitsound_core::{
    AudioBuffer, ClipMode, FileJobOptions, SampleEncoding, SeparateOptions, Separator, Stems, WriteOptions,
    decode_file, separate_file, write_file,
};

/// Streams `audio` through `sep` in blocks of awkward sizes (after a first pass
/// when the stream asks for one).
fn stream_blocks(sep: &mut NeuralSeparator, audio: &AudioBuffer, stems: usize) -> Vec<AudioBuffer> {
    let rate = audio.sample_rate();
    let spec = StreamSpec { sample_rate: rate, channels: audio.num_channels(), frames: None };
    let mut stream = sep.stream(spec, SeparateOptions::default()).unwrap();
    let sizes = [1usize, 4096, 480, 30_011, 512, 64];
    let mut out: Option<Stems> = None;
    let mut push = |s: Stems| match &mut out {
        Some(o) => o.append(&s).unwrap(),
        None => out = Some(s),
    };
    let passes = if stream.needs_prepass() { 2 } else { 1 };
    for pass in (0..passes).rev() {
        let (mut pos, mut k) = (0, 0);
        while pos < audio.frames() {
            let n = sizes[k % sizes.len()].min(audio.frames() - pos);
            let block: Vec<&[f32]> = audio.channels().iter().map(|c| &c[pos..pos + n]).collect();
            if pass == 1 {
                stream.prepass(&block).unwrap();
            } else {
                push(stream.process(&block).unwrap());
            }
            pos += n;
            k += 1;
        }
    }
    push(stream.finish().unwrap());
    let out = out.unwrap();
    assert_eq!(out.len(), stems);
    assert!(out.iter().all(|(_, b)| b.sample_rate() == rate));
    out.into_vec().into_iter().map(|(_, b)| b).collect()
}

fn open(package: &std::path::Path, opts: NeuralOptions) -> NeuralSeparator {
    NeuralSeparator::builder(package).options(opts).build().unwrap()
}

fn load(package: &str, shifts: u32) -> NeuralSeparator {
    let opts = NeuralOptions { shifts: Some(shifts), seed: 11, overlap: Some(0.3), ..NeuralOptions::default() };
    NeuralSeparator::builder(repo_root().join("core/tests/data/neural/demucs").join(package))
        .options(opts)
        .build()
        .unwrap()
}

fn mix(rate: u32, secs: f32, channels: usize) -> AudioBuffer {
    let n = (rate as f32 * secs) as usize;
    let chans = (0..channels)
        .map(|c| {
            let hiss = noise(n, 3 + c as u64, 0.05);
            (0..n)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    0.4 * (2.0 * std::f32::consts::PI * (110.0 * (c + 1) as f32) * t).sin() * (t * 2.0).sin().abs()
                        + hiss[i]
                })
                .collect()
        })
        .collect();
    AudioBuffer::new(rate, chans).unwrap()
}

fn max_diff(a: &AudioBuffer, b: &AudioBuffer) -> f32 {
    assert_eq!((a.num_channels(), a.frames()), (b.num_channels(), b.frames()));
    max_abs_diff(&a.to_interleaved(), &b.to_interleaved())
}

#[test]
fn block_api_matches_whole_buffer_with_shifts_and_a_bag() {
    // 3.3 s of 0.5 s segments at overlap 0.3: many segments, a partial last one.
    let audio = mix(44_100, 3.3, 2);
    for (package, shifts) in [("ci.json", 0), ("ci.json", 2), ("bag.json", 1)] {
        let whole = load(package, shifts).separate(&audio, &SeparateOptions::default()).unwrap();
        let mut sep = load(package, shifts);
        for ((stem, w), got) in whole.iter().zip(stream_blocks(&mut sep, &audio, whole.len())) {
            let d = max_diff(w, &got);
            assert!(d <= 1e-6, "{package} shifts {shifts} {stem}: streamed output differs by {d}");
        }
    }
}

#[test]
fn mdx_block_api_matches_whole_buffer() {
    let package = repo_root().join("core/tests/data/neural/mdx/mdx-random.json");
    // 4.1 s of 0.72 s chunks: several chunks and short last ones; mono input.
    let audio = mix(44_100, 4.1, 1);
    for (overlap, denoise) in [(0.25, false), (0.0, false), (0.5, true)] {
        let opts = NeuralOptions { overlap: Some(overlap), denoise, ..NeuralOptions::default() };
        let whole = open(&package, opts.clone()).separate(&audio, &Default::default()).unwrap();
        let mut sep = open(&package, opts);
        for ((stem, w), got) in whole.iter().zip(stream_blocks(&mut sep, &audio, 2)) {
            let d = max_diff(w, &got);
            assert!(d <= 1e-6, "overlap {overlap} denoise {denoise} {stem}: streamed output differs by {d}");
        }
    }
}

#[test]
fn file_job_matches_whole_buffer_with_resampling() {
    let dir = scratch("stream-neural");
    let input = dir.join("mono32k.wav");
    let lossless = WriteOptions { encoding: SampleEncoding::F32, clip: ClipMode::None, ..Default::default() };
    write_file(&input, &mix(32_000, 2.7, 1), &lossless).unwrap();
    let decoded = decode_file(&input, &Default::default()).unwrap();
    let whole = load("bag.json", 1).separate(&decoded, &Default::default()).unwrap();
    let opts = FileJobOptions { write: lossless, ..Default::default() };
    let report = separate_file(&mut load("bag.json", 1), &input, &dir, &opts, &Default::default()).unwrap();
    assert_eq!(report.stems.len(), 4);
    for (w, (stem, expect)) in report.stems.iter().zip(whole.iter()) {
        assert_eq!(w.name, stem);
        let got = decode_file(&w.path, &Default::default()).unwrap();
        assert_eq!(got.sample_rate(), 32_000);
        let d = max_diff(expect, &got);
        assert!(d <= 1e-6, "{stem}: the file job's output differs by {d}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segmented_umx_streams_like_its_whole_buffer_path() {
    let package = repo_root().join("core/tests/data/neural/umx/umx-ci.json");
    // 40 s: three windows of a 10 s segment (13.9 s once on the Wiener grid).
    let audio = mix(44_100, 40.0, 2);
    let opts = NeuralOptions { segment_secs: Some(10.0), ..NeuralOptions::default() };
    let whole = open(&package, opts.clone()).separate(&audio, &Default::default()).unwrap();
    let mut sep = open(&package, opts);
    assert!(sep.stream_lag().is_some());
    for ((stem, w), got) in whole.iter().zip(stream_blocks(&mut sep, &audio, whole.len())) {
        let d = max_diff(w, &got);
        assert!(d <= 1e-6, "{stem}: streamed output differs by {d}");
    }
    // Against the reference way (the whole track at once), windows cost accuracy:
    // the LSTM sees 7 s of context instead of the whole track.
    let reference = NeuralSeparator::builder(&package).options(NeuralOptions::default()).build().unwrap();
    assert!(reference.stream_lag().is_none());
    let full = { reference }.separate(&audio, &Default::default()).unwrap();
    for ((stem, w), (_, f)) in whole.iter().zip(full.iter()) {
        let rel = max_diff(w, f) / f.peak();
        println!("umx {stem}: segmented vs whole, max difference {rel:.2e} of peak");
        // Measured: 1.6e-3 and 2.2e-3 of peak on this model.
        assert!(rel < 1e-2, "{stem}: segmented umx is {rel:.2e} of peak from the whole-track run");
    }
}
