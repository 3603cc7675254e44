//! The streaming paths give what the whole-buffer path gives: the block API
//! with awkward block sizes, and the file job (decode → separate → encode on
//! three threads), for every built-in, over inputs several windows long.

use std::path::PathBuf;

use splitsound_core::stream::StreamSpec;
use splitsound_core::{
    AudioBuffer, ClipMode, FileJobOptions, SampleEncoding, SeparateOptions, StemSelection, Stems, WriteOptions,
    decode_file, load_separator, separate_file, write_file,
};

/// A reproducible test signal: tones that come and go over noise, with a
/// different mix in each channel, so every separator has work to do.
fn signal(rate: u32, secs: f32, channels: usize) -> AudioBuffer {
    let n = (rate as f32 * secs) as usize;
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let chans = (0..channels)
        .map(|c| {
            (0..n)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    let gate = if (t * 1.7) as usize % 3 == c % 3 { 1.0 } else { 0.3 };
                    0.3 * gate * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * c as f32) * t).sin()
                        + 0.1 * (2.0 * std::f32::consts::PI * 3.0 * t).sin().max(0.0) * noise()
                })
                .collect()
        })
        .collect();
    AudioBuffer::new(rate, chans).unwrap()
}

fn max_diff(a: &AudioBuffer, b: &AudioBuffer) -> f32 {
    assert_eq!((a.num_channels(), a.frames()), (b.num_channels(), b.frames()));
    a.channels().iter().flatten().zip(b.channels().iter().flatten()).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ss-stream-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn block_api_matches_whole_buffer_for_builtins() {
    // 50 s: three windows of the built-ins' 20 s cores.
    let audio = signal(16_000, 50.0, 2);
    for name in ["hpss", "center", "repet"] {
        let whole = load_separator(name, Default::default()).unwrap().separate(&audio, &Default::default()).unwrap();
        let mut sep = load_separator(name, Default::default()).unwrap();
        let spec = StreamSpec { sample_rate: 16_000, channels: 2, frames: Some(audio.frames() as u64) };
        let mut stream = sep.stream(spec, SeparateOptions::default()).unwrap();
        let sizes = [1usize, 4097, 64, 100_003, 512, 31];
        let (mut pos, mut k) = (0, 0);
        let mut out: Option<Stems> = None;
        let mut push = |s: Stems| match &mut out {
            Some(o) => o.append(&s).unwrap(),
            None => out = Some(s),
        };
        while pos < audio.frames() {
            let n = sizes[k % sizes.len()].min(audio.frames() - pos);
            let block: Vec<&[f32]> = audio.channels().iter().map(|c| &c[pos..pos + n]).collect();
            push(stream.process(&block).unwrap());
            pos += n;
            k += 1;
        }
        push(stream.finish().unwrap());
        let out = out.unwrap();
        assert_eq!(out.names().collect::<Vec<_>>(), whole.names().collect::<Vec<_>>());
        for ((stem, w), (_, got)) in whole.iter().zip(out.iter()) {
            let d = max_diff(w, got);
            assert!(d <= 1e-6, "{name}/{stem}: streamed output differs by {d}");
        }
    }
}

/// Streams `audio` through the separator `name` in blocks of `block` frames and joins the output.
fn streamed(name: &str, audio: &AudioBuffer, block: usize) -> Stems {
    let mut sep = load_separator(name, Default::default()).unwrap();
    let spec = StreamSpec { sample_rate: audio.sample_rate(), channels: audio.num_channels(), frames: None };
    let mut stream = sep.stream(spec, SeparateOptions::default()).unwrap();
    let mut out = stream.process(&vec![&[][..]; audio.num_channels()]).unwrap();
    for start in (0..audio.frames()).step_by(block) {
        let end = (start + block).min(audio.frames());
        let b: Vec<&[f32]> = audio.channels().iter().map(|c| &c[start..end]).collect();
        out.append(&stream.process(&b).unwrap()).unwrap();
    }
    out.append(&stream.finish().unwrap()).unwrap();
    out
}

#[test]
fn a_surround_input_streams_as_the_stereo_stems_it_separates_to() {
    // 5.1 into center: downmixed, stereo stems, also in the blocks that hold no frames yet.
    let audio = signal(16_000, 25.0, 6);
    let mut sep = load_separator("center", Default::default()).unwrap();
    assert_eq!(sep.output_channels(6), 2);
    let whole = sep.separate(&audio, &SeparateOptions::default()).unwrap();
    let got = streamed("center", &audio, 7_001);
    for ((stem, w), (_, g)) in whole.iter().zip(got.iter()) {
        assert_eq!(g.num_channels(), 2, "{stem}");
        let d = max_diff(w, g);
        assert!(d <= 1e-6, "{stem}: streamed output differs by {d}");
    }
}

#[test]
fn joining_stems_checks_names_and_shapes() {
    let a = AudioBuffer::new(16_000, vec![vec![0.5; 4], vec![0.25; 4]]).unwrap();
    let mono = AudioBuffer::new(16_000, vec![vec![0.5; 4]]).unwrap();
    let mut stems = Stems::new(vec![("x".into(), a.clone()), ("y".into(), a.clone())]).unwrap();
    stems.append(&stems.clone()).unwrap();
    assert!(stems.iter().all(|(_, b)| b.frames() == 8));
    let renamed = Stems::new(vec![("y".into(), a.clone()), ("x".into(), a.clone())]).unwrap();
    assert!(stems.append(&renamed).is_err());
    let narrower = Stems::new(vec![("x".into(), mono.clone()), ("y".into(), mono)]).unwrap();
    assert!(stems.append(&narrower).is_err());
    let other_rate = AudioBuffer::new(8_000, vec![vec![0.5; 4], vec![0.25; 4]]).unwrap();
    assert!(stems.iter().next().unwrap().1.clone().append(&other_rate).is_err());
    assert_eq!(a.planar(), vec![&[0.5f32; 4][..], &[0.25f32; 4][..]]);
}

#[test]
fn file_job_matches_whole_buffer_for_builtins() {
    let dir = temp("job");
    let input = dir.join("long.wav");
    let lossless = WriteOptions { encoding: SampleEncoding::F32, clip: ClipMode::None, ..Default::default() };
    write_file(&input, &signal(22_050, 47.3, 2), &lossless).unwrap();
    let decoded = decode_file(&input, &Default::default()).unwrap();
    for name in ["hpss", "center", "repet"] {
        let whole = load_separator(name, Default::default()).unwrap().separate(&decoded, &Default::default()).unwrap();
        let out = dir.join(name);
        let opts = FileJobOptions { write: lossless, ..Default::default() };
        let report = separate_file(
            load_separator(name, Default::default()).unwrap().as_mut(),
            &input,
            &out,
            &opts,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(report.stems.len(), whole.len());
        for (w, (stem, expect)) in report.stems.iter().zip(whole.iter()) {
            assert_eq!(w.name, stem);
            let got = decode_file(&w.path, &Default::default()).unwrap();
            let d = max_diff(expect, &got);
            assert!(d <= 1e-6, "{name}/{stem}: the file job's output differs by {d}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_job_selections_and_default_rescale() {
    let dir = temp("select");
    let input = dir.join("mix.wav");
    // Loud enough that rescaling changes every sample.
    let mut loud = signal(16_000, 30.0, 2).into_channels();
    loud.iter_mut().flatten().for_each(|x| *x *= 6.0);
    let loud = AudioBuffer::new(16_000, loud).unwrap();
    write_file(
        &input,
        &loud,
        &WriteOptions { encoding: SampleEncoding::F32, clip: ClipMode::None, ..Default::default() },
    )
    .unwrap();
    let decoded = decode_file(&input, &Default::default()).unwrap();
    let whole = load_separator("hpss", Default::default()).unwrap().separate(&decoded, &Default::default()).unwrap();
    let rescaled = WriteOptions { encoding: SampleEncoding::F32, ..Default::default() };

    let opts = FileJobOptions {
        write: rescaled,
        selection: StemSelection::Query("remove the drums".into()),
        ..Default::default()
    };
    let r = separate_file(
        load_separator("hpss", Default::default()).unwrap().as_mut(),
        &input,
        &dir.join("q"),
        &opts,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(r.stems.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["no_percussive", "percussive"]);
    let expect = whole.get("harmonic").unwrap();
    let div = (1.01 * expect.peak()).max(1.0);
    let got = decode_file(&r.stems[0].path, &Default::default()).unwrap();
    let scaled =
        AudioBuffer::new(16_000, expect.channels().iter().map(|c| c.iter().map(|x| x / div).collect()).collect())
            .unwrap();
    assert!(div > 1.5, "the test signal should need rescaling (divisor {div})");
    let d = max_diff(&scaled, &got);
    assert!(d <= 1e-6, "rescaled stem differs by {d}");

    let opts = FileJobOptions { selection: StemSelection::Stems(vec!["percussive".into()]), ..Default::default() };
    let r = separate_file(
        load_separator("hpss", Default::default()).unwrap().as_mut(),
        &input,
        &dir.join("s"),
        &opts,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(r.stems.len(), 1);
    // Nothing but the committed file is left: no spool, no partial file.
    let left: Vec<_> = std::fs::read_dir(dir.join("s/mix")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("percussive.wav")]);
    std::fs::remove_dir_all(&dir).unwrap();
}
