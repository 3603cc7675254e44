//! Neural models in real time: a worker thread runs the model's stream while
//! `process` only touches lock-free rings. Paced so the worker keeps up, the
//! output is the offline stream's output (same input statistics) delayed by
//! the reported latency, with and without resampling; unpaced, underruns are
//! counted and filled with the documented fallback.
#![cfg(feature = "onnx")]

mod common;
use common::*;

use splitsound_core::model::{NeuralOptions, NeuralSeparator};
use splitsound_core::stream::StreamSpec;
use splitsound_core::{
    AudioBuffer, SeparateOptions, Separator,
    realtime::{RealtimeSeparator, ThreadedOptions, Underrun},
    resample,
};

const STATS: (f32, f32) = (0.0, 0.12);

fn demucs() -> NeuralSeparator {
    let opts = NeuralOptions { shifts: Some(1), seed: 5, overlap: Some(0.25), ..NeuralOptions::default() };
    NeuralSeparator::builder(repo_root().join("core/tests/data/neural/demucs/ci.json")).options(opts).build().unwrap()
}

/// The CI package of one of msst's families.
fn msst(family: &str) -> NeuralSeparator {
    let path = repo_root().join("core/tests/data/neural/msst").join(family).join("ci.json");
    NeuralSeparator::builder(path).options(NeuralOptions::default()).build().unwrap()
}

fn mix(rate: u32, secs: f32) -> AudioBuffer {
    let n = (rate as f32 * secs) as usize;
    let chans = (0..2)
        .map(|c| {
            let hiss = noise(n, 9 + c as u64, 0.05);
            (0..n)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    0.3 * (2.0 * std::f32::consts::PI * (150.0 + 40.0 * c as f32) * t).sin() + hiss[i]
                })
                .collect()
        })
        .collect();
    AudioBuffer::new(rate, chans).unwrap()
}

/// The offline stream with the same fixed statistics, at the host's rate.
fn offline(audio: &AudioBuffer) -> Vec<AudioBuffer> {
    offline_of(demucs(), audio)
}

fn offline_of(mut sep: NeuralSeparator, audio: &AudioBuffer) -> Vec<AudioBuffer> {
    let model_rate = sep.sample_rate().unwrap();
    let input = resample(audio, model_rate).unwrap();
    let spec = StreamSpec { sample_rate: model_rate, channels: audio.num_channels(), frames: None };
    let mut stream = sep.stream(spec, SeparateOptions::default()).unwrap();
    stream.set_input_stats(STATS.0, STATS.1);
    let mut out = stream.process(&input.planar()).unwrap();
    out.append(&stream.finish().unwrap()).unwrap();
    out.iter().map(|(_, s)| resample(s, audio.sample_rate()).unwrap()).collect()
}

/// Runs `audio` through `rt` in blocks of `sizes`, waiting before each block
/// until the worker has delivered it when `pace` is set.
fn run(rt: &mut RealtimeSeparator, audio: &AudioBuffer, sizes: &[usize], pace: bool) -> Vec<Vec<Vec<f32>>> {
    let max = *sizes.iter().max().unwrap();
    let (stems, oc) = (rt.stems().len(), rt.output_channels());
    let mut out = vec![vec![Vec::with_capacity(audio.frames()); oc]; stems];
    let mut bufs = vec![vec![0.0f32; max]; stems * oc];
    let (mut pos, mut k) = (0, 0);
    while pos < audio.frames() {
        let n = sizes[k % sizes.len()].min(audio.frames() - pos);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while pace && rt.ready_frames() < n {
            assert!(std::time::Instant::now() < deadline, "the worker stopped delivering");
            assert!(!rt.worker_failed(), "the worker failed");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
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

fn compare(what: &str, got: &[Vec<Vec<f32>>], want: &[AudioBuffer], latency: usize, upto: usize) {
    let mut worst = 0.0f32;
    for (g, w) in got.iter().zip(want) {
        for (gc, wc) in g.iter().zip(w.channels()) {
            assert!(gc[..latency].iter().all(|&x| x == 0.0), "{what}: output before the latency");
            assert!(wc[..upto].iter().any(|&x| x.abs() > 1e-3), "{what}: nothing to compare");
            for j in 0..upto {
                worst = worst.max((gc[j + latency] - wc[j]).abs());
            }
        }
    }
    assert!(worst <= 1e-6, "{what}: differs from the offline stream by {worst}");
}

#[test]
fn paced_output_is_the_offline_stream_delayed() {
    for (rate, sizes) in
        [(44_100u32, &[512usize][..]), (44_100, &[1, 700, 64, 4096, 13, 480][..]), (48_000, &[480][..])]
    {
        let audio = mix(rate, 4.0);
        let want = offline(&audio);
        let opts = ThreadedOptions { input_stats: STATS, headroom_secs: Some(0.1), ..Default::default() };
        let mut rt = RealtimeSeparator::threaded(Box::new(demucs()), opts).unwrap();
        rt.prepare(rate, *sizes.iter().max().unwrap(), 2).unwrap();
        let latency = rt.latency_samples();
        let got = run(&mut rt, &audio, sizes, true);
        assert_eq!(rt.underruns(), 0);
        compare(&format!("{rate} Hz {sizes:?}"), &got, &want, latency, audio.frames() - latency);

        // After a reset the stream starts over: the same input gives the same output.
        rt.reset();
        let again = run(&mut rt, &audio, sizes, true);
        assert_eq!(rt.underruns(), 0);
        compare(&format!("{rate} Hz after reset"), &again, &want, latency, audio.frames() - latency);
    }
}

/// msst's families (BS-RoFormer, Mel-Band RoFormer, MDX23C, SCNet) on the same
/// worker path: the offline stream, delayed.
#[test]
fn msst_families_run_in_real_time() {
    for family in ["bs-roformer", "mel-band-roformer", "mdx23c", "scnet"] {
        for (rate, sizes) in [(44_100u32, &[1usize, 700, 64, 480][..]), (48_000, &[480][..])] {
            let audio = mix(rate, 1.5);
            let want = offline_of(msst(family), &audio);
            let opts = ThreadedOptions { input_stats: STATS, headroom_secs: Some(0.1), ..Default::default() };
            let mut rt = RealtimeSeparator::threaded(Box::new(msst(family)), opts).unwrap();
            rt.prepare(rate, *sizes.iter().max().unwrap(), 2).unwrap();
            let latency = rt.latency_samples();
            let got = run(&mut rt, &audio, sizes, true);
            assert_eq!(rt.underruns(), 0);
            compare(&format!("{family} {rate} Hz {sizes:?}"), &got, &want, latency, audio.frames() - latency);
        }
    }
}

/// Any channel count: a mono and a 5.1 input reach the stereo model as the
/// offline path converts them (AudioBuffer::to_channels), and come out stereo.
#[test]
fn any_channel_count_runs_in_real_time() {
    for channels in [1usize, 6] {
        let n = 44_100 * 2;
        let chans = (0..channels).map(|c| noise(n, 40 + c as u64, 0.3)).collect();
        let audio = AudioBuffer::new(44_100, chans).unwrap();
        let want = offline(&audio);
        let opts = ThreadedOptions { input_stats: STATS, headroom_secs: Some(0.1), ..Default::default() };
        let mut rt = RealtimeSeparator::threaded(Box::new(demucs()), opts).unwrap();
        rt.prepare(44_100, 512, channels).unwrap();
        assert_eq!(rt.output_channels(), 2);
        let latency = rt.latency_samples();
        let got = run(&mut rt, &audio, &[512], true);
        assert_eq!(rt.underruns(), 0);
        compare(&format!("{channels} channels"), &got, &want, latency, audio.frames() - latency);
    }
}

/// Waveform graphs, one normalised as demucs does and one not (demucs-onnx's
/// chunking): a model that does not normalise ignores the stream's estimated
/// statistics.
#[test]
fn waveform_graphs_run_in_real_time() {
    let dir = repo_root().join("core/tests/data/neural/waveform");
    for package in ["ci.json", "demucs-onnx.json"] {
        let load = || NeuralSeparator::builder(dir.join(package)).options(NeuralOptions::default()).build().unwrap();
        let secs = if package == "ci.json" { 1.5 } else { 9.0 };
        let audio = mix(44_100, secs);
        let want = offline_of(load(), &audio);
        let opts = ThreadedOptions { input_stats: STATS, headroom_secs: Some(0.1), ..Default::default() };
        let mut rt = RealtimeSeparator::threaded(Box::new(load()), opts).unwrap();
        rt.prepare(44_100, 4096, 2).unwrap();
        let latency = rt.latency_samples();
        let got = run(&mut rt, &audio, &[4096], true);
        assert_eq!(rt.underruns(), 0);
        compare(package, &got, &want, latency, audio.frames() - latency);
    }
}

#[test]
fn unpaced_underruns_are_counted_and_filled_with_the_dry_input() {
    let audio = mix(44_100, 3.0);
    let opts =
        ThreadedOptions { input_stats: STATS, headroom_secs: Some(0.0), underrun: Underrun::DryTo("vocals".into()) };
    let mut rt = RealtimeSeparator::threaded(Box::new(demucs()), opts).unwrap();
    rt.prepare(44_100, 256, 2).unwrap();
    let latency = rt.latency_samples();
    // As fast as the loop goes: far faster than the model on this machine.
    let got = run(&mut rt, &audio, &[256], false);
    assert!(rt.underruns() > 0 && rt.underrun_frames() > 0, "no underrun counted");
    let vocals = 3; // stems: drums, bass, other, vocals
    let filled = (latency..audio.frames())
        .filter(|&p| (0..3).all(|s| got[s][0][p] == 0.0 && got[s][1][p] == 0.0))
        .filter(|&p| {
            got[vocals][0][p] == audio.channel(0)[p - latency] && got[vocals][1][p] == audio.channel(1)[p - latency]
        })
        .count();
    assert!(filled > 0, "no frame carried the delayed dry input in `vocals`");
}

#[test]
fn models_that_need_the_whole_input_are_refused() {
    let umx = NeuralSeparator::builder(repo_root().join("core/tests/data/neural/umx/umx-ci.json"))
        .options(Default::default())
        .build();
    let refused = RealtimeSeparator::threaded(Box::new(umx.unwrap()), ThreadedOptions::default());
    assert!(matches!(refused, Err(splitsound_core::Error::Unsupported { .. })), "umx reads the whole input");
    let opts = ThreadedOptions { underrun: Underrun::DryTo("nope".into()), ..Default::default() };
    let mut rt = RealtimeSeparator::threaded(Box::new(demucs()), opts).unwrap();
    assert!(rt.prepare(44_100, 512, 2).is_err(), "an unknown fallback stem is an error");
    assert!(rt.prepare(44_100, 512, 6).is_err());
}
