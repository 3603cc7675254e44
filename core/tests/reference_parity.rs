//! Parity with reference implementations: torch.stft/istft, librosa.stft/istft,
//! librosa.effects.hpss. References come from scripts/make_references.py.

mod common;
use common::*;
use splitsound_core::builtin::{Hpss, HpssConfig};
use splitsound_core::{AudioBuffer, SeparateOptions, Separator, Spectrogram, Stft, StftConfig};

fn to_spectrogram(r: &RefArray) -> Spectrogram {
    // Reference layout is [bins, frames]; ours is frame-major.
    let (bins, frames) = (r.shape[0], r.shape[1]);
    let mut s = Spectrogram::zeros(bins, frames);
    for f in 0..bins {
        for t in 0..frames {
            s.data[t * bins + f] = r.complex[f * frames + t];
        }
    }
    s
}

fn check_case(tag: &str, cfg_of: fn(usize, usize) -> StftConfig) {
    let input = reference(&format!("{tag}_input"));
    let want = reference(tag);
    let n_fft = want.params["n_fft"].as_u64().unwrap() as usize;
    let hop = want.params["hop"].as_u64().unwrap() as usize;
    let normalized = want.params["normalized"].as_bool().unwrap_or(false);
    let mut stft = Stft::new(cfg_of(n_fft, hop).with_normalized(normalized)).unwrap();

    let got = stft.forward(&input.real).unwrap();
    let want_s = to_spectrogram(&want);
    assert_eq!((got.bins, got.frames), (want_s.bins, want_s.frames), "{tag}: shape");
    let scale = want_s.data.iter().map(|c| c.norm()).fold(0.0, f32::max);
    let err = got.data.iter().zip(&want_s.data).map(|(a, b)| (a - b).norm()).fold(0.0, f32::max);
    assert!(err / scale < 1e-5, "{tag}: forward relative error {}", err / scale);

    let z = to_spectrogram(&reference(&format!("{tag}_istft_input")));
    let want_y = reference(&format!("{tag}_istft"));
    let y = stft.inverse(&z, Some(want_y.real.len())).unwrap();
    let err = max_abs_diff(&y, &want_y.real) / peak(&want_y.real);
    assert!(err < 1e-5, "{tag}: inverse relative error {err}");
}

#[test]
fn stft_matches_torch() {
    for tag in ["torch_stft_512_128_5000_raw", "torch_stft_512_128_5003_norm", "torch_stft_4096_1024_20000_norm"] {
        check_case(tag, StftConfig::torch);
    }
}

#[test]
fn stft_matches_librosa() {
    for tag in ["librosa_stft_2048_512_9001", "librosa_stft_512_128_777"] {
        check_case(tag, StftConfig::librosa);
    }
}

fn hpss_case(tag: &str, cfg: HpssConfig) {
    let input = reference("hpss_input");
    let sr = input.params["sample_rate"].as_u64().unwrap() as u32;
    let audio = AudioBuffer::new(sr, vec![input.real.clone()]).unwrap();
    let mut sep = Hpss::new(cfg).unwrap();
    let stems = sep.separate(&audio, &SeparateOptions::default()).unwrap();
    for stem in ["harmonic", "percussive"] {
        let want = reference(&format!("{tag}_{stem}"));
        let got = stems.get(stem).unwrap().channel(0);
        let rel = max_abs_diff(got, &want.real) / peak(&want.real);
        assert!(rel <= 1e-4, "{tag} {stem}: relative error {rel}");
    }
}

#[test]
fn hpss_matches_librosa_defaults() {
    hpss_case("hpss_default", HpssConfig::default());
}

#[test]
fn hpss_matches_librosa_kernels_and_power() {
    hpss_case(
        "hpss_k17_9_p1",
        HpssConfig { kernel_harmonic: 17, kernel_percussive: 9, power: 1.0, ..Default::default() },
    );
}

#[test]
fn hpss_matches_librosa_margin() {
    hpss_case("hpss_margin", HpssConfig { margin_percussive: 3.0, ..Default::default() });
}
