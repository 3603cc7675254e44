//! Ensembles: every algorithm against audio-separator 0.47's own `Ensembler`
//! on the same inputs (python/tools/parity_ensemble.py), and ensembles of
//! model packages run as one separator, from code and from an ensemble file.

mod common;
use common::*;

use splitsound_core::ensemble::{EnsembleAlgorithm, ensemble};
use splitsound_core::{AudioBuffer, Error, SeparateOptions, Separator};

fn channels(r: &RefArray) -> Vec<Vec<f32>> {
    let (c, n) = (r.shape[0], r.shape[1]);
    (0..c).map(|i| r.real[i * n..(i + 1) * n].to_vec()).collect()
}

#[test]
fn matches_audio_separators_ensembler() {
    let dir = repo_root().join("core/tests/data/ensemble");
    let inputs: Vec<Vec<Vec<f32>>> = (0..3).map(|i| channels(&reference_in(&dir, &format!("input{i}")))).collect();
    for count in [3, 2] {
        let x: Vec<&[Vec<f32>]> = inputs[..count].iter().map(|v| &v[..]).collect();
        let longest = x.iter().map(|v| v[0].len()).max().unwrap();
        for alg in EnsembleAlgorithm::ALL {
            let want = reference_in(&dir, &format!("{}_{count}", alg.name()));
            let weights: Option<Vec<f64>> =
                want.params["weights"].as_array().map(|w| w.iter().map(|v| v.as_f64().unwrap()).collect());
            let got = ensemble(&x, alg, weights.as_deref()).unwrap();
            let want = channels(&want);
            let n = want[0].len();
            // uvr_* lose the last len mod 1024 samples there; here they are zeros.
            assert_eq!(got[0].len(), longest, "{alg}: every stem keeps the longest input's length");
            let peak = want.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
            let mut err = 0.0f32;
            for (g, w) in got.iter().zip(&want) {
                for (a, b) in g[..n].iter().zip(w) {
                    err = err.max((a - b).abs());
                }
                assert!(g[n..].iter().all(|&v| v == 0.0), "{alg}: the tail beyond the reference is zeros");
            }
            println!("{alg} of {count}: max error {:.2e} of peak", err / peak);
            // The waveform ones are the same arithmetic; the spectral ones differ by
            // librosa's float64 STFT against our float32 one.
            let bound = if alg.name().ends_with("_wave") || alg == EnsembleAlgorithm::EnsembleWav { 0.0 } else { 2e-6 };
            assert!(err / peak <= bound, "{alg} of {count}: max error {:.2e} of the peak", err / peak);
        }
    }
}

#[cfg(feature = "onnx")]
mod packages {
    use super::*;
    use splitsound_core::ensemble::EnsembleSeparator;
    use splitsound_core::model::{NeuralOptions, NeuralSeparator};

    fn msst(family: &str) -> std::path::PathBuf {
        repo_root().join("core/tests/data/neural/msst").join(family).join("ci.json")
    }

    fn input() -> AudioBuffer {
        let n = 9000;
        let chans = (0..2)
            .map(|c| {
                let hiss = noise(n, 3 + c as u64, 0.05);
                (0..n).map(|i| 0.4 * (i as f32 * (0.02 + 0.003 * c as f32)).sin() + hiss[i]).collect()
            })
            .collect();
        AudioBuffer::new(44100, chans).unwrap()
    }

    /// BS-RoFormer ([vocals, other]), Mel-Band RoFormer ([vocals, other] with
    /// `other` its residual) and a four-stem HT-Demucs: `other` of a two-stem
    /// model beside vocals is the instrumental, HT-Demucs's `other` stays other.
    #[test]
    fn models_are_matched_by_stem_and_combined() {
        let demucs = repo_root().join("core/tests/data/neural/demucs/ci.json");
        let paths = [msst("bs-roformer"), msst("mel-band-roformer"), demucs];
        let load = |p: &std::path::Path| -> Box<dyn Separator> {
            Box::new(NeuralSeparator::builder(p).options(NeuralOptions::default()).build().unwrap())
        };
        let audio = input();
        let singles: Vec<_> =
            paths.iter().map(|p| load(p).separate(&audio, &SeparateOptions::default()).unwrap()).collect();
        for alg in [EnsembleAlgorithm::AvgWave, EnsembleAlgorithm::MaxFft] {
            let weights = (alg == EnsembleAlgorithm::AvgWave).then(|| vec![2.0, 1.0, 0.5]);
            let mut ens =
                EnsembleSeparator::new(paths.iter().map(|p| load(p)).collect(), alg, weights.clone()).unwrap();
            assert_eq!(ens.stems(), ["vocals", "instrumental", "drums", "bass", "other"]);
            let out = ens.separate(&audio, &SeparateOptions::default()).unwrap();
            // vocals: all three, in model order, with their weights.
            let v: Vec<&[Vec<f32>]> = singles.iter().map(|s| s.get("vocals").unwrap().channels()).collect();
            let want = ensemble(&v, alg, weights.as_deref()).unwrap();
            assert_eq!(out.get("vocals").unwrap().channels(), &want[..], "{alg}: vocals");
            // instrumental: the RoFormers' `other`, with their weights.
            let i: Vec<&[Vec<f32>]> = singles[..2].iter().map(|s| s.get("other").unwrap().channels()).collect();
            let w = weights.as_ref().map(|w| w[..2].to_vec());
            let want = ensemble(&i, alg, w.as_deref()).unwrap();
            assert_eq!(out.get("instrumental").unwrap().channels(), &want[..], "{alg}: instrumental");
            // One model's stems pass through.
            assert_eq!(out.get("drums").unwrap(), singles[2].get("drums").unwrap());
            assert_eq!(out.get("other").unwrap(), singles[2].get("other").unwrap());
        }
    }

    #[test]
    fn ensemble_files_and_bad_ensembles() {
        let d = scratch("ensemble_file");
        let bs = msst("bs-roformer");
        // A package relative to the file, one by its absolute path, and a built-in.
        let rel_dir = d.join("presets");
        std::fs::create_dir_all(&rel_dir).unwrap();
        let file = rel_dir.join("preset.json");
        let rel_repo = pathdiff(&repo_root().join("core/tests/data/neural/msst/mdx23c/ci.json"), &rel_dir);
        let spec = serde_json::json!({"ensemble": {
            "models": [bs.to_string_lossy(), rel_repo, "builtin:center"],
            "algorithm": "median_fft"}});
        std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
        let mut sep = splitsound_core::load_separator(file.to_str().unwrap(), NeuralOptions::default()).unwrap();
        assert_eq!(sep.stems(), ["vocals", "instrumental", "accompaniment"]);
        let out = sep.separate(&input(), &SeparateOptions::default()).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|(_, s)| s.frames() == 9000 && s.channels().iter().flatten().all(|v| v.is_finite())));

        let bad: [(&str, serde_json::Value); 5] = [
            ("one model", serde_json::json!({"ensemble": {"models": [bs.to_string_lossy()]}})),
            (
                "weights count",
                serde_json::json!({"ensemble": {"models": [bs.to_string_lossy(), "builtin:hpss"], "weights": [1]}}),
            ),
            (
                "zero sum",
                serde_json::json!({"ensemble": {"models": [bs.to_string_lossy(), "builtin:hpss"], "weights": [1, -1]}}),
            ),
            (
                "ignored weights",
                serde_json::json!({"ensemble": {"models": [bs.to_string_lossy(), "builtin:hpss"], "algorithm": "min_wave", "weights": [2, 1]}}),
            ),
            (
                "unknown key",
                serde_json::json!({"ensemble": {"models": [bs.to_string_lossy(), "builtin:hpss"], "algo": "x"}}),
            ),
        ];
        for (what, spec) in bad {
            std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
            match splitsound_core::load_separator(file.to_str().unwrap(), NeuralOptions::default()) {
                Err(e @ (Error::InvalidArgument { .. } | Error::Model { .. })) => println!("{what}: {e}"),
                other => panic!("{what}: expected a typed error, got {:?}", other.map(|s| s.name().to_string())),
            }
        }
        // An unknown algorithm name lists the known ones.
        let e = "avg".parse::<EnsembleAlgorithm>().unwrap_err().to_string();
        assert!(e.contains("avg_wave") && e.contains("ensemble_wav"), "{e}");
    }

    /// `path` relative to `base` (both absolute, under the same root).
    fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
        let (p, b) = (path.canonicalize().unwrap(), base.canonicalize().unwrap());
        let common = p.components().zip(b.components()).take_while(|(x, y)| x == y).count();
        let ups = b.components().count() - common;
        let mut out = std::path::PathBuf::new();
        (0..ups).for_each(|_| out.push(".."));
        p.components().skip(common).for_each(|c| out.push(c));
        out.to_string_lossy().into_owned()
    }
}
