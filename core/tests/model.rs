//! Model packages on ONNX Runtime: loading, checking the manifest against the
//! graph, running it, providers and their fallback. Needs the ONNX Runtime
//! library; the README's test command installs it and sets SPLITSOUND_ORT_LIB.
#![cfg(feature = "onnx")]

mod common;
use common::*;
use std::path::{Path, PathBuf};

use splitsound_core::Error;
use splitsound_core::model::{Fallback, Model, ModelOptions, Provider, provider_usable};

fn tiny_dir() -> PathBuf {
    repo_root().join("core/tests/data/models/tiny")
}

/// A copy of the tiny package in a scratch dir with its manifest edited by `edit`.
fn variant(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = scratch(&format!("model_{name}"));
    std::fs::copy(tiny_dir().join("tiny.onnx"), dir.join("tiny.onnx")).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tiny_dir().join("tiny.json")).unwrap()).unwrap();
    edit(&mut m);
    let path = dir.join("tiny.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    path
}

fn model_error(path: &Path) -> String {
    match Model::load(path, &ModelOptions::default()) {
        Err(Error::Model { detail, .. }) => detail,
        Err(e) => panic!("{}: expected a model error, got {e:?}", path.display()),
        Ok(_) => panic!("{}: loaded a bad package", path.display()),
    }
}

#[test]
fn loads_checks_and_runs_the_tiny_model() {
    let mut m = Model::load(tiny_dir().join("tiny.json"), &ModelOptions::default()).unwrap();
    assert_eq!(m.provider(), Provider::Cpu);
    assert_eq!(m.manifest().stems, ["full", "half"]);
    let g = &m.graphs()[0];
    assert_eq!((g.inputs[0].name.as_str(), g.inputs[0].shape.as_slice()), ("mix", &[1, 2, -1][..]));
    assert_eq!(g.outputs[0].shape, [1, 2, 2, -1]);

    let n = 1000;
    let x = ndarray::Array::from_shape_fn((1, 2, n), |(_, c, i)| (c * n + i) as f32 / n as f32).into_dyn();
    let out = m.run(0, vec![("mix".into(), x.clone())]).unwrap();
    assert_eq!(out.len(), 1);
    let (name, y) = &out[0];
    assert_eq!((name.as_str(), y.shape()), ("stems", &[1, 2, 2, n][..]));
    for c in 0..2 {
        for i in 0..n {
            assert_eq!(y[[0, 0, c, i]], x[[0, c, i]]);
            assert_eq!(y[[0, 1, c, i]], 0.5 * x[[0, c, i]]);
        }
    }
    // An .onnx path finds its sidecar manifest.
    assert!(Model::load(tiny_dir().join("tiny.onnx"), &ModelOptions::default()).is_ok());
    // Wrong inputs are typed inference errors, not panics.
    assert!(matches!(m.run(0, vec![("nope".into(), x.clone())]), Err(Error::Inference { .. })));
    assert!(matches!(m.run(5, vec![("mix".into(), x)]), Err(Error::InvalidArgument { .. })));
}

#[test]
fn manifests_that_disagree_with_the_graph_are_model_errors() {
    let e = model_error(&variant("name", |m| m["inputs"][0]["name"] = "audio".into()));
    assert!(e.contains("`audio`") && e.contains("mix"), "{e}");
    let e = model_error(&variant("rank", |m| m["inputs"][0]["shape"] = serde_json::json!([1, -1])));
    assert!(e.contains("rank"), "{e}");
    let e = model_error(&variant("dim", |m| m["outputs"][0]["shape"] = serde_json::json!([1, 4, 2, -1])));
    assert!(e.contains("dimension 1"), "{e}");
    let e = model_error(&variant("missing-output", |m| m["outputs"][0]["name"] = "other".into()));
    assert!(e.contains("`other`"), "{e}");
}

#[test]
fn malformed_manifests_are_model_errors() {
    let dir = scratch("model_json");
    let p = dir.join("broken.json");
    std::fs::write(&p, b"{\"format_version\": 1, \"name\": ").unwrap();
    assert!(model_error(&p).contains("invalid manifest JSON"));
    std::fs::write(&p, b"[1, 2, 3]").unwrap();
    assert!(model_error(&p).contains("invalid manifest JSON"));
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("future", Box::new(|m| m["format_version"] = 99.into())),
        ("stems", Box::new(|m| m["stems"] = serde_json::json!([]))),
        ("dup-stems", Box::new(|m| m["stems"] = serde_json::json!(["a", "a"]))),
        ("rate", Box::new(|m| m["sample_rate"] = 1000.into())),
        ("channels", Box::new(|m| m["channels"] = 6.into())),
        ("overlap", Box::new(|m| m["defaults"] = serde_json::json!({"overlap": 1.5}))),
        ("weights", Box::new(|m| m["files"][0]["stem_weights"] = serde_json::json!([1.0]))),
        ("shape", Box::new(|m| m["inputs"][0]["shape"] = serde_json::json!([1, 0, -1]))),
        ("unknown-key", Box::new(|m| m["colour"] = "blue".into())),
        ("family", Box::new(|m| m["family"] = "spleeter".into())),
        ("abs-path", Box::new(|m| m["files"][0]["path"] = "/etc/passwd".into())),
        (
            "stft",
            Box::new(
                |m| m["stft"] = serde_json::json!({"n_fft": 1023, "hop_length": 256, "window": "hann", "center": true, "pad_mode": "reflect", "normalized": false}),
            ),
        ),
    ];
    for (name, edit) in cases {
        let detail = model_error(&variant(name, edit));
        assert!(!detail.is_empty(), "{name}");
    }
}

#[test]
fn wrong_or_missing_model_files() {
    let p = variant("missing-file", |m| m["files"][0]["path"] = "absent.onnx".into());
    assert!(model_error(&p).contains("missing file"));
    let p = variant("not-onnx", |m| m["files"][0]["path"] = "fake.onnx".into());
    std::fs::write(
        p.parent().unwrap().join("fake.onnx"),
        noise(4000, 9, 1.0).iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    assert!(model_error(&p).contains("ONNX Runtime cannot load it"));
    assert!(matches!(Model::load("/nonexistent/model.json", &ModelOptions::default()), Err(Error::Io { .. })));
}

#[test]
fn providers_fall_back_to_cpu_or_fail_as_asked() {
    let tiny = tiny_dir().join("tiny.json");
    for gpu in [Provider::Cuda { device: 0 }, Provider::TensorRt { device: 0 }] {
        let want = ModelOptions { providers: vec![gpu], ..Default::default() };
        if provider_usable(gpu, &want).unwrap().is_ok() {
            assert_eq!(Model::load(&tiny, &want).unwrap().provider(), gpu);
            continue;
        }
        // Not usable here (not compiled in, or not in this runtime): the
        // default policy falls back to the CPU ...
        assert_eq!(Model::load(&tiny, &want).unwrap().provider(), Provider::Cpu);
        // ... and the strict one refuses, naming the provider.
        let strict = ModelOptions { fallback: Fallback::Error, ..want };
        match Model::load(&tiny, &strict) {
            Err(Error::ProviderUnavailable { provider, .. }) => assert_eq!(provider, gpu.to_string()),
            other => panic!("{gpu}: {other:?}"),
        }
    }
    assert!(provider_usable(Provider::Cpu, &ModelOptions::default()).unwrap().is_ok());
}
