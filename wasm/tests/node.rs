//! wasm-bindgen-test in Node: the functions as the page calls them
//! (`scripts/build-wasm.sh test`).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Float32Array, Reflect};
use splitsound_wasm::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const DEMO: &[u8] = include_bytes!("../../examples/data/demo/mixture.flac");

fn code(e: &JsValue) -> String {
    Reflect::get(e, &"code".into()).ok().and_then(|c| c.as_string()).unwrap_or_default()
}

fn first_seconds(audio: &Audio, secs: usize) -> Audio {
    let n = audio.sample_rate() as usize * secs;
    let chans: Array = (0..audio.number_of_channels())
        .map(|c| JsValue::from(audio.channel(c).unwrap().subarray(0, n as u32)))
        .collect();
    Audio::from_channels(chans, audio.sample_rate()).unwrap()
}

#[wasm_bindgen_test]
fn decodes_and_probes_the_demo() {
    let info = probe(DEMO, Some("flac".into())).unwrap();
    assert_eq!(Reflect::get(&info, &"sampleRate".into()).unwrap().as_f64(), Some(44100.0));
    let audio = decode(DEMO, Some("flac".into()), None).unwrap();
    assert_eq!((audio.sample_rate(), audio.number_of_channels(), audio.frames()), (44100, 2, 529200));
    assert_eq!(code(&decode(b"not audio at all, only text", None, None).unwrap_err()), "unrecognized_format");
    assert_eq!(code(&decode(&[], None, None).unwrap_err()), "empty");
    assert_eq!(code(&decode(DEMO, None, Some(1000.0)).unwrap_err()), "too_large");
}

#[wasm_bindgen_test]
fn builtins_separate_and_sum_to_the_mix() {
    let audio = first_seconds(&decode(DEMO, None, None).unwrap(), 3);
    for method in ["builtin:hpss", "builtin:center"] {
        let mut reports = 0u32;
        let progress =
            js_sys::Function::new_with_args("s, d, t", "globalThis.__reports = (globalThis.__reports || 0) + 1");
        let stems = separate(method, &audio, Some(progress)).unwrap();
        let names: Vec<String> = stems.names().iter().map(|n| n.as_string().unwrap()).collect();
        assert_eq!(names, stems_of(method).unwrap().iter().map(|n| n.as_string().unwrap()).collect::<Vec<_>>());
        for c in 0..2 {
            let mix = audio.channel(c).unwrap().to_vec();
            let a = stems.get(&names[0]).unwrap().channel(c).unwrap().to_vec();
            let b = stems.get(&names[1]).unwrap().channel(c).unwrap().to_vec();
            let worst = mix.iter().zip(a.iter().zip(&b)).map(|(m, (x, y))| (x + y - m).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{method}: stems miss the mix by {worst}");
        }
        reports += Reflect::get(&js_sys::global(), &"__reports".into()).unwrap().as_f64().unwrap_or(0.0) as u32;
        assert!(reports > 0, "progress was reported");
    }
    assert_eq!(code(&separate("builtin:nope", &audio, None).unwrap_err()), "unknown_separator");
}

#[wasm_bindgen_test]
fn cancelling_from_progress_stops_the_separation() {
    let audio = first_seconds(&decode(DEMO, None, None).unwrap(), 2);
    let cancel = Cancel::new();
    let holder = js_sys::Object::new();
    Reflect::set(&holder, &"c".into(), &JsValue::from(cancel.clone())).unwrap();
    let progress = js_sys::Function::new_with_args("s, d, t", "this.c.cancel()").bind0(&holder);
    let err = separate_cancellable("builtin:hpss", &audio, Some(progress), &cancel).unwrap_err();
    assert_eq!(code(&err), "cancelled");
}

#[wasm_bindgen_test]
fn resample_stft_encode_and_query() {
    let audio = first_seconds(&decode(DEMO, None, None).unwrap(), 1);
    let down = resample(&audio, 16000).unwrap();
    assert!((down.frames() as i64 - 16000).abs() <= 1);
    assert_eq!(code(&resample(&audio, 3).unwrap_err()), "unsupported_sample_rate");

    let x = audio.channel(0).unwrap().to_vec();
    let spec = stft(&x, 1024, 256).unwrap();
    assert_eq!((spec.bins(), spec.frames()), (513, 1 + x.len() / 256));
    let back = spec.inverse(Some(x.len())).unwrap().to_vec();
    let worst = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");

    let wav = encode(&audio, "wav", 16).unwrap().to_vec();
    assert_eq!(&wav[..4], b"RIFF");
    let again = decode(&wav, Some("wav".into()), None).unwrap();
    assert_eq!(again.frames(), audio.frames());
    let flac = encode(&audio, "flac", 24).unwrap().to_vec();
    assert_eq!(&flac[..4], b"fLaC");
    assert_eq!(code(&encode(&audio, "flac", 32).unwrap_err()), "invalid_argument");

    let q = resolve_query("remove the drums", vec!["harmonic".into(), "percussive".into()]).unwrap();
    assert_eq!(Reflect::get(&q, &"mode".into()).unwrap().as_string().as_deref(), Some("remove"));
    assert_eq!(code(&resolve_query("the weather", vec!["vocals".into()]).unwrap_err()), "unresolved_query");
    let _ = Float32Array::new_with_length(0);
}
