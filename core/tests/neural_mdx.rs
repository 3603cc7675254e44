//! MDX-Net parity: our pipeline against audio-separator's `MDXSeparator.demix` on
//! the same random-weight graph and inputs (python/tools/parity_mdx.py).
#![cfg(feature = "onnx")]

mod common;
use common::*;
use std::path::PathBuf;

use splitsound_core::model::{NeuralOptions, NeuralSeparator};
use splitsound_core::{Error, SeparateOptions, Separator};

fn dir() -> PathBuf {
    repo_root().join("core/tests/data/neural/mdx")
}

fn run_case(case: &str, batch: usize) -> f32 {
    let want = reference_in(&dir().join("refs"), &format!("{case}_output"));
    let opts = NeuralOptions {
        overlap: Some(want.params["overlap"].as_f64().unwrap()),
        denoise: want.params["denoise"].as_bool().unwrap(),
        batch,
        ..NeuralOptions::default()
    };
    let mut sep = NeuralSeparator::load(dir().join("mdx-random.json"), opts).unwrap();
    assert_eq!(sep.stems(), ["vocals", "instrumental"]);
    let stems = sep.separate(&reference_input(&dir().join("refs"), case, 44100), &SeparateOptions::default()).unwrap();
    stems_error(&stems, &want)
}

#[test]
fn matches_audio_separator_demix() {
    for case in ["stereo", "short", "mono", "no_overlap", "overlap", "denoise"] {
        let err = run_case(case, 1);
        println!("{case}: max error {err:.2e} of peak");
        assert!(err < 1e-4, "{case}: max error {err:.2e} of the reference's peak");
    }
    let err = run_case("stereo", 4);
    assert!(err < 1e-4, "batch 4: max error {err:.2e}");
}

#[test]
fn rejects_manifests_that_do_not_fit_mdx() {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir().join("mdx-random.json")).unwrap()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 4] = [
        ("no_params", |m| {
            m.as_object_mut().unwrap().remove("mdx");
        }),
        ("segment", |m| m["segment_samples"] = 12345.into()),
        ("dim_f", |m| m["mdx"]["dim_f"] = 4096.into()),
        ("normalized", |m| m["stft"]["normalized"] = true.into()),
    ];
    for (name, edit) in cases {
        let d = scratch(&format!("mdx_bad_{name}"));
        std::fs::copy(dir().join("mdx-random.onnx"), d.join("mdx-random.onnx")).unwrap();
        let mut m = m.clone();
        edit(&mut m);
        std::fs::write(d.join("m.json"), serde_json::to_vec(&m).unwrap()).unwrap();
        match NeuralSeparator::load(d.join("m.json"), NeuralOptions::default()) {
            Err(Error::Model { detail, .. }) => println!("{name}: {detail}"),
            other => panic!("{name}: expected a model error, got {other:?}"),
        }
    }
}
