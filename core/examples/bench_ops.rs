//! Times one core operation on a file, for benches/compare.py.
//!
//!     cargo run --release -p splitsound-core --example bench_ops -- OP INPUT [ARG] [--runs N]
//!
//! OP: `decode` (whole file to f32), `resample RATE`, `stft` (STFT + ISTFT,
//! n_fft 4096, hop 1024, every channel), `hpss` and `center` (the built-ins, defaults),
//! `resample-raw IN_RATE OUT_RATE OUT.f32` (INPUT is raw mono f32le; writes raw),
//! `model PACKAGE ENGINE` (a model package with its defaults on `onnxruntime` or
//! `tract`, one thread per operator, as in the single-threaded WebAssembly build;
//! tract needs `--features tract`).
//! Prints one JSON line: the median and minimum wall time of N runs, and the
//! median CPU time of this thread, in seconds; decoding for the non-decode ops
//! happens once, untimed.

use std::time::Instant;

use splitsound_core::builtin::{Center, CenterConfig, Hpss, HpssConfig};
use splitsound_core::{
    AudioBuffer, DecodeOptions, SeparateOptions, Separator, Stft, StftConfig, decode_file, resample,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.iter().position(|a| a == "--runs").map_or(5, |i| args[i + 1].parse().expect("--runs N"));
    let op = args.first().expect("OP").as_str();
    let input = args.get(1).expect("INPUT");
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut frames = 0usize;
    if op == "resample-raw" {
        let (a, b): (u32, u32) = (args[2].parse().unwrap(), args[3].parse().unwrap());
        let raw = std::fs::read(input).unwrap();
        let x: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let audio = AudioBuffer::new(a, vec![x]).unwrap();
        let y = resample(&audio, b).unwrap();
        let bytes: Vec<u8> = y.channel(0).iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&args[4], bytes).unwrap();
        return;
    }
    let audio = (op != "decode").then(|| decode_file(input, &DecodeOptions::default()).unwrap());
    for _ in 0..runs {
        frames = 0;
        let t = Instant::now();
        let c = thread_cpu_secs();
        match op {
            "decode" => frames = decode_file(input, &DecodeOptions::default()).unwrap().frames(),
            "resample" => {
                let rate: u32 = args[2].parse().unwrap();
                frames = resample(audio.as_ref().unwrap(), rate).unwrap().frames();
            }
            "stft" => {
                let a = audio.as_ref().unwrap();
                let mut stft = Stft::new(StftConfig::torch(4096, 1024)).unwrap();
                for c in a.channels() {
                    let s = stft.forward(c).unwrap();
                    frames += stft.inverse(&s, Some(c.len())).unwrap().len();
                }
            }
            "hpss" => {
                let mut sep = Hpss::new(HpssConfig::default()).unwrap();
                let stems = sep.separate(audio.as_ref().unwrap(), &SeparateOptions::default()).unwrap();
                frames = stems.get("harmonic").unwrap().frames();
            }
            "center" => {
                let mut sep = Center::new(CenterConfig::default()).unwrap();
                let stems = sep.separate(audio.as_ref().unwrap(), &SeparateOptions::default()).unwrap();
                frames = stems.get("vocals").unwrap().frames();
            }
            "model" => {
                use splitsound_core::model::{ModelOptions, NeuralOptions, NeuralSeparator};
                let engine = args[3].parse().unwrap();
                let model = ModelOptions { engine, intra_threads: Some(1), ..ModelOptions::default() };
                let mut sep = NeuralSeparator::builder(&args[2])
                    .options(NeuralOptions { model, ..NeuralOptions::default() })
                    .build()
                    .unwrap();
                let stems = sep.separate(audio.as_ref().unwrap(), &SeparateOptions::default()).unwrap();
                frames = stems.iter().next().unwrap().1.frames();
            }
            other => panic!("unknown op {other}"),
        }
        times.push(t.elapsed().as_secs_f64());
        cpu_times.push(thread_cpu_secs() - c);
    }
    times.sort_by(f64::total_cmp);
    cpu_times.sort_by(f64::total_cmp);
    println!(
        "{{\"op\":\"{op}\",\"runs\":{runs},\"median_s\":{},\"min_s\":{},\"median_cpu_s\":{},\"frames\":{frames}}}",
        times[times.len() / 2],
        times[0],
        cpu_times[cpu_times.len() / 2]
    );
}

/// CPU time consumed by this thread (not disturbed by time the VM is descheduled).
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
