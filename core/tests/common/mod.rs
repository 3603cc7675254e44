//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use splitsound_core::{AudioBuffer, Complex32, DecodeOptions, decode_file};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn demo(name: &str) -> AudioBuffer {
    decode_file(repo_root().join("examples/data/demo").join(format!("{name}.flac")), &DecodeOptions::default())
        .expect("demo file decodes")
}

/// A fresh scratch directory under the target dir, removed first if it exists.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Reference array written by scripts/make_references.py.
pub struct RefArray {
    pub shape: Vec<usize>,
    pub real: Vec<f32>,
    pub complex: Vec<Complex32>,
    pub params: serde_json::Value,
}

pub fn reference(name: &str) -> RefArray {
    reference_in(&repo_root().join("core/tests/data/refs"), name)
}

/// A reference array from the `index.json` in `dir` (same format).
pub fn reference_in(dir: &std::path::Path, name: &str) -> RefArray {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("refs index")).unwrap();
    let entry = &index["arrays"][name];
    assert!(!entry.is_null(), "no reference named {name}");
    let bytes = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let shape = entry["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let params = entry["params"].clone();
    if entry["dtype"] == "complex64" {
        let complex = floats.chunks_exact(2).map(|c| Complex32::new(c[0], c[1])).collect();
        RefArray { shape, real: vec![], complex, params }
    } else {
        RefArray { shape, real: floats, complex: vec![], params }
    }
}

/// Signal-to-distortion ratio in dB of `est` against `reference`, all channels.
pub fn sdr(reference: &AudioBuffer, est: &AudioBuffer) -> f64 {
    let (mut num, mut den) = (1e-12f64, 1e-12f64);
    for (r, e) in reference.channels().iter().zip(est.channels()) {
        for (&a, &b) in r.iter().zip(e) {
            num += (a as f64).powi(2);
            den += (a as f64 - b as f64).powi(2);
        }
    }
    10.0 * (num / den).log10()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn peak(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Deterministic noise in [-amp, amp].
pub fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            amp * (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

/// True if `program` runs.
pub fn have(program: &str) -> bool {
    std::process::Command::new(program).arg("-version").output().is_ok()
}

/// Panics with install advice if a tool the test command installs is missing.
pub fn require(program: &str) {
    assert!(
        have(program),
        "`{program}` is not installed; the README's test command installs it (apt-get install {program})"
    );
}

/// The `<case>_input` array of a reference folder as audio (channels × frames).
pub fn reference_input(dir: &std::path::Path, case: &str, rate: u32) -> AudioBuffer {
    let r = reference_in(dir, &format!("{case}_input"));
    let (c, n) = (r.shape[0], r.shape[1]);
    AudioBuffer::new(rate, (0..c).map(|i| r.real[i * n..(i + 1) * n].to_vec()).collect()).unwrap()
}

/// Largest difference between `stems` and a stems × channels × frames reference,
/// relative to the reference's peak; checks names' count and shapes.
pub fn stems_error(stems: &splitsound_core::Stems, want: &RefArray) -> f32 {
    let (s, c, n) = (want.shape[0], want.shape[1], want.shape[2]);
    assert_eq!(stems.len(), s);
    let peak = want.real.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut err = 0.0f32;
    for (k, (name, stem)) in stems.iter().enumerate() {
        assert_eq!((stem.num_channels(), stem.frames()), (c, n), "stem {name} shape");
        for ch in 0..c {
            let r = &want.real[(k * c + ch) * n..(k * c + ch + 1) * n];
            for (a, b) in stem.channel(ch).iter().zip(r) {
                let d = (a - b).abs();
                // f32::max would skip a NaN.
                err = if d.is_nan() { f32::INFINITY } else { err.max(d) };
            }
        }
    }
    err / peak
}

/// [`stems_error`] for a reference kept only in windows (`params.ranges`,
/// python/tools/_refio.py `windows`): its first `want.shape[0]` stems, each
/// window's samples against the same samples of `stems`.
pub fn windows_error(stems: &splitsound_core::Stems, want: &RefArray) -> f32 {
    let ranges: Vec<(usize, usize)> = want.params["ranges"]
        .as_array()
        .expect("a windowed reference has ranges")
        .iter()
        .map(|r| (r[0].as_u64().unwrap() as usize, r[1].as_u64().unwrap() as usize))
        .collect();
    let (s, c, kept) = (want.shape[0], want.shape[1], want.shape[2]);
    assert_eq!(kept, ranges.iter().map(|(a, b)| b - a).sum::<usize>());
    assert!(stems.len() >= s);
    let mut err = 0f32;
    for (k, (_, audio)) in stems.iter().take(s).enumerate() {
        assert_eq!(audio.num_channels(), c);
        for (ch, samples) in audio.channels().iter().enumerate() {
            let row = &want.real[(k * c + ch) * kept..(k * c + ch + 1) * kept];
            let mut at = 0;
            for &(a, b) in &ranges {
                err = err.max(max_abs_diff(&samples[a..b], &row[at..at + b - a]));
                at += b - a;
            }
        }
    }
    err / peak(&want.real)
}

/// A case of python/tools/parity_demucs.py (`refs/<case>_output` with its
/// overlap, shifts and recorded shift offsets) run through the package of
/// the same name in `packages`; the largest error relative to the peak.
#[cfg(feature = "onnx")]
pub fn apply_model_case(refs: &std::path::Path, packages: &std::path::Path, case: &str, batch: usize) -> f32 {
    use splitsound_core::model::{NeuralOptions, NeuralSeparator};
    use splitsound_core::{SeparateOptions, Separator};
    let want = reference_in(refs, &format!("{case}_output"));
    let p = &want.params;
    let offsets: Vec<usize> = p["offsets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let opts = NeuralOptions {
        overlap: Some(p["overlap"].as_f64().unwrap()),
        shifts: Some(p["shifts"].as_u64().unwrap() as u32),
        shift_offsets: Some(offsets),
        batch,
        ..NeuralOptions::default()
    };
    let package = packages.join(format!("{}.json", p["package"].as_str().unwrap()));
    let mut sep = NeuralSeparator::builder(package).options(opts).build().unwrap();
    let stems = sep.separate(&reference_input(refs, case, 44100), &SeparateOptions::default()).unwrap();
    stems_error(&stems, &want)
}
