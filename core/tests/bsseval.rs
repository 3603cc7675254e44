//! BSS Eval v4 parity: our framewise SDR/ISR/SIR/SAR against sigsep's museval
//! (`museval.evaluate`, v4 mode) on the cases of python/tools/parity_bsseval.py.

mod common;
use common::*;

use splitsound_core::AudioBuffer;
use splitsound_core::eval::{BssEvalOptions, bss_eval, nan_median};

fn buffers(r: &RefArray) -> Vec<AudioBuffer> {
    let (s, c, n) = (r.shape[0], r.shape[1], r.shape[2]);
    (0..s)
        .map(|j| {
            AudioBuffer::new(8000, (0..c).map(|ch| r.real[(j * c + ch) * n..(j * c + ch + 1) * n].to_vec()).collect())
                .unwrap()
        })
        .collect()
}

#[test]
fn matches_museval_framewise() {
    let dir = repo_root().join("core/tests/data/bsseval");
    for case in ["stereo3", "mono2", "stereo4_short_est"] {
        let refs = reference_in(&dir, &format!("{case}_references"));
        let ests = reference_in(&dir, &format!("{case}_estimates"));
        let p = &ests.params;
        let opts = BssEvalOptions {
            window: p["window"].as_u64().unwrap() as usize,
            hop: p["hop"].as_u64().unwrap() as usize,
            filter_len: p["filter_len"].as_u64().unwrap() as usize,
        };
        let got = bss_eval(&buffers(&refs), &buffers(&ests), &opts).unwrap();
        let mut worst = 0.0f64;
        for (metric, ours) in [("sdr", &got.sdr), ("isr", &got.isr), ("sir", &got.sir), ("sar", &got.sar)] {
            let want = p[metric].as_array().unwrap();
            assert_eq!(ours.len(), want.len(), "{case} {metric}: sources");
            for (j, (o, w)) in ours.iter().zip(want).enumerate() {
                let w: Vec<f64> = w.as_array().unwrap().iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
                assert_eq!(o.len(), w.len(), "{case} {metric} source {j}: frames");
                for (t, (a, b)) in o.iter().zip(&w).enumerate() {
                    if b.is_nan() {
                        assert!(a.is_nan(), "{case} {metric} source {j} frame {t}: {a} where museval has NaN");
                    } else {
                        worst = worst.max((a - b).abs());
                        assert!((a - b).abs() < 0.01, "{case} {metric} source {j} frame {t}: {a} vs museval {b}");
                    }
                }
                let (ma, mb) = (nan_median(o), nan_median(&w));
                assert!((ma - mb).abs() < 0.01 || (ma.is_nan() && mb.is_nan()), "{case} {metric} {j} median");
            }
        }
        println!("{case}: largest difference from museval {worst:.2e} dB");
    }
}

#[test]
fn rejects_mismatched_inputs() {
    let a = AudioBuffer::new(8000, vec![vec![0.1; 9000]; 2]).unwrap();
    let mono = AudioBuffer::new(8000, vec![vec![0.1; 9000]]).unwrap();
    let opts = BssEvalOptions { window: 4000, hop: 4000, filter_len: 64 };
    assert!(bss_eval(std::slice::from_ref(&a), &[], &opts).is_err());
    assert!(bss_eval(std::slice::from_ref(&a), &[mono], &opts).is_err());
    assert!(bss_eval(std::slice::from_ref(&a), std::slice::from_ref(&a), &BssEvalOptions { hop: 0, ..opts }).is_err());
    // A perfect estimate: infinite SDR, no NaN.
    let b = AudioBuffer::new(8000, vec![(0..9000).map(|i| (i as f32 * 0.01).sin()).collect(); 2]).unwrap();
    let s = bss_eval(&[a, b.clone()], &[AudioBuffer::new(8000, vec![vec![0.1; 9000]; 2]).unwrap(), b], &opts).unwrap();
    assert!(s.sdr[1].iter().all(|v| *v > 100.0), "{:?}", s.sdr);
}
