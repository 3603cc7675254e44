//! The tract engine (pure Rust) against the reference implementations: the same
//! Python references and tolerance as the ONNX Runtime parity tests, for every
//! model family; packages loaded from memory as the WebAssembly build loads them;
//! and tract's provider policy (CPU only).
#![cfg(feature = "tract")]

mod common;
use common::*;
use std::path::{Path, PathBuf};

use splitsound_core::model::{Engine, Fallback, Model, ModelOptions, NeuralOptions, NeuralSeparator, Provider};
use splitsound_core::{Error, SeparateOptions, Separator};

fn data(family: &str) -> PathBuf {
    repo_root().join("core/tests/data/neural").join(family)
}

fn tract() -> ModelOptions {
    ModelOptions { engine: Engine::Tract, ..ModelOptions::default() }
}

/// Separates a reference case with tract and returns the largest error relative to the reference's peak.
fn case_error(family: &str, package: &str, case: &str, opts: NeuralOptions) -> f32 {
    let refs = data(family).join("refs");
    let want = reference_in(&refs, &format!("{case}_output"));
    let mut sep = NeuralSeparator::builder(data(family).join(package))
        .options(NeuralOptions { model: tract(), ..opts })
        .build()
        .unwrap();
    assert_eq!(sep.runs_on(), "cpu (tract)");
    let stems = sep.separate(&reference_input(&refs, case, 44100), &SeparateOptions::default()).unwrap();
    stems_error(&stems, &want)
}

#[test]
fn demucs_matches_apply_model_on_tract() {
    for case in ["stereo", "shifts", "bag", "released"] {
        let want = reference_in(&data("demucs").join("refs"), &format!("{case}_output"));
        let p = &want.params;
        let opts = NeuralOptions {
            overlap: Some(p["overlap"].as_f64().unwrap()),
            shifts: Some(p["shifts"].as_u64().unwrap() as u32),
            shift_offsets: Some(
                p["offsets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect(),
            ),
            batch: 2,
            ..NeuralOptions::default()
        };
        let package = format!("{}.json", p["package"].as_str().unwrap());
        let err = case_error("demucs", &package, case, opts);
        println!("demucs {case}: max error {err:.2e} of peak");
        assert!(err < 1e-4, "demucs {case}: max error {err:.2e} of the reference's peak");
    }
}

#[test]
fn mdx_matches_audio_separator_on_tract() {
    for case in ["stereo", "denoise"] {
        let want = reference_in(&data("mdx").join("refs"), &format!("{case}_output"));
        let opts = NeuralOptions {
            overlap: Some(want.params["overlap"].as_f64().unwrap()),
            denoise: want.params["denoise"].as_bool().unwrap(),
            ..NeuralOptions::default()
        };
        let err = case_error("mdx", "mdx-random.json", case, opts);
        println!("mdx {case}: max error {err:.2e} of peak");
        assert!(err < 1e-4, "mdx {case}: max error {err:.2e} of the reference's peak");
    }
}

#[test]
fn umx_matches_openunmix_on_tract() {
    for case in ["default", "residual_em2"] {
        let want = reference_in(&data("umx").join("refs"), &format!("{case}_output"));
        let p = &want.params;
        let opts = NeuralOptions {
            niter: p["niter"].as_u64().unwrap() as u32,
            softmask: p["softmask"].as_bool().unwrap(),
            residual: p["residual"].as_bool().unwrap(),
            wiener_win_len: p["wiener_win_len"].as_u64().unwrap() as usize,
            ..NeuralOptions::default()
        };
        let err = case_error("umx", "umx-ci.json", case, opts);
        println!("umx {case}: max error {err:.2e} of peak");
        assert!(err < 1e-4, "umx {case}: max error {err:.2e} of the reference's peak");
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_package_in_memory_separates_as_from_files() {
    let dir = data("umx");
    let manifest = read(&dir.join("umx-ci.json"));
    let (vocals, drums) = (read(&dir.join("umx-ci.vocals.onnx")), read(&dir.join("umx-ci.drums.onnx")));
    let files = [("umx-ci.vocals.onnx", &vocals[..]), ("umx-ci.drums.onnx", &drums[..])];
    let model = Model::from_memory(Some(&manifest), &files, &tract()).unwrap();
    assert_eq!(model.engine(), Engine::Tract);
    assert_eq!(model.graphs().len(), 2);
    let mix = reference_input(&dir.join("refs"), "default", 44100);
    let mut a = NeuralSeparator::from_model(model, NeuralOptions::default()).unwrap();
    let mut b = NeuralSeparator::builder(dir.join("umx-ci.json"))
        .options(NeuralOptions { model: tract(), ..Default::default() })
        .build()
        .unwrap();
    let opts = SeparateOptions::default();
    assert_eq!(a.separate(&mix, &opts).unwrap(), b.separate(&mix, &opts).unwrap());

    // A file the manifest names is missing; bytes that are no ONNX graph.
    let r = Model::from_memory(Some(&manifest), &files[..1], &tract());
    assert!(matches!(&r, Err(Error::Model { detail, .. }) if detail.contains("umx-ci.drums.onnx")), "{r:?}");
    let junk = [("umx-ci.vocals.onnx", &b"not a model"[..]), ("umx-ci.drums.onnx", &drums[..])];
    let r = Model::from_memory(Some(&manifest), &junk, &tract());
    assert!(matches!(&r, Err(Error::Model { .. })), "{r:?}");
    // No manifest: one file that must carry its own.
    let r = Model::from_memory(None, &files, &tract());
    assert!(matches!(&r, Err(Error::InvalidArgument { name: "files", .. })), "{r:?}");
    let r = Model::from_memory(None, &files[..1], &tract());
    assert!(matches!(&r, Err(Error::Model { detail, .. }) if detail.contains("no manifest")), "{r:?}");
}

#[test]
fn tract_runs_on_the_cpu_only() {
    let package = data("mdx").join("mdx-random.json");
    let cuda = ModelOptions { providers: vec![Provider::Cuda { device: 0 }, Provider::Cpu], ..tract() };
    assert_eq!(Model::load(&package, &cuda).unwrap().provider(), Provider::Cpu);
    let strict = ModelOptions { fallback: Fallback::Error, ..cuda };
    let r = Model::load(&package, &strict);
    assert!(matches!(&r, Err(Error::ProviderUnavailable { provider, .. }) if provider == "cuda:0"), "{r:?}");
}

#[test]
fn the_engine_is_named_in_options_json() {
    let opts: NeuralOptions = serde_json::from_str(r#"{"model": {"engine": "tract"}}"#).unwrap();
    assert_eq!(opts.model.engine, Engine::Tract);
    assert_eq!("onnxruntime".parse::<Engine>().unwrap(), Engine::OnnxRuntime);
    assert!(matches!("torch".parse::<Engine>(), Err(Error::InvalidArgument { name: "engine", .. })));
    assert!(serde_json::from_str::<NeuralOptions>(r#"{"model": {"engine": "torch"}}"#).is_err());
}

/// SAM-Audio's four graphs on tract: the batch of the reference data
/// (python/tools/parity_sam_audio.py), as on ONNX Runtime.
#[cfg(feature = "sam-audio")]
#[test]
fn sam_audio_matches_the_reference_on_tract() {
    use splitsound_core::model::Described;
    let dir = data("sam-audio");
    let refs = |n: &str| reference_in(&dir.join("refs"), n);
    let opts = NeuralOptions { model: tract(), ..NeuralOptions::default() };
    let mut sep = NeuralSeparator::builder(dir.join("sam-audio-tiny.json")).options(opts).build().unwrap();
    let inputs: Vec<RefArray> = (0..2).map(|i| refs(&format!("input_{i}"))).collect();
    let prompts: Vec<String> = inputs.iter().map(|r| r.params["prompt"].as_str().unwrap().to_string()).collect();
    let items: Vec<Described> =
        (0..2).map(|i| Described { audio: &inputs[i].real, description: &prompts[i] }).collect();
    let (noise, msg) = (refs("ode_noise").real, refs("watermark_message").real);
    let out = sep.separate_described(&items, Some(&noise), Some(&msg), &SeparateOptions::default()).unwrap();
    for (i, pair) in out.iter().enumerate() {
        for (got, name) in pair.iter().zip(["target", "residual"]) {
            let want = refs(&format!("{name}_{i}")).real;
            let e = max_abs_diff(got, &want) / peak(&want);
            println!("item {i} {name}: {e:.2e} of peak");
            assert!(e < 1e-5, "item {i} {name}: {e:.2e}");
        }
    }
}
