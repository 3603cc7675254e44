//! A DAW's view of splitsound: a file goes through [`RealtimeSeparator`] in
//! 512-sample blocks, one `process` call per block as an audio callback would
//! make, and the stems are written with the latency compensated (the first
//! `latency` output samples dropped, the input padded by as many at the end),
//! as 32-bit float WAV holding exactly what `process` returned.
//! Prints the latency and the callback's worst and mean time against the block's
//! duration.
//!
//! A model package (`.json` or `.onnx`, HT-Demucs or MDX-Net) runs on the
//! worker thread. Its callbacks are then paced by a real-time clock, as an audio
//! device would call them, and underruns are reported; `bounce` instead waits
//! for the worker before each block, as a DAW's offline render may.
//!
//!     cargo run --release -p splitsound-core --example realtime_blocks -- [INPUT] [builtin:hpss|builtin:center|MODEL.json [bounce]]

use std::path::Path;
use std::time::{Duration, Instant};

use splitsound_core::{
    ClipMode, DecodeOptions, SampleEncoding, StemWriter, StreamDecoder, WriteOptions,
    realtime::{RealtimeSeparator, ThreadedOptions},
};

const BLOCK: usize = 512;

fn main() -> Result<(), splitsound_core::Error> {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "examples/data/demo/mixture.flac".into());
    let method = args.next().unwrap_or_else(|| "builtin:hpss".into());

    let mut decoder = StreamDecoder::open(&input, &DecodeOptions { block_frames: BLOCK, ..Default::default() })?;
    let (rate, channels) = (decoder.info().sample_rate, decoder.info().channels);
    let bounce = args.next().as_deref() == Some("bounce");
    let threaded = splitsound_core::is_model_package(&method);
    let mut rt = RealtimeSeparator::load(&method, Default::default(), ThreadedOptions::default())?;
    // Everything is allocated here, before the "audio thread" starts.
    rt.prepare(rate, BLOCK, channels)?;
    let latency = rt.latency_samples();
    let out_ch = rt.output_channels();
    let stem_of = Path::new(&input).file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let as_computed = WriteOptions { encoding: SampleEncoding::F32, clip: ClipMode::None, ..Default::default() };
    let mut writers = Vec::new();
    for name in rt.stems() {
        let path = Path::new(&input).with_file_name(format!("{stem_of}.rt.{name}.wav"));
        writers.push((path.clone(), StemWriter::create(path, rate, out_ch, &as_computed)?));
    }
    println!(
        "{method}: {} Hz, {channels} ch, latency {latency} samples ({:.1} ms)",
        rate,
        latency as f64 * 1e3 / rate as f64
    );

    let mut outs = vec![vec![0.0f32; BLOCK]; rt.stems().len() * out_ch];
    let silence = vec![vec![0.0f32; BLOCK]; channels];
    let (mut worst, mut total, mut blocks) = (Duration::ZERO, Duration::ZERO, 0u32);
    let (mut to_drop, mut tail) = (latency, latency);
    let budget = Duration::from_secs_f64(BLOCK as f64 / rate as f64);
    let clock = Instant::now();
    loop {
        let block = decoder.next_block()?;
        let owned;
        let ins: Vec<&[f32]> = match &block {
            Some(b) => b.channels().iter().map(|c| c.as_slice()).collect(),
            // After the file, feed silence until the delayed output is out.
            None if tail > 0 => {
                let n = tail.min(BLOCK);
                tail -= n;
                owned = silence.iter().map(|c| &c[..n]).collect::<Vec<_>>();
                owned
            }
            None => break,
        };
        let n = ins[0].len();
        if threaded && bounce {
            while rt.ready_frames() < n && !rt.worker_failed() {
                std::thread::sleep(Duration::from_micros(200));
            }
        } else if threaded {
            // The device's clock: callback k is due at k block durations.
            let due = budget * blocks;
            if let Some(wait) = due.checked_sub(clock.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|b| &mut b[..n]).collect();
        let t0 = Instant::now();
        rt.process(&ins, &mut o)?;
        let dt = t0.elapsed();
        worst = worst.max(dt);
        total += dt;
        blocks += 1;
        let skip = to_drop.min(n);
        to_drop -= skip;
        for (s, (_, w)) in writers.iter_mut().enumerate() {
            let chans: Vec<&[f32]> = (0..out_ch).map(|c| &outs[s * out_ch + c][skip..n]).collect();
            w.write(&chans)?;
        }
    }
    println!(
        "{blocks} callbacks of {BLOCK} samples ({:.2} ms each): mean {:.3} ms, worst {:.3} ms",
        budget.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / blocks.max(1) as f64,
        worst.as_secs_f64() * 1e3
    );
    if threaded {
        println!("underruns: {} callbacks, {} frames", rt.underruns(), rt.underrun_frames());
    }
    for (path, w) in writers {
        w.commit()?;
        println!("{}", path.display());
    }
    Ok(())
}
