//! `RealtimeSeparator::process` and `reset` allocate nothing after `prepare`:
//! this test binary counts every allocation the test thread makes while armed.

use splitsound_core::realtime::RealtimeSeparator;

#[path = "support/counting_alloc.rs"]
mod counting;
use counting::counted;

#[test]
fn process_and_reset_allocate_nothing_after_prepare() {
    let rate = 44_100;
    let n = rate as usize * 6;
    let input: Vec<Vec<f32>> =
        (0..2).map(|c| (0..n).map(|i| ((i * (7 + c)) % 101) as f32 / 101.0 - 0.5).collect()).collect();
    let sizes = [1usize, 64, 480, 512, 4096, 333, 2048];
    for name in ["hpss", "center"] {
        let mut rt = RealtimeSeparator::load(name, Default::default(), Default::default()).unwrap();
        rt.prepare(rate, 4096, 2).unwrap();
        assert_eq!(rt.stems().len() * rt.output_channels(), 4);
        let mut bufs = vec![vec![0.0f32; 4096]; 4];
        let mut nonzero = false;
        let allocations = counted(|| {
            let (mut pos, mut k) = (0, 0);
            while pos < n {
                let len = sizes[k % sizes.len()].min(n - pos);
                let ins = [&input[0][pos..pos + len], &input[1][pos..pos + len]];
                let [a, b, c, d] = bufs.as_mut_slice() else { unreachable!() };
                let mut outs = [&mut a[..len], &mut b[..len], &mut c[..len], &mut d[..len]];
                rt.process(&ins, &mut outs).unwrap();
                nonzero |= outs.iter().any(|o| o.iter().any(|&x| x != 0.0));
                if k == 40 {
                    rt.reset();
                }
                pos += len;
                k += 1;
            }
        });
        assert_eq!(allocations, 0, "{name}: process/reset allocated {allocations} times");
        assert!(nonzero, "{name}: the run produced no output at all");
    }
}

/// The audio thread's side of a threaded (neural) separator allocates nothing
/// either; the worker thread's allocations are its own.
#[cfg(feature = "onnx")]
#[test]
fn threaded_process_allocates_nothing_on_the_audio_thread() {
    use splitsound_core::model::NeuralSeparator;
    use splitsound_core::realtime::{ThreadedOptions, Underrun};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sep = NeuralSeparator::builder(root.join("tests/data/neural/demucs/ci.json"))
        .options(Default::default())
        .build()
        .unwrap();
    let opts = ThreadedOptions { underrun: Underrun::DryTo("vocals".into()), ..Default::default() };
    let mut rt = RealtimeSeparator::threaded(Box::new(sep), opts).unwrap();
    rt.prepare(44_100, 512, 2).unwrap();
    let n = 44_100 * 3;
    let input: Vec<Vec<f32>> =
        (0..2).map(|c| (0..n).map(|i| ((i * (3 + c)) % 89) as f32 / 89.0 - 0.5).collect()).collect();
    let mut bufs = vec![vec![0.0f32; 512]; 8];
    let mut calls = 0u32;
    let allocations = counted(|| {
        for (k, pos) in (0..n).step_by(512).enumerate() {
            let len = 512.min(n - pos);
            let ins = [&input[0][pos..pos + len], &input[1][pos..pos + len]];
            let [a, b, c, d, e, f, g, h] = bufs.as_mut_slice() else { unreachable!() };
            let mut outs = [
                &mut a[..len],
                &mut b[..len],
                &mut c[..len],
                &mut d[..len],
                &mut e[..len],
                &mut f[..len],
                &mut g[..len],
                &mut h[..len],
            ];
            rt.process(&ins, &mut outs).unwrap();
            if k == 100 {
                rt.reset();
            }
            // Let the worker run now and then, as real time would.
            if k % 16 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            calls += 1;
        }
    });
    assert_eq!(allocations, 0, "process/reset allocated {allocations} times on the audio thread");
    assert!(calls > 200);
}
