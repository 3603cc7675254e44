//! The `waveform` family: graphs from mix segments to stems with the STFT
//! inside. Our export of the CI and released-shape HT-Demucs
//! (`export_demucs.py --stft-in-graph`) against demucs's `apply_model` on the
//! same weights (parity_demucs.py's references), and the released-shape graph
//! chunked as demucs-onnx's inference does against demucs-onnx 0.3.4's own
//! loop (python/tools/parity_waveform.py).
#![cfg(feature = "onnx")]

mod common;
use common::*;
use std::path::PathBuf;

use splitsound_core::model::{NeuralOptions, NeuralSeparator};
use splitsound_core::{Error, SeparateOptions, Separator};

fn dir() -> PathBuf {
    repo_root().join("core/tests/data/neural/waveform")
}

fn demucs_refs() -> PathBuf {
    repo_root().join("core/tests/data/neural/demucs/refs")
}

/// A case of parity_demucs.py through the waveform package of the same weights.
fn apply_model_case(case: &str, batch: usize) -> f32 {
    common::apply_model_case(&demucs_refs(), &dir(), case, batch)
}

#[test]
fn matches_demucs_apply_model() {
    for case in ["stereo", "short", "mono", "shifts", "overlap", "released"] {
        let err = apply_model_case(case, 1);
        println!("{case}: max error {err:.2e} of peak");
        assert!(err < 1e-5, "{case}: max error {err:.2e} of the reference's peak");
    }
    let err = apply_model_case("stereo", 3);
    assert!(err < 1e-5, "batch 3: max error {err:.2e}");
}

#[test]
fn matches_demucs_onnx_inference() {
    let mut sep =
        NeuralSeparator::builder(dir().join("demucs-onnx.json")).options(NeuralOptions::default()).build().unwrap();
    for case in ["three_chunks", "short"] {
        let want = reference_in(&dir().join("refs"), &format!("{case}_output"));
        let input = reference_input(&dir().join("refs"), case, 44100);
        let stems = sep.separate(&input, &SeparateOptions::default()).unwrap();
        for (_, audio) in stems.iter() {
            for ch in audio.channels() {
                // demucs-onnx's first sample has weight 0 and comes out silent.
                assert_eq!(ch[0], 0.0);
            }
        }
        let err = windows_error(&stems, &want);
        println!("{case}: max error {err:.2e} of peak");
        assert!(err < 1e-5, "{case}: {err:.2e} of the peak");
    }
}

#[test]
fn manifests_that_do_not_fit_are_refused() {
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("demucs-onnx.json")).unwrap()).unwrap();
    let d = scratch("waveform-bad");
    std::fs::copy(dir().join("released.onnx"), d.join("released.onnx")).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|m| m["waveform"].as_object_mut().unwrap().remove("fade_samples").map(drop).unwrap()),
            "fade_samples",
        ),
        (Box::new(|m| m["waveform"]["fade_samples"] = 300000.into()), "more than half"),
        (Box::new(|m| m["waveform"]["transition_power"] = 0.into()), "transition_power"),
        (Box::new(|m| m["waveform"]["window"] = "cosine".into()), "unknown variant"),
        (Box::new(|m| m.as_object_mut().unwrap().remove("waveform").map(drop).unwrap()), "`waveform` section"),
        (
            Box::new(|m| {
                m["outputs"][0]["shape"][1] = 6.into();
                m["stems"] = serde_json::json!(["a", "b", "c", "d", "e", "f"]);
            }),
            "the manifest says 6, the graph says 4",
        ),
        (Box::new(|m| m["segment_samples"] = 1000.into()), "expected [batch, 2, 1000]"),
    ];
    for (edit, needle) in cases {
        let mut m = base.clone();
        edit(&mut m);
        let path = d.join("bad.json");
        std::fs::write(&path, m.to_string()).unwrap();
        let e = NeuralSeparator::builder(&path).options(NeuralOptions::default()).build().unwrap_err();
        assert!(matches!(e, Error::Model { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
}

/// demucs-onnx ships lone `.onnx` files: the flags say what its manifest would.
#[test]
fn a_bare_graph_runs_with_the_flags_its_exporter_implies() {
    use splitsound_core::model::{BareWaveform, ModelOptions, Partial, WaveWindow};
    let bare = dir().join("released-bare.onnx");
    let e = NeuralSeparator::builder(&bare).options(NeuralOptions::default()).build().unwrap_err();
    assert!(e.to_string().contains("--waveform-stems"), "{e}");
    let flags = BareWaveform {
        stems: ["drums", "bass", "other", "vocals"].map(String::from).to_vec(),
        window: Some(WaveWindow::Linear),
        fade_samples: Some(85995),
        partial: Some(Partial::ZeroRight),
        ..BareWaveform::default()
    };
    let load = |flags: BareWaveform, path: &std::path::Path| {
        let opts = NeuralOptions {
            model: ModelOptions { waveform: flags, ..ModelOptions::default() },
            ..NeuralOptions::default()
        };
        NeuralSeparator::builder(path).options(opts).build()
    };
    let input = reference_input(&dir().join("refs"), "short", 44100);
    let got = load(flags.clone(), &bare).unwrap().separate(&input, &SeparateOptions::default()).unwrap();
    let want = NeuralSeparator::builder(dir().join("demucs-onnx.json"))
        .options(NeuralOptions::default())
        .build()
        .unwrap()
        .separate(&input, &SeparateOptions::default())
        .unwrap();
    assert_eq!(got, want);
    // Stems the graph does not output, and flags on a file with its own manifest, are refused.
    let three = BareWaveform { stems: vec!["a".into(), "b".into(), "c".into()], ..flags.clone() };
    let e = load(three, &bare).unwrap_err();
    assert!(e.to_string().contains("is not [batch, 3 stems"), "{e}");
    let d = scratch("waveform-embedded");
    std::fs::copy(dir().join("released.onnx"), d.join("alone.onnx")).unwrap();
    let e = load(flags, &d.join("alone.onnx")).unwrap_err();
    assert!(e.to_string().contains("its own manifest"), "{e}");
}
