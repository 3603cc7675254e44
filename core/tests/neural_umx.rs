//! Open-Unmix parity: our pipeline against `openunmix.model.Separator` (STFT,
//! per-target networks, the multichannel Wiener filter with EM, ISTFT) on the
//! same random-weight CI models and inputs (python/tools/parity_umx.py).
#![cfg(feature = "onnx")]

mod common;
use common::*;
use std::path::PathBuf;

use splitsound_core::model::{NeuralOptions, NeuralSeparator};
use splitsound_core::{Error, SeparateOptions, Separator};

fn dir() -> PathBuf {
    repo_root().join("core/tests/data/neural/umx")
}

fn options(case: &str) -> NeuralOptions {
    let want = reference_in(&dir().join("refs"), &format!("{case}_output"));
    let p = &want.params;
    NeuralOptions {
        niter: p["niter"].as_u64().unwrap() as u32,
        softmask: p["softmask"].as_bool().unwrap(),
        residual: p["residual"].as_bool().unwrap(),
        wiener_win_len: p["wiener_win_len"].as_u64().unwrap() as usize,
        ..NeuralOptions::default()
    }
}

#[test]
fn matches_openunmix_separator() {
    for case in ["default", "mono", "softmask", "residual_em2", "whole"] {
        let want = reference_in(&dir().join("refs"), &format!("{case}_output"));
        let mut sep = NeuralSeparator::builder(dir().join("umx-ci.json")).options(options(case)).build().unwrap();
        let stems = sep.separate(&reference_input(&dir().join("refs"), case, 44100), &SeparateOptions::default());
        let stems = stems.unwrap();
        let err = stems_error(&stems, &want);
        println!("{case}: max error {err:.2e} of peak");
        assert!(err < 1e-4, "{case}: max error {err:.2e} of the reference's peak");
    }
}

#[test]
fn residual_adds_a_stem_and_single_target_em_is_refused() {
    let sep = NeuralSeparator::builder(dir().join("umx-ci.json")).options(options("residual_em2")).build().unwrap();
    assert_eq!(sep.stems(), ["vocals", "drums", "residual"]);
    let sep = NeuralSeparator::builder(dir().join("umx-ci.json")).options(NeuralOptions::default()).build().unwrap();
    assert_eq!(sep.stems(), ["vocals", "drums"]);

    // A one-target package: EM needs a second source.
    let d = scratch("umx_single");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir().join("umx-ci.json")).unwrap()).unwrap();
    m["stems"] = serde_json::json!(["vocals"]);
    m["files"] = serde_json::json!([{"path": "umx-ci.vocals.onnx"}]);
    std::fs::copy(dir().join("umx-ci.vocals.onnx"), d.join("umx-ci.vocals.onnx")).unwrap();
    std::fs::write(d.join("one.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let mix = reference_input(&dir().join("refs"), "mono", 44100);
    let mut sep = NeuralSeparator::builder(d.join("one.json")).options(NeuralOptions::default()).build().unwrap();
    let r = sep.separate(&mix, &SeparateOptions::default());
    assert!(matches!(r, Err(Error::InvalidArgument { name: "niter", .. })), "{r:?}");
    let mut sep = NeuralSeparator::builder(d.join("one.json"))
        .options(NeuralOptions { niter: 0, ..Default::default() })
        .build()
        .unwrap();
    assert_eq!(sep.separate(&mix, &SeparateOptions::default()).unwrap().len(), 1);

    // A package whose file count does not match its targets.
    m["stems"] = serde_json::json!(["vocals", "drums"]);
    std::fs::write(d.join("two.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let r = NeuralSeparator::builder(d.join("two.json")).options(NeuralOptions::default()).build();
    assert!(matches!(r, Err(Error::Model { .. })), "{r:?}");
}
