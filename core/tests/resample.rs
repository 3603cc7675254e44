//! Resampling: exact lengths, no time shift (a sweep against its analytic
//! signal), streaming equal to whole-buffer, across rates and block sizes.

mod common;
use common::*;
use splitsound_core::{AudioBuffer, StreamResampler, resample, resampled_len};

const RATES: &[u32] = &[8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000];

#[test]
fn exact_lengths_for_every_rate_pair() {
    for &a in RATES {
        for &b in RATES {
            for n in [0usize, 1, 7, 999, 4801] {
                let x = AudioBuffer::new(a, vec![noise(n, n as u64, 0.5)]).unwrap();
                let y = resample(&x, b).unwrap();
                assert_eq!(y.frames() as u64, resampled_len(n as u64, a, b), "{a}->{b} n={n}");
                assert_eq!(y.frames() as u64, ((n as u64 * b as u64) as f64 / a as f64).round() as u64);
            }
        }
    }
}

/// Logarithmic sweep from f0 to f1 over `secs`, with 50 ms raised-cosine fades.
fn sweep(rate: u32, secs: f64, f0: f64, f1: f64) -> Vec<f32> {
    let n = (secs * rate as f64).round() as usize;
    let k = (f1 / f0).ln() / secs;
    let fade = 0.05;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let phase = std::f64::consts::TAU * f0 * ((k * t).exp() - 1.0) / k;
            let g = (t / fade).min((secs - t) / fade).clamp(0.0, 1.0);
            let g = 0.5 - 0.5 * (std::f64::consts::PI * g).cos();
            (0.5 * g * phase.sin()) as f32
        })
        .collect()
}

#[test]
fn sweep_matches_the_analytic_signal() {
    for (a, b) in [(44100, 48000), (48000, 44100), (44100, 16000), (16000, 44100), (96000, 44100), (22050, 192000)] {
        let secs = 1.5;
        let top = 0.45 * a.min(b) as f64 * 0.9;
        let x = AudioBuffer::new(a, vec![sweep(a, secs, 50.0, top)]).unwrap();
        let y = resample(&x, b).unwrap();
        let want = sweep(b, secs, 50.0, top);
        assert_eq!(y.frames(), want.len());
        let (mut s, mut e) = (0f64, 0f64);
        for (p, q) in want.iter().zip(y.channel(0)) {
            s += (*p as f64).powi(2);
            e += (*p as f64 - *q as f64).powi(2);
        }
        let snr = 10.0 * (s / e).log10();
        eprintln!("{a} -> {b}: SNR {snr:.1} dB");
        assert!(snr > 100.0, "{a} -> {b}: SNR {snr:.1} dB");
    }
}

#[test]
fn streaming_equals_whole_buffer() {
    for (a, b) in [(44100, 48000), (48000, 16000), (8000, 192000), (44100, 44100)] {
        let x = AudioBuffer::new(a, vec![noise(30_011, 1, 0.5), noise(30_011, 2, 0.5)]).unwrap();
        let whole = resample(&x, b).unwrap();
        for block in [1usize, 7, 64, 1000, 4096, 100_000] {
            let mut r = StreamResampler::new(a, b, 2).unwrap();
            let mut out = vec![Vec::new(), Vec::new()];
            for start in (0..x.frames()).step_by(block) {
                let end = (start + block).min(x.frames());
                let chunk: Vec<&[f32]> = x.channels().iter().map(|c| &c[start..end]).collect();
                r.process(&chunk, &mut out).unwrap();
            }
            r.finish(&mut out).unwrap();
            assert_eq!(out, whole.channels(), "{a}->{b} block {block}");
            // reset() makes it reusable with identical output.
            r.reset();
            let mut again = vec![Vec::new(), Vec::new()];
            r.process(&x.planar(), &mut again).unwrap();
            r.finish(&mut again).unwrap();
            assert_eq!(again, whole.channels(), "{a}->{b} after reset");
        }
    }
}

#[test]
fn bad_arguments_are_typed() {
    assert!(StreamResampler::new(4000, 44100, 2).is_err());
    assert!(StreamResampler::new(44100, 400_000, 2).is_err());
    assert!(StreamResampler::new(44100, 48000, 0).is_err());
    let mut r = StreamResampler::new(44100, 48000, 2).unwrap();
    let mut out = vec![Vec::new()];
    assert!(r.process(&[&[0.0f32; 10][..]], &mut out).is_err());
    let mut out2 = vec![Vec::new(), Vec::new()];
    assert!(r.process(&[&[0.0f32; 10][..], &[0.0; 9][..]], &mut out2).is_err());
    r.finish(&mut out2).unwrap();
    assert!(r.process(&[&[0.0f32; 10][..], &[0.0; 10][..]], &mut out2).is_err());
}
