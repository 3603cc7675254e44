//! The built-in separators: mixture consistency, improvement on the demo mix,
//! typed errors, cancellation and progress.

mod common;
use common::*;
use splitsound_core::{
    AudioBuffer, CancelToken, Error, Progress, SeparateOptions, Stage, builtin::BUILTIN_NAMES, load_separator,
};

fn run(name: &str, audio: &AudioBuffer) -> splitsound_core::Stems {
    let mut sep = load_separator(name, Default::default()).unwrap();
    sep.separate(audio, &SeparateOptions::default()).unwrap()
}

fn assert_consistent(name: &str, audio: &AudioBuffer, stems: &splitsound_core::Stems) {
    let sum = AudioBuffer::sum(stems.iter().map(|(_, b)| b)).unwrap();
    assert_eq!(sum.frames(), audio.frames());
    let err = sum.channels().iter().zip(audio.channels()).map(|(a, b)| max_abs_diff(a, b)).fold(0.0, f32::max);
    assert!(err <= 1e-5, "{name}: stems differ from the mixture by {err}");
}

#[test]
fn stems_sum_to_the_mixture() {
    let demo = demo("mixture");
    let short = AudioBuffer::new(22050, vec![noise(30_001, 1, 0.5), noise(30_001, 2, 0.5)]).unwrap();
    let mono = AudioBuffer::new(16000, vec![noise(17_777, 3, 0.9)]).unwrap();
    for name in BUILTIN_NAMES {
        for audio in [&demo, &short] {
            let stems = run(name, audio);
            assert_consistent(name, audio, &stems);
        }
        if *name != "center" {
            assert_consistent(name, &mono, &run(name, &mono));
        }
    }
}

fn improvement(reference: &AudioBuffer, est: &AudioBuffer, mix: &AudioBuffer) -> (f64, f64) {
    (sdr(reference, mix), sdr(reference, est))
}

#[test]
fn each_builtin_improves_what_it_claims_on_the_demo() {
    let mix = demo("mixture");
    let drums = demo("drums");
    let vocals = demo("vocals");
    let tonal = AudioBuffer::sum([&demo("bass"), &demo("other"), &vocals]).unwrap();
    let not_vocals = AudioBuffer::sum([&drums, &demo("bass"), &demo("other")]).unwrap();

    let hpss = run("hpss", &mix);
    let center = run("center", &mix);
    let repet = run("repet", &mix);
    let cases = [
        ("hpss percussive vs drums", &drums, hpss.get("percussive").unwrap()),
        ("hpss harmonic vs bass+other+vocals", &tonal, hpss.get("harmonic").unwrap()),
        ("center vocals vs vocals", &vocals, center.get("vocals").unwrap()),
        ("center accompaniment vs the rest", &not_vocals, center.get("accompaniment").unwrap()),
        ("repet foreground vs vocals", &vocals, repet.get("foreground").unwrap()),
        ("repet background vs the rest", &not_vocals, repet.get("background").unwrap()),
    ];
    for (what, reference, est) in cases {
        let (before, after) = improvement(reference, est, &mix);
        eprintln!("{what}: SDR {before:.2} dB → {after:.2} dB");
        assert!(after > before + 0.5, "{what}: SDR {before:.2} dB → {after:.2} dB is no improvement");
    }
}

#[test]
fn center_refuses_mono_and_suggests_repet() {
    let mono = AudioBuffer::new(44100, vec![noise(44100, 4, 0.5)]).unwrap();
    let mut sep = load_separator("builtin:center", Default::default()).unwrap();
    match sep.separate(&mono, &SeparateOptions::default()) {
        Err(Error::InvalidChannels { detail }) => assert!(detail.contains("repet"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn center_downmixes_surround_to_stereo_stems() {
    let six = AudioBuffer::new(48000, (0..6).map(|c| noise(48000, 10 + c, 0.3)).collect()).unwrap();
    let stems = run("center", &six);
    let down = six.to_channels(2).unwrap();
    assert_eq!(stems.get("vocals").unwrap().num_channels(), 2);
    assert_consistent("center 5.1", &down, &stems);
}

#[test]
fn nan_and_empty_inputs_are_typed_errors() {
    let mut bad = noise(10_000, 5, 0.5);
    bad[777] = f32::NAN;
    let audio = AudioBuffer::new(44100, vec![bad]).unwrap();
    let empty = AudioBuffer::new(44100, vec![vec![]]).unwrap();
    let tiny = AudioBuffer::new(44100, vec![vec![0.1; 100], vec![0.1; 100]]).unwrap();
    for name in BUILTIN_NAMES {
        let mut sep = load_separator(name, Default::default()).unwrap();
        let e = sep.separate(&audio, &SeparateOptions::default()).unwrap_err();
        assert!(matches!(e, Error::NonFinite { channel: 0, frame: 777, .. }), "{name}: {e:?}");
        let e = sep.separate(&empty, &SeparateOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Empty { .. }), "{name}: {e:?}");
        // Too short for the STFT's reflect padding: typed, not a panic.
        match sep.separate(&tiny, &SeparateOptions::default()) {
            Ok(stems) => assert_consistent(name, &tiny, &stems),
            Err(e) => assert!(matches!(e, Error::InvalidArgument { .. }), "{name}: {e:?}"),
        }
    }
}

#[test]
fn cancellation_stops_with_no_output_and_progress_is_reported() {
    let audio = demo("mixture");
    for name in BUILTIN_NAMES {
        let mut sep = load_separator(name, Default::default()).unwrap();
        let token = CancelToken::new();
        let seen = std::sync::Mutex::new(Vec::<Progress>::new());
        let progress = |p: Progress| {
            seen.lock().unwrap().push(p);
            if p.stage == Stage::Separate {
                token.cancel();
            }
        };
        let opts = SeparateOptions { progress: Some(&progress), cancel: Some(&token) };
        let e = sep.separate(&audio, &opts).unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{name}: {e:?}");
        let stages: Vec<Stage> = seen.lock().unwrap().iter().map(|p| p.stage).collect();
        assert!(stages.contains(&Stage::Analyse), "{name}: {stages:?}");

        let all = std::sync::Mutex::new(Vec::<Progress>::new());
        let progress = |p: Progress| all.lock().unwrap().push(p);
        sep.separate(&audio, &SeparateOptions { progress: Some(&progress), cancel: None }).unwrap();
        let all = all.into_inner().unwrap();
        let last = all.last().unwrap();
        assert_eq!((last.stage, last.done), (Stage::Synthesise, last.total), "{name}");
        assert!(all.iter().all(|p| p.done <= p.total), "{name}");
    }
}
