//! Criterion benches of the core operations on 30 s of stereo audio at 44.1 kHz
//! (the demo mix, repeated). Peers are compared by benches/compare.py.

use criterion::{Criterion, criterion_group, criterion_main};
use splitsound_core::builtin::{Center, CenterConfig, Hpss, HpssConfig};
use splitsound_core::{
    AudioBuffer, DecodeOptions, OutputFormat, SeparateOptions, Separator, Stft, StftConfig, WriteOptions, decode_bytes,
    decode_file, encode, resample,
};

fn thirty_seconds() -> AudioBuffer {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/demo/mixture.flac");
    let demo = decode_file(path, &DecodeOptions::default()).unwrap();
    let n = 30 * 44100;
    let chans = demo.channels().iter().map(|c| c.iter().cycle().take(n).copied().collect()).collect();
    AudioBuffer::new(44100, chans).unwrap()
}

fn benches(c: &mut Criterion) {
    let audio = thirty_seconds();
    let flac = encode(&audio, &WriteOptions { format: OutputFormat::Flac, ..Default::default() }).unwrap();
    let wav = encode(&audio, &WriteOptions::default()).unwrap();
    let mut g = c.benchmark_group("30s-stereo-44k1");
    g.sample_size(10);
    g.bench_function("decode flac", |b| {
        b.iter(|| decode_bytes(flac.clone(), Some("flac"), &Default::default()).unwrap())
    });
    g.bench_function("decode wav", |b| b.iter(|| decode_bytes(wav.clone(), Some("wav"), &Default::default()).unwrap()));
    g.bench_function("resample 44.1k->48k", |b| b.iter(|| resample(&audio, 48000).unwrap()));
    g.bench_function("stft+istft 4096/1024", |b| {
        let mut stft = Stft::new(StftConfig::torch(4096, 1024)).unwrap();
        b.iter(|| {
            for ch in audio.channels() {
                let s = stft.forward(ch).unwrap();
                stft.inverse(&s, Some(ch.len())).unwrap();
            }
        })
    });
    g.bench_function("hpss", |b| {
        let mut sep = Hpss::new(HpssConfig::default()).unwrap();
        b.iter(|| sep.separate(&audio, &SeparateOptions::default()).unwrap())
    });
    g.bench_function("center", |b| {
        let mut sep = Center::new(CenterConfig::default()).unwrap();
        b.iter(|| sep.separate(&audio, &SeparateOptions::default()).unwrap())
    });
    g.bench_function("encode flac 16", |b| {
        b.iter(|| encode(&audio, &WriteOptions { format: OutputFormat::Flac, ..Default::default() }).unwrap())
    });
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
