//! The real-time block API gives the offline separator's output delayed by the
//! reported latency, whatever the block sizes, and reports misuse with errors.

use splitsound_core::builtin::{BuiltinConfig, CenterConfig, HpssConfig};
use splitsound_core::{
    AudioBuffer, SeparateOptions,
    realtime::{ProcessError, RealtimeSeparator},
};

fn signal(rate: u32, secs: f32, channels: usize) -> AudioBuffer {
    let n = (rate as f32 * secs) as usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let chans = (0..channels)
        .map(|c| {
            (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let noise = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let t = i as f32 / rate as f32;
                    let hit = if (t * 4.0).fract() < 0.05 { noise } else { 0.02 * noise };
                    0.3 * (2.0 * std::f32::consts::PI * (196.0 + 50.0 * c as f32) * t).sin() + 0.5 * hit
                })
                .collect()
        })
        .collect();
    AudioBuffer::new(rate, chans).unwrap()
}

/// Runs `audio` through `rt` in blocks cycling through `sizes`; returns
/// stems × channels × frames.
fn run(rt: &mut RealtimeSeparator, audio: &AudioBuffer, sizes: &[usize]) -> Vec<Vec<Vec<f32>>> {
    let max = *sizes.iter().max().unwrap();
    rt.prepare(audio.sample_rate(), max, audio.num_channels()).unwrap();
    let (stems, oc) = (rt.stems().len(), rt.output_channels());
    let mut out = vec![vec![Vec::with_capacity(audio.frames()); oc]; stems];
    let mut bufs = vec![vec![0.0f32; max]; stems * oc];
    let (mut pos, mut k) = (0, 0);
    while pos < audio.frames() {
        let n = sizes[k % sizes.len()].min(audio.frames() - pos);
        let input: Vec<&[f32]> = audio.channels().iter().map(|c| &c[pos..pos + n]).collect();
        let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..n]).collect();
        rt.process(&input, &mut outs).unwrap();
        for (i, b) in bufs.iter().enumerate() {
            out[i / oc][i % oc].extend_from_slice(&b[..n]);
        }
        pos += n;
        k += 1;
    }
    out
}

fn check(name: &str, cfg: BuiltinConfig, audio: &AudioBuffer, reach: usize) {
    let offline = cfg.clone().build().unwrap().separate(audio, &SeparateOptions::default()).unwrap();
    let block_sets: [&[usize]; 6] = [&[1], &[64], &[480], &[512], &[4096], &[1, 700, 64, 4096, 13, 512, 2049]];
    for sizes in block_sets {
        let mut rt = RealtimeSeparator::from_config(cfg.clone()).unwrap();
        let got = run(&mut rt, audio, sizes);
        let lat = rt.latency_samples();
        let n = audio.frames();
        // The offline output's end reflects at the end of the input; a stream has none.
        let compared = n - lat - reach;
        let mut worst = 0.0f32;
        for ((stem, want), g) in offline.iter().zip(&got) {
            for (wc, gc) in want.channels().iter().zip(g) {
                assert!(gc[..lat].iter().all(|&x| x == 0.0), "{name}/{stem}: output before the latency");
                assert!(wc[..compared].iter().any(|&x| x.abs() > 1e-3), "{name}/{stem}: nothing to compare");
                for j in 0..compared {
                    worst = worst.max((gc[j + lat] - wc[j]).abs());
                }
            }
        }
        assert!(worst <= 1e-6, "{name} blocks {sizes:?}: differs from offline by {worst}");
        assert_eq!(rt.non_finite_samples(), 0);
    }
}

#[test]
fn hpss_equals_offline_delayed_by_the_latency() {
    let audio = signal(22_050, 6.0, 2);
    let cfg = HpssConfig::default();
    let reach = cfg.n_fft + (cfg.kernel_harmonic / 2 + 1) * cfg.hop_length;
    check("hpss", BuiltinConfig::Hpss(cfg.clone()), &audio, reach);
    // Mono, an even kernel, and margins that add a residual stem.
    let odd = HpssConfig {
        kernel_harmonic: 8,
        kernel_percussive: 12,
        margin_harmonic: 2.0,
        n_fft: 1024,
        hop_length: 256,
        ..cfg
    };
    let reach = odd.n_fft + (odd.kernel_harmonic / 2 + 1) * odd.hop_length;
    check("hpss-margins", BuiltinConfig::Hpss(odd), &signal(16_000, 4.0, 1), reach);
}

#[test]
fn center_equals_offline_delayed_by_the_latency() {
    let audio = signal(44_100, 5.0, 2);
    let cfg = CenterConfig::default();
    let reach = cfg.n_fft + (cfg.percussive_kernel / 2 + 1) * cfg.hop_length;
    check("center", BuiltinConfig::Center(cfg.clone()), &audio, reach);
    // Without the percussive filter: latency is one STFT window.
    let plain = CenterConfig { percussive_kernel: 0, ..cfg };
    let mut rt = RealtimeSeparator::from_config(BuiltinConfig::Center(plain.clone())).unwrap();
    rt.prepare(44_100, 512, 2).unwrap();
    assert_eq!(rt.latency_samples(), plain.n_fft - 1);
    check("center-plain", BuiltinConfig::Center(plain.clone()), &audio, plain.n_fft + plain.hop_length);
}

#[test]
fn reset_restarts_and_misuse_is_an_error() {
    let audio = signal(22_050, 2.0, 2);
    let mut rt = RealtimeSeparator::load("hpss", Default::default(), Default::default()).unwrap();
    let first = run(&mut rt, &audio, &[256]);
    // run() prepares again; reset() must give the same as a fresh start.
    rt.reset();
    let mut again = vec![vec![Vec::new(); 2]; 2];
    let mut bufs = vec![vec![0.0f32; 256]; 4];
    for pos in (0..audio.frames()).step_by(256) {
        let n = 256.min(audio.frames() - pos);
        let input: Vec<&[f32]> = audio.channels().iter().map(|c| &c[pos..pos + n]).collect();
        let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..n]).collect();
        rt.process(&input, &mut outs).unwrap();
        for (i, b) in bufs.iter().enumerate() {
            again[i / 2][i % 2].extend_from_slice(&b[..n]);
        }
    }
    assert_eq!(first, again);

    let mut fresh = RealtimeSeparator::load("center", Default::default(), Default::default()).unwrap();
    let l = vec![0.0f32; 64];
    let mut o: Vec<Vec<f32>> = vec![vec![0.0; 64]; 4];
    let mut outs: Vec<&mut [f32]> = o.iter_mut().map(|b| &mut b[..]).collect();
    assert_eq!(fresh.process(&[&l, &l], &mut outs), Err(ProcessError::NotPrepared));
    assert!(fresh.prepare(44_100, 64, 1).is_err(), "center needs stereo");
    fresh.prepare(44_100, 32, 2).unwrap();
    assert_eq!(fresh.process(&[&l, &l], &mut outs), Err(ProcessError::BlockTooLarge { got: 64, max: 32 }));
    assert_eq!(fresh.process(&[&l[..32]], &mut outs), Err(ProcessError::InputChannels { got: 1, expected: 2 }));
    let mut short: Vec<&mut [f32]> = o.iter_mut().take(3).map(|b| &mut b[..32]).collect();
    assert_eq!(
        fresh.process(&[&l[..32], &l[..32]], &mut short),
        Err(ProcessError::OutputCount { got: 3, expected: 4 })
    );
    let mut outs: Vec<&mut [f32]> = o.iter_mut().map(|b| &mut b[..32]).collect();
    let nan = [f32::NAN; 32];
    fresh.process(&[&nan, &l[..32]], &mut outs).unwrap();
    assert_eq!(fresh.non_finite_samples(), 32);
    assert!(RealtimeSeparator::load("repet", Default::default(), Default::default()).is_err());
    assert!(RealtimeSeparator::load("nope", Default::default(), Default::default()).is_err());
}
