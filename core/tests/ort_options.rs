//! ONNX Runtime options that must not change a single sample: I/O binding
//! (outputs bound once and reused) and the CPU memory arena off, on each
//! family's CI package, against the plain path and against the references.
#![cfg(feature = "onnx")]

mod common;
use common::*;

use splitsound_core::model::{ModelOptions, NeuralOptions, NeuralSeparator};
use splitsound_core::{SeparateOptions, Separator, Stems};

fn separate(package: &str, case: &str, batch: usize, model: ModelOptions) -> (Stems, RefArray) {
    let path = repo_root().join("core/tests/data/neural").join(package);
    let dir = path.parent().unwrap();
    let want = reference_in(&dir.join("refs"), &format!("{case}_output"));
    // The references' settings: overlap 0.25, no shifts (umx takes neither).
    let umx = package.starts_with("umx");
    let opts = NeuralOptions {
        batch,
        model,
        overlap: (!umx).then_some(0.25),
        shifts: package.starts_with("demucs").then_some(0),
        ..NeuralOptions::default()
    };
    let mut sep = NeuralSeparator::builder(&path).options(opts).build().unwrap();
    let input = reference_input(&dir.join("refs"), case, 44100);
    // Twice on one separator: the second run reuses the bound buffers.
    let first = sep.separate(&input, &SeparateOptions::default()).unwrap();
    let again = sep.separate(&input, &SeparateOptions::default()).unwrap();
    assert_same(&first, &again, &format!("{package} {case}: a second run"));
    (again, want)
}

fn assert_same(a: &Stems, b: &Stems, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: stems");
    for ((na, sa), (nb, sb)) in a.iter().zip(b.iter()) {
        assert_eq!(na, nb, "{what}: stem names");
        for ch in 0..sa.num_channels() {
            assert!(sa.channel(ch) == sb.channel(ch), "{what}: stem {na} channel {ch} differs");
        }
    }
}

#[test]
fn io_binding_and_no_arena_change_nothing() {
    let variants = [
        ("io binding", ModelOptions { io_binding: true, ..ModelOptions::default() }),
        ("no arena", ModelOptions { memory_arena: false, ..ModelOptions::default() }),
        ("both", ModelOptions { io_binding: true, memory_arena: false, ..ModelOptions::default() }),
    ];
    // demucs with batch 3 on "stereo": the last run has a smaller batch, so an
    // output changes shape between runs; umx's outputs follow the input length.
    for (package, case, batch) in [
        ("demucs/ci.json", "stereo", 3),
        ("demucs/ci.json", "short", 1),
        ("umx/umx-ci.json", "default", 1),
        ("mdx/mdx-random.json", "stereo", 2),
    ] {
        let (plain, want) = separate(package, case, batch, ModelOptions::default());
        for (name, model) in &variants {
            let (got, _) = separate(package, case, batch, model.clone());
            assert_same(&plain, &got, &format!("{package} {case} with {name}"));
        }
        // And the plain path itself still matches its reference (so the
        // comparison above is between right answers).
        let err = stems_error(&plain, &want);
        assert!(err < 1e-4, "{package} {case}: {err:.2e} of the reference's peak");
    }
}
