//! `splitsound`: split songs, podcasts and soundtracks into stems.
//!
//! Exit codes: 0 success; 1 at least one input failed (unreadable, corrupt,
//! unsupported); 2 usage error (bad flag, unknown separator, stem or query);
//! 130 cancelled with Ctrl-C (no partial files are left).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

mod models;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use splitsound_core as core;
use splitsound_core::model::{Fallback, ModelOptions, NeuralOptions, NeuralSeparator, Provider};
use splitsound_core::{
    CancelToken, ClipMode, DecodeOptions, Error, FileJobOptions, OutputFormat, Progress, SampleEncoding,
    SeparateOptions, Separator, Stage, StemSelection, WriteOptions,
};

#[derive(Parser)]
#[command(name = "splitsound", version, about = "Split audio into stems", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Separate one or more files into stems: DIR/<track>/<stem>.<ext>
    Separate(Box<SeparateArgs>),
    /// Show a file's container, codec, rate, channels and duration
    Info {
        input: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the built-in separators and their stems
    List {
        #[arg(long)]
        json: bool,
    },
    /// Score stems against references: museval's BSS Eval v4 (median SDR, ISR,
    /// SIR, SAR over 1 s windows), MDX global SDR and SI-SDR. Either two folders
    /// (`<stem>.wav|flac|…` matched by name; `mixture.*` skipped), or a dataset in
    /// MUSDB18-HQ layout (`<track>/mixture.wav`, `<track>/<stem>.wav`) separated
    /// with --model
    Eval(EvalArgs),
    /// Models: fetch them by name into the cache, list, remove and verify
    /// them, inspect a package
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Folder of reference stems
    #[arg(long, requires = "estimate", conflicts_with = "dataset")]
    reference: Option<PathBuf>,
    /// Folder of estimated stems
    #[arg(long, requires = "reference")]
    estimate: Option<PathBuf>,
    /// Dataset folder in MUSDB18-HQ layout, separated with --model
    #[arg(long, required_unless_present = "reference")]
    dataset: Option<PathBuf>,
    /// Separator for --dataset: a built-in or a model package
    #[arg(short, long, default_value = "builtin:hpss")]
    model: String,
    /// Providers for a neural model, in order
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    device: Vec<String>,
    /// The ONNX Runtime library
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Also write the results as JSON to this file (with --dataset, by default
    /// splitsound-eval-<separator>.json in the current folder)
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Load a model package and print its manifest, its graphs' inputs and
    /// outputs, and the execution providers usable here
    Inspect {
        /// The manifest (model.json), an ONNX file, or an installed model's name
        model: String,
        /// Providers to try, in order (cpu, cuda:N, tensorrt:N, coreml, directml:N)
        #[arg(long, value_delimiter = ',', default_value = "cpu")]
        device: Vec<String>,
        /// The ONNX Runtime library (else SPLITSOUND_ORT_LIB, ORT_DYLIB_PATH, the
        /// onnxruntime Python package, the system's)
        #[arg(long)]
        ort_lib: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Fetch a model into the cache ($SPLITSOUND_MODELS, else the platform's
    /// cache folder): by name, or by a URL a registry lists. Resumes an
    /// interrupted download; checks every file's SHA-256 before installing
    Pull {
        /// A model name (`splitsound model list`) or the URL of its file
        model: String,
        /// A registry (file or URL) consulted after the compiled-in one and
        /// $SPLITSOUND_REGISTRY; give it more than once
        #[arg(long)]
        registry: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The models the registries offer, marking those in the cache
    List {
        /// Only the models in the cache
        #[arg(long)]
        installed: bool,
        #[arg(long)]
        registry: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a model from the cache
    Rm { model: String },
    /// Check the cached files of a model (every installed model without a
    /// name) against their sizes and SHA-256; exit 1 if one is damaged
    Verify {
        model: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct SeparateArgs {
    /// Audio or video files
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Separator: builtin:hpss (default; harmonic/percussive), builtin:center
    /// (stereo vocals/accompaniment), builtin:repet (foreground/background); a
    /// model package: its manifest (model.json) or ONNX file (a bare UVR
    /// MDX-Net file configures itself); the name of a model in the cache
    /// (`splitsound model list`); or an ensemble file. Give it more than once
    /// for an ensemble
    #[arg(short, long, default_value = "builtin:hpss")]
    model: Vec<String>,
    /// Fetch a named model that is not in the cache yet. Without it a missing
    /// model is an error that names what to fetch (unless its registry entry
    /// allows fetching on first use): a separation never starts a download of
    /// tens of megabytes that was not asked for
    #[arg(long)]
    download: bool,
    /// A registry (file or URL) for model names, consulted after the
    /// compiled-in one and $SPLITSOUND_REGISTRY; give it more than once
    #[arg(long)]
    registry: Vec<String>,
    /// Bare MDX-Net .onnx files: UVR's mdx_n_fft_scale_set (overrides the
    /// model data its hash finds)
    #[arg(long)]
    mdx_n_fft: Option<usize>,
    /// Bare MDX-Net files: bins fed to the network (UVR's mdx_dim_f_set)
    #[arg(long)]
    mdx_dim_f: Option<usize>,
    /// Bare MDX-Net files: frames per segment (2^mdx_dim_t_set, e.g. 256)
    #[arg(long)]
    mdx_dim_t: Option<usize>,
    /// Bare MDX-Net files: the secondary stem is mix − compensate · primary
    #[arg(long)]
    mdx_compensate: Option<f32>,
    /// Bare MDX-Net files: the stem the network outputs (Vocals, Instrumental, …)
    #[arg(long)]
    mdx_primary_stem: Option<String>,
    /// Bare MDX-Net files: a model-data file in UVR's format (hash → parameters)
    /// consulted before the shipped table
    #[arg(long)]
    mdx_model_data: Option<PathBuf>,
    /// A bare .onnx mapping mix segments [B, C, L] to stems [B, S, C, L] (a
    /// demucs-onnx export, say): its stems, in output order. The flags below
    /// say how its exporter's own code chunks
    #[arg(long, value_delimiter = ',')]
    waveform_stems: Option<Vec<String>>,
    /// Bare waveform graphs: the overlap-add window (triangular: demucs's
    /// apply_model; linear: fades of --waveform-fade samples, as msst and
    /// demucs-onnx; hann)
    #[arg(long, value_parser = ["triangular", "linear", "hann"])]
    waveform_window: Option<String>,
    /// Bare waveform graphs: samples of each linear fade (demucs-onnx: a
    /// quarter segment, 85995)
    #[arg(long)]
    waveform_fade: Option<usize>,
    /// Bare waveform graphs: the triangular window's transition_power
    #[arg(long)]
    waveform_power: Option<f32>,
    /// Bare waveform graphs: the last, partial segment gets its real context
    /// (demucs) or zeros after the end (demucs-onnx)
    #[arg(long, value_parser = ["context", "zero-right"])]
    waveform_partial: Option<String>,
    /// Bare waveform graphs: normalise by the mono mix's mean and standard
    /// deviation first (demucs's separate_tensor does; demucs-onnx does not)
    #[arg(long)]
    waveform_normalise: bool,
    /// Bare waveform graphs: the sample rate they run at (default 44100)
    #[arg(long)]
    waveform_rate: Option<u32>,
    /// With several models: how their matched stems are combined (avg_wave, the
    /// default, median_wave, min_wave, max_wave, avg_fft, median_fft, min_fft,
    /// max_fft, uvr_max_spec, uvr_min_spec, ensemble_wav; audio-separator's algorithms)
    #[arg(long)]
    ensemble: Option<core::ensemble::EnsembleAlgorithm>,
    /// With several models: one weight per model (avg_wave and avg_fft)
    #[arg(long, value_delimiter = ',')]
    weights: Option<Vec<f64>>,
    /// Neural models: execution providers to try, in order (cpu, cuda:N,
    /// tensorrt:N, coreml, directml:N); falls back to the CPU with a warning
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    device: Vec<String>,
    /// Neural models: fail instead of falling back when a provider is not usable
    #[arg(long)]
    strict_device: bool,
    /// Neural models: overlap of consecutive segments, in [0, 1) (default: the model's)
    #[arg(long)]
    overlap: Option<f64>,
    /// demucs models: average over this many randomly shifted runs (default: the model's)
    #[arg(long)]
    shifts: Option<u32>,
    /// Seed of the random shifts (and of a text-prompted model's noise and
    /// watermark message); the same seed gives the same output
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Neural models: segments per inference run
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// mdx models: also run on the negated input and average (twice the time)
    #[arg(long)]
    denoise: bool,
    /// umx models: EM iterations of the Wiener filter
    #[arg(long, default_value_t = 1)]
    niter: u32,
    /// umx models: soft masks instead of the mix phase as the initial estimate
    #[arg(long)]
    softmask: bool,
    /// umx models: also write the residual (the mix minus the targets)
    #[arg(long)]
    residual: bool,
    /// umx models: frames per Wiener filter window (0 = the whole input)
    #[arg(long, default_value_t = 300)]
    wiener_win_len: usize,
    /// umx models: separate windows of about this many seconds (plus context)
    /// instead of the whole track at once: bounded memory for long inputs, at a
    /// small difference from openunmix's whole-track run
    #[arg(long)]
    segment_secs: Option<f64>,
    /// BS-/Mel-Band RoFormer and MDX23C models: msst (their reference code's
    /// demix) or audio-separator (its MDXCSeparator: the same output as
    /// audio-separator 0.47 gives, peak-limited stems, whole input). Other
    /// families ignore it; SCNet refuses audio-separator (it does not run SCNet)
    #[arg(long, default_value = "msst")]
    chunking: core::model::Chunking,
    /// Neural models: threads per operator (default: ONNX Runtime's choice)
    #[arg(long)]
    threads: Option<usize>,
    /// Neural models on ONNX Runtime: run through I/O binding (outputs go to
    /// buffers bound once and reused; page-locked host memory on CUDA)
    #[arg(long)]
    io_binding: bool,
    /// Neural models on ONNX Runtime: no CPU memory arena (memory goes back to
    /// the system between runs, at some speed)
    #[arg(long)]
    no_arena: bool,
    /// The ONNX Runtime library (else SPLITSOUND_ORT_LIB, ORT_DYLIB_PATH, the
    /// onnxruntime Python package, the system's)
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Only write these stems (comma-separated)
    #[arg(long, value_delimiter = ',', conflicts_with = "query")]
    stems: Option<Vec<String>>,
    /// Describe what you want, e.g. "remove the vocals", "just the drums";
    /// with a text-prompted model (SAM-Audio), any sound: "a dog barking"
    #[arg(short, long)]
    query: Option<String>,
    /// A text-prompted model (a SAM-Audio package or a model name) for
    /// descriptions that name no stem of the -m model: it writes the
    /// described sound (target) and everything else (residual)
    #[arg(long)]
    text_model: Option<String>,
    /// Text-prompted models: the ODE's initial noise, a .npy of float32
    /// [frames, 2C] or [1, frames, 2C] (frames = ceil(samples at 48 kHz / 1920)),
    /// to repeat a reference run; drawn from --seed otherwise
    #[arg(long)]
    ode_noise: Option<PathBuf>,
    /// Text-prompted models: the codec watermark's message, a .npy of 0/1
    /// [2, bits] (the target's row, then the residual's); drawn from --seed otherwise
    #[arg(long)]
    watermark_message: Option<PathBuf>,
    /// Output directory
    #[arg(short, long, default_value = "separated")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Wav)]
    format: Format,
    #[arg(long, value_enum, default_value_t = Bits::B16)]
    bits: Bits,
    /// What to do with samples beyond full scale
    #[arg(long, value_enum, default_value_t = Clip::Rescale)]
    clip: Clip,
    /// TPDF dither when writing 16-bit files
    #[arg(long)]
    dither: bool,
    /// Refuse inputs longer than this many seconds
    #[arg(long)]
    max_duration: Option<f64>,
    /// Refuse inputs larger than this many bytes
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Accept files that end before their header says, keeping what decodes
    #[arg(long)]
    allow_truncated: bool,
    /// Machine-readable JSON lines on stdout (progress, results, errors)
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Wav,
    Flac,
}

#[derive(Clone, Copy, ValueEnum)]
enum Bits {
    #[value(name = "16")]
    B16,
    #[value(name = "24")]
    B24,
    #[value(name = "32f")]
    F32,
}

#[derive(Clone, Copy, ValueEnum)]
enum Clip {
    Rescale,
    Clamp,
    None,
}

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CANCELLED: u8 = 130;

/// Warnings from the library (e.g. a provider fallback) go to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn && m.target().starts_with("splitsound")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{}: {}", if r.level() == log::Level::Warn { "warning" } else { "error" }, r.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    // A command may start `python3` to find the onnxruntime wheel's library; a
    // library embedded elsewhere does not unless asked.
    splitsound_core::model::allow_python_probe(true);
    let cli = Cli::parse();
    match cli.command {
        Command::Info { input, json } => info(&input, json),
        Command::List { json } => list(json),
        Command::Separate(args) => separate(*args),
        Command::Eval(args) => eval(args),
        Command::Model { command } => match command {
            ModelCommand::Inspect { model, device, ort_lib, json } => inspect(&model, &device, ort_lib, json),
            ModelCommand::Pull { model, registry, json } => models::pull_cmd(&model, &registry, json),
            ModelCommand::List { installed, registry, json } => models::list_cmd(installed, &registry, json),
            ModelCommand::Rm { model } => models::rm_cmd(&model),
            ModelCommand::Verify { model, json } => models::verify_cmd(model.as_deref(), json),
        },
    }
}

/// The process's one cancellation token: the first Ctrl-C cancels (work stops
/// at its next safe point), a second exits at once. One handler for the whole
/// run, so that a pull followed by a separation stay cancellable.
fn ctrl_c() -> CancelToken {
    static TOKEN: std::sync::OnceLock<CancelToken> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let token = CancelToken::new();
            let t = token.clone();
            let _ = ctrlc::set_handler(move || {
                if t.is_cancelled() {
                    std::process::exit(EXIT_CANCELLED as i32);
                }
                t.cancel();
            });
            token
        })
        .clone()
}

fn is_usage_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidArgument { .. }
            | Error::UnknownSeparator { .. }
            | Error::UnknownStem { .. }
            | Error::UnresolvedQuery { .. }
    )
}

fn error_json(input: Option<&Path>, e: &Error) -> serde_json::Value {
    json!({"event": "error", "input": input, "code": e.code(), "message": e.to_string()})
}

fn info(input: &Path, as_json: bool) -> ExitCode {
    match core::probe(input) {
        Ok(i) if as_json => {
            println!("{}", serde_json::to_string_pretty(&i).expect("MediaInfo serialises"));
            ExitCode::SUCCESS
        }
        Ok(i) => {
            println!("{}", input.display());
            println!("  container  {}", i.container);
            println!("  codec      {}", i.codec);
            println!("  rate       {} Hz", i.sample_rate);
            println!("  channels   {}", i.channels);
            if let Some(b) = i.bits_per_sample {
                println!("  bits       {b}");
            }
            match (i.duration_secs, i.frames) {
                (Some(d), Some(n)) => println!("  duration   {} ({n} frames)", hms(d)),
                (Some(d), None) => println!("  duration   {}", hms(d)),
                _ => println!("  duration   unknown"),
            }
            println!("  tracks     {}", i.tracks);
            ExitCode::SUCCESS
        }
        Err(e) => {
            if as_json {
                println!("{}", error_json(Some(input), &e));
            } else {
                eprintln!("error: {}: {e}", input.display());
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn list(as_json: bool) -> ExitCode {
    let mut rows = Vec::new();
    for name in core::builtin::BUILTIN_NAMES {
        let sep = core::load_separator(name, Default::default()).expect("built-ins construct with defaults");
        rows.push(
            json!({"name": format!("builtin:{name}"), "stems": sep.stems(), "default": *name == core::builtin::DEFAULT_BUILTIN}),
        );
    }
    if as_json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            let stems: Vec<&str> = r["stems"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
            let d = if r["default"].as_bool() == Some(true) { " (default)" } else { "" };
            println!("{:<16} {}{d}", r["name"].as_str().unwrap(), stems.join(", "));
        }
    }
    ExitCode::SUCCESS
}

fn inspect(spec: &str, devices: &[String], ort_lib: Option<PathBuf>, as_json: bool) -> ExitCode {
    use splitsound_core::model::{Model, provider_usable};
    let path = Path::new(spec);
    let fail = |e: Error, code: u8| {
        if as_json {
            println!("{}", error_json(Some(path), &e));
        } else {
            eprintln!("error: {e}");
        }
        ExitCode::from(code)
    };
    let providers: Result<Vec<Provider>, Error> = devices.iter().map(|d| d.parse()).collect();
    let providers = match providers {
        Ok(p) => p,
        Err(e) => return fail(e, EXIT_USAGE),
    };
    let opts = ModelOptions { runtime_library: ort_lib, providers, ..Default::default() };
    let resolved = if models::is_model_name(spec) {
        match models::resolve(spec, &[], false, as_json) {
            Ok(p) => PathBuf::from(p),
            Err(e) => return fail(e, EXIT_FAILED),
        }
    } else {
        path.to_path_buf()
    };
    let model = match Model::load(&resolved, &opts) {
        Ok(m) => m,
        Err(e) => return fail(e, EXIT_FAILED),
    };
    let usable: Vec<serde_json::Value> = Provider::ALL
        .iter()
        .map(|&p| {
            let status = match provider_usable(p, &opts) {
                Ok(Ok(())) => json!({"usable": true}),
                Ok(Err(why)) => json!({"usable": false, "why": why}),
                Err(e) => json!({"usable": false, "why": e.to_string()}),
            };
            json!({"provider": p.to_string(), "compiled_in": p.compiled_in(), "status": status})
        })
        .collect();
    let runtime = splitsound_core::model::runtime(None).map(|r| r.library.display().to_string()).unwrap_or_default();
    if as_json {
        let v = json!({
            "manifest": model.manifest(),
            "graphs": model.graphs(),
            "provider": model.provider().to_string(),
            "runtime_library": runtime,
            "providers": usable,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        return ExitCode::SUCCESS;
    }
    let m = model.manifest();
    println!(
        "{} ({:?}), {} Hz, {} ch, segment {} samples",
        m.name, m.family, m.sample_rate, m.channels, m.segment_samples
    );
    println!("  stems     {}", m.stems.join(", "));
    match &m.msst {
        // msst's demix: the model's own chunking.
        Some(p) => println!(
            "  demix     chunk {}, num_overlap {}, batch_size {}{}{}",
            p.chunk_size,
            p.num_overlap,
            p.batch_size,
            if p.normalize { ", normalize" } else { "" },
            if p.residual { ", last stem = mix − first" } else { "" }
        ),
        None => println!("  defaults  overlap {}, shifts {}", m.defaults.overlap, m.defaults.shifts),
    }
    for g in model.graphs() {
        println!("  graph     {}", g.file);
        for t in &g.inputs {
            println!("    in      {} {:?}", t.name, t.shape);
        }
        for t in &g.outputs {
            println!("    out     {} {:?}", t.name, t.shape);
        }
    }
    println!("  runs on   {} (ONNX Runtime: {runtime})", model.provider());
    for u in usable {
        let ok = u["status"]["usable"].as_bool() == Some(true);
        let why = u["status"]["why"].as_str().unwrap_or("");
        println!(
            "  provider  {:<12} {}",
            u["provider"].as_str().unwrap_or(""),
            if ok { "usable".to_string() } else { format!("not usable: {why}") }
        );
    }
    ExitCode::SUCCESS
}

fn neural_options(args: &SeparateArgs) -> Result<NeuralOptions, Error> {
    let providers = args.device.iter().map(|d| d.parse()).collect::<Result<Vec<Provider>, Error>>()?;
    Ok(NeuralOptions {
        model: ModelOptions {
            runtime_library: args.ort_lib.clone(),
            providers,
            fallback: if args.strict_device { Fallback::Error } else { Fallback::default() },
            intra_threads: args.threads,
            io_binding: args.io_binding,
            memory_arena: !args.no_arena,
            mdx: core::model::uvr::MdxOverrides {
                n_fft: args.mdx_n_fft,
                dim_f: args.mdx_dim_f,
                dim_t: args.mdx_dim_t,
                compensate: args.mdx_compensate,
                primary_stem: args.mdx_primary_stem.clone(),
                model_data: args.mdx_model_data.clone(),
            },
            waveform: core::model::BareWaveform {
                stems: args.waveform_stems.clone().unwrap_or_default(),
                sample_rate: args.waveform_rate,
                window: args.waveform_window.as_deref().map(|w| match w {
                    "linear" => core::model::WaveWindow::Linear,
                    "hann" => core::model::WaveWindow::Hann,
                    _ => core::model::WaveWindow::Triangular,
                }),
                transition_power: args.waveform_power,
                fade_samples: args.waveform_fade,
                partial: args.waveform_partial.as_deref().map(|p| {
                    if p == "zero-right" { core::model::Partial::ZeroRight } else { core::model::Partial::Context }
                }),
                normalise: args.waveform_normalise,
                overlap: None,
            },
            ..ModelOptions::default()
        },
        overlap: args.overlap,
        shifts: args.shifts,
        seed: args.seed,
        shift_offsets: None,
        batch: args.batch,
        denoise: args.denoise,
        niter: args.niter,
        softmask: args.softmask,
        residual: args.residual,
        wiener_win_len: args.wiener_win_len,
        segment_secs: args.segment_secs,
        chunking: args.chunking,
        prompt: core::model::TextPrompt::default(),
    })
}

fn load_neural(args: &SeparateArgs) -> Result<NeuralSeparator, Error> {
    NeuralSeparator::builder(&args.model[0]).options(neural_options(args)?).build()
}

/// The text-prompted model at `path`, asked for `description`, with the
/// draws of --ode-noise/--watermark-message or --seed.
fn load_text_model(path: &str, description: &str, args: &SeparateArgs) -> Result<NeuralSeparator, Error> {
    let base = neural_options(args)?;
    let prompt = core::model::TextPrompt {
        description: Some(description.to_string()),
        ode_noise: args.ode_noise.as_deref().map(|p| read_npy(p, "--ode-noise", 3)).transpose()?,
        watermark_message: args
            .watermark_message
            .as_deref()
            .map(|p| read_npy(p, "--watermark-message", 2))
            .transpose()?,
    };
    NeuralSeparator::builder(path).options(NeuralOptions { prompt, ..base }).build()
}

/// A .npy array of float32, float64 or int64 as `f32`s, row-major; at most
/// `rank` dimensions, leading ones of size 1 allowed beyond that.
fn read_npy(path: &Path, flag: &'static str, rank: usize) -> Result<Vec<f32>, Error> {
    use ndarray_npy::ReadNpyExt;
    let bad = |actual: String| Error::InvalidArgument {
        name: flag,
        expected: format!("a .npy file of float32, float64 or int64 values with at most {rank} dimensions"),
        actual,
    };
    let read = || std::fs::File::open(path).map_err(|e| Error::Io { path: Some(path.to_path_buf()), source: e });
    let a: ndarray::ArrayD<f32> = match ndarray::ArrayD::<f32>::read_npy(read()?) {
        Ok(a) => a,
        Err(_) => match ndarray::ArrayD::<f64>::read_npy(read()?) {
            Ok(a) => a.mapv(|x| x as f32),
            Err(_) => ndarray::ArrayD::<i64>::read_npy(read()?)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?
                .mapv(|x| x as f32),
        },
    };
    let shape = a.shape();
    if shape.len() > rank && shape[..shape.len() - rank].iter().any(|&d| d != 1) {
        return Err(bad(format!("{}: shape {shape:?}", path.display())));
    }
    Ok(a.iter().copied().collect())
}

/// Several `-m`, or an ensemble file.
fn load_ensemble(args: &SeparateArgs) -> Result<Box<dyn Separator>, Error> {
    let opts = neural_options(args)?;
    if args.model.len() == 1 {
        if args.ensemble.is_some() || args.weights.is_some() {
            return Err(Error::InvalidArgument {
                name: "ensemble",
                expected: "the ensemble file's own algorithm and weights".into(),
                actual: "--ensemble/--weights with an ensemble file".into(),
            });
        }
        return core::load_separator(&args.model[0], opts);
    }
    core::load_ensemble(&args.model, args.ensemble.unwrap_or_default(), args.weights.clone(), opts)
}

fn score_table(scores: &[core::eval::StemScore]) {
    println!(
        "  {:<14} {:>8} {:>8} {:>8} {:>8} {:>11} {:>8}",
        "stem", "SDR", "SIR", "ISR", "SAR", "global SDR", "SI-SDR"
    );
    for s in scores {
        println!(
            "  {:<14} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>11.3} {:>8.3}",
            s.stem, s.sdr, s.sir, s.isr, s.sar, s.global_sdr, s.si_sdr
        );
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    let fail = |e: Error, at: Option<&Path>| {
        if args.json {
            println!("{}", error_json(at, &e));
        } else {
            eprintln!("error: {e}");
        }
        ExitCode::from(if is_usage_error(&e) { EXIT_USAGE } else { EXIT_FAILED })
    };
    let mut output = args.output.clone();
    let result: serde_json::Value = if let (Some(reference), Some(estimate)) = (&args.reference, &args.estimate) {
        match core::eval::evaluate_dirs(reference, estimate) {
            Ok(scores) => {
                if !args.json {
                    score_table(&scores);
                }
                serde_json::to_value(&scores).expect("scores serialise")
            }
            Err(e) => return fail(e, Some(estimate)),
        }
    } else {
        let dataset = args.dataset.clone().expect("clap requires --dataset without --reference");
        let providers = match args.device.iter().map(|d| d.parse()).collect::<Result<Vec<Provider>, Error>>() {
            Ok(p) => p,
            Err(e) => return fail(e, None),
        };
        let neural = NeuralOptions {
            model: ModelOptions { runtime_library: args.ort_lib.clone(), providers, ..ModelOptions::default() },
            ..NeuralOptions::default()
        };
        let mut sep = match core::load_separator(&args.model, neural) {
            Ok(s) => s,
            Err(e) => return fail(e, Some(Path::new(&args.model))),
        };
        let bar = if !args.json && std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("[{bar:30}] {pos}/{len} tracks {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        let cancel = ctrl_c();
        let opts = SeparateOptions { progress: None, cancel: Some(&cancel) };
        let scores = core::eval::evaluate_dataset(&dataset, sep.as_mut(), &opts, |done, total, name| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(name.to_string());
        });
        bar.finish_and_clear();
        match scores {
            Ok(scores) => {
                if !args.json {
                    for t in &scores.tracks {
                        println!("{} ({:.1} s)", t.track, t.duration_secs);
                        score_table(&t.stems);
                    }
                    println!(
                        "{}: {} tracks; BSS Eval: median over tracks, global SDR and SI-SDR: mean",
                        scores.separator,
                        scores.tracks.len()
                    );
                    score_table(&scores.aggregate);
                }
                let name: String = scores
                    .separator
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                    .collect();
                output.get_or_insert_with(|| PathBuf::from(format!("splitsound-eval-{name}.json")));
                serde_json::to_value(&scores).expect("scores serialise")
            }
            Err(Error::Cancelled) => return ExitCode::from(EXIT_CANCELLED),
            Err(e) => return fail(e, Some(&dataset)),
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result).expect("serialises"));
    }
    if let Some(path) = &output {
        let bytes = serde_json::to_vec_pretty(&result).expect("serialises");
        if let Err(e) = core::PendingFile::write(path, &bytes).and_then(|p| p.commit()) {
            return fail(e, Some(path));
        }
        if !args.json {
            eprintln!("scores written to {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

fn hms(secs: f64) -> String {
    let t = secs.max(0.0);
    let (h, m, s) = ((t / 3600.0) as u64, ((t % 3600.0) / 60.0) as u64, t % 60.0);
    if h > 0 { format!("{h}:{m:02}:{s:06.3}") } else { format!("{m}:{s:06.3}") }
}

/// Fraction of a file's work done at a progress report, by stage.
fn fraction(p: &Progress) -> f64 {
    let (start, span) = match p.stage {
        Stage::Decode => (0.0, 0.1),
        Stage::Resample => (0.1, 0.05),
        Stage::Analyse => (0.15, 0.2),
        Stage::Separate => (0.35, 0.35),
        Stage::Synthesise => (0.7, 0.2),
        Stage::Write => (0.9, 0.1),
    };
    start + span * if p.total == 0 { 1.0 } else { p.done as f64 / p.total as f64 }
}

fn separate(mut args: SeparateArgs) -> ExitCode {
    // Model names become the cache's paths (fetched first with --download).
    for i in 0..args.model.len() + 1 {
        let Some(name) = (if i < args.model.len() { Some(&args.model[i]) } else { args.text_model.as_ref() }) else {
            continue;
        };
        if models::is_model_name(name) {
            match models::resolve(name, &args.registry, args.download, args.json) {
                Ok(path) if i < args.model.len() => args.model[i] = path,
                Ok(path) => args.text_model = Some(path),
                Err(e) => {
                    let code = match &e {
                        Error::Cancelled => EXIT_CANCELLED,
                        e if is_usage_error(e) || matches!(e, Error::Registry { .. }) => EXIT_USAGE,
                        _ => EXIT_FAILED,
                    };
                    if args.json {
                        println!("{}", error_json(None, &e));
                    } else {
                        eprintln!("error: {e}");
                    }
                    return ExitCode::from(code);
                }
            }
        }
    }
    let emit = |v: serde_json::Value| {
        if args.json {
            println!("{v}");
        }
    };
    let fail_usage = |e: Error| {
        if args.json {
            println!("{}", error_json(None, &e));
        } else {
            eprintln!("error: {e}");
        }
        ExitCode::from(EXIT_USAGE)
    };
    // A malformed ensemble file is reported as one (by load_ensemble), not as a bad manifest.
    let ensemble = args.model.len() > 1 || !matches!(core::EnsembleSpec::read(Path::new(&args.model[0])), Ok(None));
    if !ensemble && (args.ensemble.is_some() || args.weights.is_some()) {
        return fail_usage(Error::InvalidArgument {
            name: "ensemble",
            expected: "several models (-m a -m b)".into(),
            actual: "--ensemble/--weights with one model".into(),
        });
    }
    // Set when a text-prompted model takes the query: isolate or remove what it describes.
    let mut text_mode = None;
    let mut sep: Box<dyn Separator> = if ensemble {
        match load_ensemble(&args) {
            Ok(s) => {
                if !args.json {
                    eprintln!("{} runs on {}", s.name(), s.runs_on());
                }
                emit(json!({"event": "model", "name": s.name(), "provider": s.runs_on()}));
                s
            }
            Err(e) => {
                let code = if is_usage_error(&e) { EXIT_USAGE } else { EXIT_FAILED };
                if args.json {
                    println!("{}", error_json(None, &e));
                } else {
                    eprintln!("error: {e}");
                }
                return ExitCode::from(code);
            }
        }
    } else if !core::is_model_package(&args.model[0]) {
        match core::load_separator(&args.model[0], Default::default()) {
            Ok(s) => s,
            Err(e) => return fail_usage(e),
        }
    } else {
        let loaded = if core::model::is_text_prompted(&args.model[0]).unwrap_or(false) {
            // The model is text-prompted: the query is its description.
            let Some(q) = &args.query else {
                return fail_usage(Error::InvalidArgument {
                    name: "--query",
                    expected: "a description of the sound to separate (this model is text-prompted)".into(),
                    actual: "none".into(),
                });
            };
            match core::text_query(q) {
                Ok(t) => {
                    text_mode = Some(t.mode);
                    load_text_model(&args.model[0], &t.description, &args)
                }
                Err(e) => Err(e),
            }
        } else {
            load_neural(&args)
        };
        match loaded {
            Ok(s) => {
                if !args.json {
                    eprintln!("model {} runs on {}", s.model().manifest().name, s.provider());
                }
                emit(
                    json!({"event": "model", "name": s.model().manifest().name, "provider": s.provider().to_string()}),
                );
                Box::new(s)
            }
            Err(e) => {
                let code = if is_usage_error(&e) { EXIT_USAGE } else { EXIT_FAILED };
                if args.json {
                    println!("{}", error_json(Some(Path::new(&args.model[0])), &e));
                } else {
                    eprintln!("error: {e}");
                }
                return ExitCode::from(code);
            }
        }
    };
    let mut selection = match (&args.stems, &args.query) {
        (Some(s), _) => StemSelection::Stems(s.clone()),
        (None, Some(_)) if text_mode.is_some() => StemSelection::All,
        (None, Some(q)) => StemSelection::Query(q.clone()),
        (None, None) => StemSelection::All,
    };
    match &selection {
        StemSelection::Stems(s) => {
            if let Err(e) = core::check_names(s, sep.stems()) {
                return fail_usage(e);
            }
        }
        StemSelection::Query(q) => match core::plan_query(q, sep.stems(), args.text_model.is_some()) {
            Ok(core::QueryPlan::Stems(r)) => {
                for n in &r.notes {
                    if !args.json {
                        eprintln!("note: {n}");
                    }
                }
            }
            Ok(core::QueryPlan::Text(t)) => {
                // No stem of -m is described: the text-prompted model separates it.
                let path = args.text_model.clone().expect("planned with a text model");
                match load_text_model(&path, &t.description, &args) {
                    Ok(s) => {
                        if !args.json {
                            eprintln!(
                                "note: no stem of {} is \"{q}\"; {} separates \"{}\"",
                                sep.name(),
                                s.name(),
                                t.description
                            );
                        }
                        emit(
                            json!({"event": "model", "name": s.name(), "provider": s.provider().to_string(), "description": t.description}),
                        );
                        sep = Box::new(s);
                        text_mode = Some(t.mode);
                        selection = StemSelection::All;
                    }
                    Err(e) => {
                        let code = if is_usage_error(&e) { EXIT_USAGE } else { EXIT_FAILED };
                        if args.json {
                            println!("{}", error_json(Some(Path::new(&path)), &e));
                        } else {
                            eprintln!("error: {e}");
                        }
                        return ExitCode::from(code);
                    }
                }
            }
            Err(e) => return fail_usage(e),
        },
        StemSelection::All => {}
    }
    if let Some(mode) = text_mode
        && !args.json
    {
        let keep = if mode == core::QueryMode::Remove { "residual (everything but it)" } else { "target" };
        eprintln!("note: the described sound is written as target, the rest as residual; you asked for the {keep}");
    }
    // Two inputs with the same name would write to the same folder.
    let mut seen = std::collections::HashMap::new();
    for i in &args.inputs {
        let key = i.file_stem().map(|s| s.to_os_string());
        if let Some(prev) = seen.insert(key, i) {
            return fail_usage(Error::InvalidArgument {
                name: "inputs",
                expected: "file names that differ without their extension".into(),
                actual: format!("{} and {} both map to the same output folder", prev.display(), i.display()),
            });
        }
    }
    let encoding = match args.bits {
        Bits::B16 => SampleEncoding::I16,
        Bits::B24 => SampleEncoding::I24,
        Bits::F32 => SampleEncoding::F32,
    };
    let format = match args.format {
        Format::Wav => OutputFormat::Wav,
        Format::Flac => OutputFormat::Flac,
    };
    if format == OutputFormat::Flac && encoding == SampleEncoding::F32 {
        return fail_usage(Error::InvalidArgument {
            name: "--bits",
            expected: "16 or 24 with --format flac".into(),
            actual: "32f".into(),
        });
    }
    let opts = FileJobOptions {
        decode: DecodeOptions {
            max_bytes: args.max_bytes,
            max_duration_secs: args.max_duration,
            allow_truncated: args.allow_truncated,
            ..DecodeOptions::default()
        },
        write: WriteOptions {
            format,
            encoding,
            clip: match args.clip {
                Clip::Rescale => ClipMode::Rescale,
                Clip::Clamp => ClipMode::Clamp,
                Clip::None => ClipMode::None,
            },
            dither: args.dither,
        },
        selection,
    };

    let cancel = ctrl_c();

    let show_bar = !args.json && std::io::stderr().is_terminal();
    let n = args.inputs.len();
    let (mut ok, mut failed) = (0usize, 0usize);
    for (idx, input) in args.inputs.iter().enumerate() {
        let bar = if show_bar {
            let b = ProgressBar::new(1000);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("[{}/{n}] {}", idx + 1, input.file_name().unwrap_or_default().to_string_lossy()));
            b
        } else {
            ProgressBar::hidden()
        };
        let last_json = Mutex::new((Stage::Decode, u64::MAX));
        let progress = |p: Progress| {
            bar.set_position((fraction(&p) * 1000.0) as u64);
            bar.set_message(format!("{:?}", p.stage).to_lowercase());
            if args.json {
                // One line per change of stage or percent, not per callback.
                let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
                let mut last = last_json.lock().unwrap_or_else(|e| e.into_inner());
                if last.0 != p.stage || last.1 != pct {
                    *last = (p.stage, pct);
                    println!(
                        "{}",
                        json!({"event": "progress", "input": input, "stage": p.stage, "done": p.done, "total": p.total})
                    );
                }
            }
        };
        let call = SeparateOptions { progress: Some(&progress), cancel: Some(&cancel) };
        let started = std::time::Instant::now();
        match core::separate_file(sep.as_mut(), input, &args.out, &opts, &call) {
            Ok(report) => {
                bar.finish_and_clear();
                ok += 1;
                let secs = started.elapsed().as_secs_f64();
                if args.json {
                    let mut v = serde_json::to_value(&report).expect("report serialises");
                    v["event"] = json!("done");
                    v["elapsed_secs"] = json!(secs);
                    emit(v);
                } else {
                    eprintln!(
                        "{} → {} ({:.1}s of audio in {:.1}s)",
                        input.display(),
                        report.output_dir.display(),
                        report.duration_secs,
                        secs
                    );
                    for s in &report.stems {
                        println!("{}", s.path.display());
                    }
                }
            }
            Err(Error::Cancelled) => {
                bar.abandon_with_message("cancelled");
                emit(error_json(Some(input), &Error::Cancelled));
                if !args.json {
                    eprintln!("cancelled; no partial files were written");
                }
                return ExitCode::from(EXIT_CANCELLED);
            }
            Err(e) => {
                bar.abandon();
                failed += 1;
                if args.json {
                    emit(error_json(Some(input), &e));
                } else {
                    eprintln!("error: {}: {e}", input.display());
                }
                if is_usage_error(&e) {
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
    }
    emit(json!({"event": "summary", "succeeded": ok, "failed": failed}));
    if failed > 0 { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}
