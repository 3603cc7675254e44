//! The smallest complete use of the library: decode a file, separate it with a
//! built-in separator (or a model package), write the stems next to it. The
//! whole track is in memory at each step: `benches/pipeline.py` times it
//! against the CLI's streaming, pipelined file job.
//!
//!     cargo run --release -p splitsound-core --example separate -- INPUT [builtin:hpss|builtin:center|builtin:repet|MODEL.json]

use std::path::Path;

use splitsound_core::model::NeuralOptions;
use splitsound_core::{DecodeOptions, SeparateOptions, WriteOptions, decode_file, load_separator, write_file};

fn main() -> Result<(), splitsound_core::Error> {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "examples/data/demo/mixture.flac".into());
    let method = args.next().unwrap_or_else(|| "builtin:hpss".into());

    let audio = decode_file(&input, &DecodeOptions::default())?;
    let mut separator = load_separator(&method, NeuralOptions::default())?;
    let report = |p: splitsound_core::Progress| eprint!("\r{:?} {}/{}   ", p.stage, p.done, p.total);
    let t0 = std::time::Instant::now();
    let stems = separator.separate(&audio, &SeparateOptions { progress: Some(&report), cancel: None })?;
    eprintln!();

    let stem_of = Path::new(&input).file_stem().unwrap_or_default().to_string_lossy().into_owned();
    for (name, buffer) in stems.iter() {
        let path = Path::new(&input).with_file_name(format!("{stem_of}.{name}.wav"));
        write_file(&path, buffer, &WriteOptions::default())?;
        println!("{}", path.display());
    }
    eprintln!("separated and written in {:.2} s", t0.elapsed().as_secs_f64());
    Ok(())
}
