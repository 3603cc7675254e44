//! SAM-Audio (text-prompted separation) against the reference data Meta's own
//! code computed on a tiny seeded model (../shared/reference/sam-audio-tiny,
//! copied by python/tools/parity_sam_audio.py): our export of the same
//! weights (export_sam_audio.py), run by the Rust pipeline, must give the
//! reference's targets and residuals from the same noise and watermark message.
#![cfg(all(feature = "onnx", feature = "sam-audio"))]

mod common;
use common::*;
use std::path::PathBuf;

use splitsound_core::model::{Described, NeuralOptions, NeuralSeparator, TextPrompt};
use splitsound_core::{AudioBuffer, CancelToken, Error, SeparateOptions, Separator};

fn dir() -> PathBuf {
    repo_root().join("core/tests/data/neural/sam-audio")
}

fn refs(name: &str) -> RefArray {
    reference_in(&dir().join("refs"), name)
}

fn load(opts: NeuralOptions) -> NeuralSeparator {
    NeuralSeparator::builder(dir().join("sam-audio-tiny.json")).options(opts).build().unwrap()
}

fn prompt(i: usize) -> String {
    refs(&format!("input_{i}")).params["prompt"].as_str().unwrap().to_string()
}

/// A scratch copy of the package, for edited manifests next to its files.
fn package_copy(name: &str) -> PathBuf {
    let src = scratch(name);
    for f in std::fs::read_dir(dir()).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, src.join(f.file_name().unwrap())).unwrap();
        }
    }
    src
}

/// max |a − b| over the reference's peak.
fn rel(a: &[f32], want: &[f32]) -> f32 {
    assert_eq!(a.len(), want.len());
    max_abs_diff(a, want) / peak(want)
}

/// Item `i`'s noise [T_i, 2C] out of the batch's [2, 103, 16], and its message [2, 16].
fn item_draws(i: usize, frames: usize) -> TextPrompt {
    let noise = refs("ode_noise");
    let (t, w) = (noise.shape[1], noise.shape[2]);
    let rows = &noise.real[i * t * w..(i * t + frames) * w];
    let msg = refs("watermark_message").real;
    TextPrompt {
        description: Some(prompt(i)),
        ode_noise: Some(rows.to_vec()),
        watermark_message: Some(msg[i * 32..(i + 1) * 32].to_vec()),
    }
}

#[test]
fn tokenizes_as_the_reference() {
    let sep = load(NeuralOptions::default());
    for i in 0..2 {
        let want: Vec<u32> = refs(&format!("tokens_{i}")).real.iter().map(|&x| x as u32).collect();
        assert_eq!(sep.tokenize(&prompt(i)).unwrap(), want, "{}", prompt(i));
    }
}

#[test]
fn batch_matches_the_reference_separate() {
    let mut sep = load(NeuralOptions::default());
    let inputs: Vec<RefArray> = (0..2).map(|i| refs(&format!("input_{i}"))).collect();
    let prompts: Vec<String> = (0..2).map(prompt).collect();
    let items: Vec<Described> =
        (0..2).map(|i| Described { audio: &inputs[i].real, description: &prompts[i] }).collect();
    let noise = refs("ode_noise").real;
    let msg = refs("watermark_message").real;
    let out = sep.separate_described(&items, Some(&noise), Some(&msg), &SeparateOptions::default()).unwrap();
    for (i, [t, r]) in out.iter().enumerate() {
        let (et, er) = (rel(t, &refs(&format!("target_{i}")).real), rel(r, &refs(&format!("residual_{i}")).real));
        println!("item {i}: target {et:.2e}, residual {er:.2e} of peak");
        assert!(et < 1e-5 && er < 1e-5, "item {i}: target {et:.2e}, residual {er:.2e}");
    }
}

/// The longest item alone is the same computation as in the batch (no
/// padding frames): through the Separator, trimmed to the input's length.
#[test]
fn one_input_through_the_separator() {
    let input = refs("input_1");
    let n = input.real.len();
    let frames = n.div_ceil(1920);
    let mut sep = load(NeuralOptions { prompt: item_draws(1, frames), ..NeuralOptions::default() });
    assert_eq!(sep.stems(), ["target", "residual"]);
    let audio = AudioBuffer::new(48000, vec![input.real.clone()]).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |p: splitsound_core::Progress| seen.lock().unwrap().push((p.done, p.total));
    let stems = sep.separate(&audio, &SeparateOptions { progress: Some(&progress), cancel: None }).unwrap();
    for (name, want) in [("target", "target_1"), ("residual", "residual_1")] {
        let got = stems.get(name).unwrap();
        assert_eq!(got.frames(), n);
        let e = rel(got.channel(0), &refs(want).real[..n]);
        println!("{name}: {e:.2e} of peak");
        assert!(e < 1e-5, "{name}: {e:.2e}");
    }
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&(32, 32)), "one report per velocity evaluation");
}

#[test]
fn stereo_spreads_the_mono_result_and_sums_back() {
    let input = refs("input_0");
    let l = input.real.clone();
    let r: Vec<f32> = l.iter().enumerate().map(|(i, x)| 0.5 * x + 0.1 * ((i as f32) * 0.01).sin()).collect();
    let mut sep = load(NeuralOptions {
        prompt: TextPrompt { description: Some(prompt(0)), ..Default::default() },
        seed: 3,
        ..NeuralOptions::default()
    });
    assert_eq!(sep.output_channels(2), 2);
    let audio = AudioBuffer::new(48000, vec![l, r]).unwrap();
    let stems = sep.separate(&audio, &SeparateOptions::default()).unwrap();
    let (t, res) = (stems.get("target").unwrap(), stems.get("residual").unwrap());
    assert_eq!((t.num_channels(), t.frames(), t.sample_rate()), (2, audio.frames(), 48000));
    for c in 0..2 {
        let sum: Vec<f32> = t.channel(c).iter().zip(res.channel(c)).map(|(a, b)| a + b).collect();
        let e = rel(&sum, audio.channel(c));
        assert!(e < 1e-5, "channel {c}: target + residual differs from the input by {e:.2e} of its peak");
    }
    // The same seed gives the same output.
    let again = sep.separate(&audio, &SeparateOptions::default()).unwrap();
    assert_eq!(again, stems);
    // At 44.1 kHz: resampled to the model's 48 kHz and back, in the input's shape.
    let at = AudioBuffer::new(44100, audio.channels()[..1].to_vec()).unwrap();
    let stems = sep.separate(&at, &SeparateOptions::default()).unwrap();
    let t = stems.get("target").unwrap();
    assert_eq!((t.num_channels(), t.frames(), t.sample_rate()), (1, at.frames(), 44100));
}

/// Longer than a chunk: chunks of `segment_samples` cross-faded, each the
/// separation of its own samples with its frames' noise; the cost at a seam,
/// against the unchunked run, is printed.
#[test]
fn long_inputs_are_chunked_and_cross_faded() {
    let src = package_copy("sam-audio-chunks");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("sam-audio-tiny.json")).unwrap()).unwrap();
    // 40-frame chunks (1.6 s) overlapping by 8 frames.
    m["segment_samples"] = (40 * 1920).into();
    m["sam_audio"]["crossfade_samples"] = (8 * 1920).into();
    std::fs::write(src.join("chunked.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let input = refs("input_1");
    let n = input.real.len();
    let frames = n.div_ceil(1920);
    let draws = item_draws(1, frames);
    let audio = AudioBuffer::new(48000, vec![input.real.clone()]).unwrap();
    let opts = NeuralOptions { prompt: draws.clone(), ..NeuralOptions::default() };
    let mut chunked = NeuralSeparator::builder(src.join("chunked.json")).options(opts.clone()).build().unwrap();
    let stems = chunked.separate(&audio, &SeparateOptions::default()).unwrap();
    let whole = load(opts).separate(&audio, &SeparateOptions::default()).unwrap();
    // Chunks start at frames 0, 32 and 64 (64 + 40 reaches the end, 103):
    // each is the separation of its own samples with its frames' noise, and
    // consecutive ones blend linearly over the 8 frames they share.
    let hop = 1920;
    let noise = draws.ode_noise.as_ref().unwrap();
    let p = prompt(1);
    let chunks: Vec<[Vec<f32>; 2]> = [0usize, 32, 64]
        .iter()
        .map(|&s| {
            let (a, b) = (s * hop, ((s + 40) * hop).min(n));
            let rows = &noise[s * 16..(s + (b - a).div_ceil(hop)) * 16];
            let item = Described { audio: &input.real[a..b], description: &p };
            let mut out = chunked
                .separate_described(
                    &[item],
                    Some(rows),
                    draws.watermark_message.as_deref(),
                    &SeparateOptions::default(),
                )
                .unwrap();
            let [t, r] = out.pop().unwrap();
            [t[..b - a].to_vec(), r[..b - a].to_vec()]
        })
        .collect();
    for (k, name) in ["target", "residual"].into_iter().enumerate() {
        let mut want = vec![0f32; n];
        for (c, &s) in [0usize, 32, 64].iter().enumerate() {
            let a = s * hop;
            let blend = if c == 0 { 0 } else { 8 * hop };
            for (j, &v) in chunks[c][k].iter().enumerate() {
                want[a + j] = if j < blend {
                    let w = (j as f32 + 0.5) / blend as f32;
                    want[a + j] * (1.0 - w) + v * w
                } else {
                    v
                };
            }
        }
        let got = stems.get(name).unwrap().channel(0);
        assert_eq!(got, &want[..], "{name}: the chunks and their cross-fades");
        let b = whole.get(name).unwrap().channel(0);
        let seam = rel(&got[32 * hop..40 * hop], &b[32 * hop..40 * hop]);
        let all = rel(got, b);
        println!("{name}: chunked vs whole, {all:.2e} of peak overall, {seam:.2e} over the first cross-fade");
    }
    // A chunk no longer than the cross-fade is refused.
    let mut short = load(NeuralOptions { prompt: draws, segment_secs: Some(1.0), ..NeuralOptions::default() });
    let e = short.separate(&audio, &SeparateOptions::default());
    assert!(matches!(e, Err(Error::InvalidArgument { name: "segment_secs", .. })), "{e:?}");
}

#[test]
fn descriptions_it_cannot_take_are_typed_errors() {
    let sep = load(NeuralOptions::default());
    for bad in ["", "   ", &"a dog barking ".repeat(800), "犬が吠える"] {
        match sep.tokenize(bad) {
            Err(Error::InvalidArgument { name: "description", .. }) => {}
            other => panic!("{:?}: {other:?}", &bad[..bad.len().min(20)]),
        }
    }
    // No description at all.
    let mut sep = load(NeuralOptions::default());
    let audio = AudioBuffer::new(48000, vec![vec![0.1; 4000]]).unwrap();
    assert!(matches!(
        sep.separate(&audio, &SeparateOptions::default()),
        Err(Error::InvalidArgument { name: "description", .. })
    ));
    // Draws of the wrong shape or values.
    let x = refs("input_0").real;
    let item = Described { audio: &x, description: "the piano" };
    let mut sep = load(NeuralOptions::default());
    let e = sep.separate_described(&[item], None, Some(&[0.7; 32]), &SeparateOptions::default());
    assert!(matches!(e, Err(Error::InvalidArgument { name: "watermark message", .. })), "{e:?}");
    let e = sep.separate_described(&[item, item], Some(&[f32::NAN; 2 * 58 * 16]), None, &SeparateOptions::default());
    assert!(matches!(e, Err(Error::InvalidArgument { name: "ODE noise", .. })), "{e:?}");
    let mut sep = load(NeuralOptions {
        prompt: TextPrompt {
            description: Some("the piano".into()),
            ode_noise: Some(vec![0.0; 7]),
            watermark_message: None,
        },
        ..NeuralOptions::default()
    });
    assert!(matches!(
        sep.separate(&audio, &SeparateOptions::default()),
        Err(Error::InvalidArgument { name: "ODE noise", .. })
    ));
    // A description for a model with fixed stems.
    let demucs = repo_root().join("core/tests/data/neural/demucs/htdemucs-ci.json");
    if demucs.exists() {
        let e = NeuralSeparator::builder(&demucs)
            .options(NeuralOptions {
                prompt: TextPrompt { description: Some("a dog".into()), ..Default::default() },
                ..NeuralOptions::default()
            })
            .build();
        assert!(matches!(e, Err(Error::InvalidArgument { name: "description", .. })), "{e:?}");
    }
}

#[test]
fn cancelling_stops_between_evaluations() {
    let mut sep = load(NeuralOptions {
        prompt: TextPrompt { description: Some("the piano".into()), ..Default::default() },
        ..NeuralOptions::default()
    });
    let audio = AudioBuffer::new(48000, vec![refs("input_0").real]).unwrap();
    let cancel = CancelToken::new();
    let progress = |p: splitsound_core::Progress| {
        if p.done == 3 {
            cancel.cancel();
        }
    };
    let r = sep.separate(&audio, &SeparateOptions { progress: Some(&progress), cancel: Some(&cancel) });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
}

#[test]
fn packages_whose_graphs_disagree_are_refused() {
    let src = package_copy("sam-audio-bad");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("sam-audio-tiny.json")).unwrap()).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("latent channels", Box::new(|m| m["sam_audio"]["latent_channels"] = 9.into())),
        ("decoder's latent", Box::new(|m| m["files"][3]["inputs"][0]["shape"][1] = 9.into())),
        ("graph order", Box::new(|m| m["files"].as_array_mut().unwrap().swap(1, 3))),
        ("tokenizer", Box::new(|m| m["sam_audio"]["tokenizer"] = "missing.json".into())),
        (
            "three graphs",
            Box::new(|m| {
                m["files"].as_array_mut().unwrap().pop();
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut bad = m.clone();
        edit(&mut bad);
        std::fs::write(src.join("bad.json"), serde_json::to_vec(&bad).unwrap()).unwrap();
        match NeuralSeparator::builder(src.join("bad.json")).options(NeuralOptions::default()).build() {
            Err(Error::Model { detail, .. }) => println!("{what}: {detail}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A graph whose fixed width differs from what the manifest says.
    let mut bad = m.clone();
    bad["files"][0]["outputs"][0]["shape"][2] = 33.into();
    bad["files"][2]["inputs"][3]["shape"][2] = 33.into();
    std::fs::write(src.join("bad.json"), serde_json::to_vec(&bad).unwrap()).unwrap();
    assert!(matches!(
        NeuralSeparator::builder(src.join("bad.json")).options(NeuralOptions::default()).build(),
        Err(Error::Model { .. })
    ));
}
