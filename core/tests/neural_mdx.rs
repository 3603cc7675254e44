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
    let mut sep = NeuralSeparator::builder(dir().join("mdx-random.json")).options(opts).build().unwrap();
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
        match NeuralSeparator::builder(d.join("m.json")).options(NeuralOptions::default()).build() {
            Err(Error::Model { detail, .. }) => println!("{name}: {detail}"),
            other => panic!("{name}: expected a model error, got {other:?}"),
        }
    }
}

/// A bare MDX-Net `.onnx` (no manifest) configures itself from its UVR hash,
/// as UVR and audio-separator do: here through a model-data row made for the
/// random test graph, then through flags alone; both separate exactly as the
/// package with a manifest does.
#[test]
fn a_bare_mdx_file_configures_itself_from_its_uvr_hash() {
    use splitsound_core::model::ModelOptions;
    use splitsound_core::model::uvr::{MdxOverrides, uvr_hash};
    let d = scratch("uvr-bare");
    let bare = d.join("random.onnx");
    std::fs::copy(dir().join("mdx-random-bare.onnx"), &bare).unwrap();
    let hash = uvr_hash(&bare).unwrap();
    let load = |mdx: MdxOverrides| {
        let opts = NeuralOptions { model: ModelOptions { mdx, ..ModelOptions::default() }, ..NeuralOptions::default() };
        NeuralSeparator::builder(&bare).options(opts).build()
    };

    // Not in UVR's table: the error names the hash and every flag to pass.
    let e = load(MdxOverrides::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Model { .. }), "{msg}");
    for needle in [hash.as_str(), "--mdx-n-fft", "--mdx-dim-f", "--mdx-dim-t", "--mdx-compensate", "--mdx-primary-stem"]
    {
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }

    // A model-data row for it, in UVR's own format (dim_t as a power of two).
    let data = d.join("model_data.json");
    let row = serde_json::json!({hash.clone(): {"compensate": 1.035, "mdx_dim_f_set": 512, "mdx_dim_t_set": 5,
        "mdx_n_fft_scale_set": 2048, "primary_stem": "Vocals"}});
    std::fs::write(&data, row.to_string()).unwrap();
    let input = reference_input(&dir().join("refs"), "overlap", 44100);
    let want = NeuralSeparator::builder(dir().join("mdx-random.json"))
        .options(NeuralOptions::default())
        .build()
        .unwrap()
        .separate(&input, &SeparateOptions::default())
        .unwrap();
    let check = |mut sep: NeuralSeparator| {
        assert_eq!(sep.stems(), ["Vocals", "Instrumental"]);
        let got = sep.separate(&input, &SeparateOptions::default()).unwrap();
        for ((_, a), (_, b)) in got.iter().zip(want.iter()) {
            assert_eq!(a, b);
        }
    };
    check(load(MdxOverrides { model_data: Some(data.clone()), ..MdxOverrides::default() }).unwrap());

    // Flags alone do the same; a flag overrides the row, and a value that
    // does not fit the graph is refused at load.
    let flags = MdxOverrides {
        n_fft: Some(2048),
        dim_f: Some(512),
        dim_t: Some(32),
        compensate: Some(1.035),
        primary_stem: Some("Vocals".into()),
        model_data: None,
    };
    check(load(flags.clone()).unwrap());
    let e =
        load(MdxOverrides { dim_t: Some(64), model_data: Some(data.clone()), ..MdxOverrides::default() }).unwrap_err();
    assert!(e.to_string().contains("need [batch, 4, 512, 64]"), "{e}");
    let e = load(MdxOverrides { dim_f: Some(4000), ..flags }).unwrap_err();
    assert!(e.to_string().contains("dim_f 4000"), "{e}");

    // A malformed model-data file is a typed error naming it.
    std::fs::write(&data, "{not json").unwrap();
    let e = load(MdxOverrides { model_data: Some(data.clone()), ..MdxOverrides::default() }).unwrap_err();
    assert!(matches!(&e, Error::Model { path, .. } if path == &data), "{e}");
}
