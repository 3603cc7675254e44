//! Neural models: model packages (a JSON manifest plus ONNX files), the
//! engines that run their graphs, and execution providers.
//!
//! [`Model`] loads and checks a package; [`NeuralSeparator`] runs its family's
//! separation pipeline behind the [`crate::Separator`] interface. The graphs run
//! on an [`Engine`]: ONNX Runtime (feature `onnx`, loaded at run time, CPU or GPU)
//! or tract (feature `tract`, pure Rust, compiled in: no library to install, and
//! the engine of the WebAssembly build). Anything else can implement [`Graph`].

mod chunked;
mod demucs;
mod manifest;
mod mdx;
mod msst;
mod neural;
#[cfg(feature = "onnx")]
mod onnx;
mod providers;
#[cfg(feature = "onnx")]
mod runtime;
#[cfg(feature = "sam-audio")]
mod sam_audio;
#[cfg(feature = "tract")]
mod tract;
mod umx;
pub mod uvr;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use manifest::{
    BareWaveform, Defaults, Family, MANIFEST_FORMAT_VERSION, Manifest, MdxParams, ModelFile, MsstParams, Normalisation,
    Partial, RoformerParams, SamAudioParams, TensorSpec, WaveWindow, WaveformParams, manifest_path,
};
pub use neural::{Chunking, NeuralBuilder, NeuralOptions, NeuralSeparator, TextPrompt};
#[cfg(feature = "onnx")]
pub use onnx::provider_usable;
pub use providers::{Fallback, Provider};
#[cfg(feature = "onnx")]
pub use runtime::{Runtime, allow_python_probe, candidates as runtime_candidates, package_library, runtime};
#[cfg(feature = "sam-audio")]
pub use sam_audio::Described;

use crate::error::{Error, Result};

/// The ndarray these types use, for callers of [`Model::run`].
pub use ndarray;

/// Whether the package at `path` (a manifest, or an ONNX file with a sidecar
/// one) is text-prompted: its family is `sam-audio`. A lone ONNX file is not.
pub fn is_text_prompted(path: impl AsRef<Path>) -> Result<bool> {
    let m = manifest_path(path.as_ref());
    if !m.is_file() {
        return Ok(false);
    }
    Ok(Manifest::from_file(&m)?.family == Family::SamAudio)
}

/// The ONNX metadata key holding a package's manifest (JSON), for single-file
/// packages without a sidecar `.json`.
pub const MANIFEST_METADATA_KEY: &str = "splitsound.manifest";

/// What runs a package's graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// ONNX Runtime, loaded at run time ([`runtime`]); every execution provider.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
    /// tract, a pure-Rust ONNX engine compiled into this library; CPU only.
    Tract,
}

impl Engine {
    /// This build's default: ONNX Runtime where it is compiled in, else tract.
    pub const DEFAULT: Engine = if cfg!(feature = "onnx") { Engine::OnnxRuntime } else { Engine::Tract };

    pub fn name(self) -> &'static str {
        match self {
            Engine::OnnxRuntime => "onnxruntime",
            Engine::Tract => "tract",
        }
    }

    /// Whether this build has the engine (its Cargo feature of splitsound-core).
    pub fn compiled_in(self) -> bool {
        match self {
            Engine::OnnxRuntime => cfg!(feature = "onnx"),
            Engine::Tract => cfg!(feature = "tract"),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Engine::OnnxRuntime => "onnx",
            Engine::Tract => "tract",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "onnxruntime" | "ort" => Ok(Engine::OnnxRuntime),
            "tract" => Ok(Engine::Tract),
            _ => Err(Error::invalid("engine", "onnxruntime or tract", s)),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// What runs the graphs (default [`Engine::DEFAULT`]).
    pub engine: Engine,
    /// The ONNX Runtime library; see [`runtime`] for where it is looked for otherwise.
    pub runtime_library: Option<PathBuf>,
    /// Providers in order of preference. tract runs on the CPU only: another
    /// provider first falls back to it, or fails under [`Fallback::Error`].
    pub providers: Vec<Provider>,
    pub fallback: Fallback,
    /// Threads for one operator; `None` lets ONNX Runtime decide.
    pub intra_threads: Option<usize>,
    /// Reuse memory between runs (ONNX Runtime's memory pattern optimisation).
    pub memory_pattern: bool,
    /// ONNX Runtime's CPU memory arena: freed buffers are kept for the next
    /// run instead of going back to the system. Off trades some speed for a
    /// process that gives memory back between runs.
    pub memory_arena: bool,
    /// Run through ONNX Runtime's I/O binding: outputs go to buffers bound once
    /// per graph and reused by every run (on CUDA, page-locked host memory the
    /// device copies into directly) instead of fresh ones each run. Results are
    /// identical either way.
    pub io_binding: bool,
    /// Graph optimisation level 0 (off) to 3 (all).
    pub optimization_level: u8,
    /// Treat subnormal floats as zero inside ONNX Runtime. Values below 1.2e-38
    /// change nothing audible, and arithmetic on them is slow: with it, full-size
    /// HT-Demucs runs about 9 % faster on x86 (benches/RESULTS.md).
    pub flush_denormals: bool,
    /// Parameters of a bare UVR MDX-Net `.onnx` file (one with no manifest),
    /// over those its UVR hash finds in UVR's model data ([`uvr`]). A package
    /// with a manifest does not use them.
    pub mdx: uvr::MdxOverrides,
    /// Opens a graph without a manifest as a `waveform` model when its
    /// `stems` are given. A package with a manifest does not use it.
    pub waveform: BareWaveform,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            engine: Engine::DEFAULT,
            runtime_library: None,
            providers: vec![Provider::Cpu],
            fallback: Fallback::default(),
            intra_threads: None,
            memory_pattern: true,
            memory_arena: true,
            io_binding: false,
            optimization_level: 3,
            flush_denormals: true,
            mdx: uvr::MdxOverrides::default(),
            waveform: BareWaveform::default(),
        }
    }
}

/// Inputs and outputs of a loaded graph, as its engine reports them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GraphIo {
    pub file: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// Named `f32` tensors, as a graph takes them.
pub type Inputs = Vec<(String, ndarray::ArrayD<f32>)>;
/// A graph's outputs by name, as views into the engine's buffers.
pub type OutputViews<'a> = Vec<(&'a str, ndarray::ArrayViewD<'a, f32>)>;

/// One loaded graph of a package, on some engine.
pub trait Graph: Send {
    /// Its inputs and outputs (dimensions the graph leaves free are -1).
    fn io(&self) -> &GraphIo;
    /// Runs the graph on named inputs and hands every output, in the graph's
    /// order, to `read`.
    fn run(&mut self, inputs: Inputs, read: &mut dyn FnMut(OutputViews<'_>) -> Result<()>) -> Result<()>;
    /// The ONNX metadata value under `key`, if the graph has one.
    fn metadata(&self, key: &str) -> Option<String>;
}

/// Where a graph's bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    File(&'a Path),
    Memory { name: &'a str, bytes: &'a [u8] },
}

impl Source<'_> {
    /// The path errors name.
    fn path(&self) -> PathBuf {
        match self {
            Source::File(p) => p.to_path_buf(),
            Source::Memory { name, .. } => PathBuf::from(name),
        }
    }
}

/// Opens one graph on the engine `opts` picks; returns it and the provider it runs on.
fn open_graph(src: Source<'_>, file: &str, opts: &ModelOptions) -> Result<(Box<dyn Graph>, Provider)> {
    match opts.engine {
        #[cfg(feature = "onnx")]
        Engine::OnnxRuntime => onnx::open(src, file, opts),
        #[cfg(feature = "tract")]
        Engine::Tract => tract::open(src, file, opts),
        #[allow(unreachable_patterns)]
        other => {
            let _ = (src, file);
            Err(Error::Unsupported {
                what: format!("engine `{other}` in this build"),
                suggestion: Some(format!("build splitsound-core with the `{}` feature", other.feature())),
            })
        }
    }
}

/// A loaded, checked model package.
pub struct Model {
    manifest: Manifest,
    manifest_path: PathBuf,
    graphs: Vec<Box<dyn Graph>>,
    provider: Provider,
    engine: Engine,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("manifest", &self.manifest)
            .field("manifest_path", &self.manifest_path)
            .field("graphs", &self.graphs.iter().map(|g| g.io()).collect::<Vec<_>>())
            .field("provider", &self.provider)
            .field("engine", &self.engine)
            .finish()
    }
}

impl Model {
    /// Loads a package from its manifest (`model.json`), from an ONNX file with
    /// a sidecar manifest of the same name (`model.onnx` → `model.json`), or from
    /// an ONNX file carrying its manifest in its metadata ([`MANIFEST_METADATA_KEY`]).
    ///
    /// Fails with [`Error::Model`] when the manifest is malformed or disagrees with
    /// a graph (input/output names, ranks, fixed dimensions), with
    /// [`Error::RuntimeUnavailable`] when ONNX Runtime cannot be loaded, and with
    /// [`Error::ProviderUnavailable`] when the fallback policy forbids falling back.
    pub fn load(path: impl AsRef<Path>, opts: &ModelOptions) -> Result<Model> {
        let path = path.as_ref();
        let manifest_path = manifest_path(path);
        if manifest_path != path && !manifest_path.exists() {
            if !path.is_file() {
                return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
            }
            return Self::load_embedded(Source::File(path), opts);
        }
        let manifest = Manifest::from_file(&manifest_path)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let paths: Vec<PathBuf> = manifest.files.iter().map(|f| dir.join(&f.path)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
            let detail = format!("missing file {}", missing.display());
            return Err(Error::Model { path: manifest_path, detail });
        }
        let sources = paths.iter().map(|p| Source::File(p)).collect();
        Self::open_package(manifest, manifest_path, sources, opts)
    }

    /// Loads a package held in memory, where there is no file system (the
    /// WebAssembly build): its manifest (JSON) and its ONNX files by the names the
    /// manifest gives them; or, with no manifest, one ONNX file carrying its own.
    pub fn from_memory(manifest: Option<&[u8]>, files: &[(&str, &[u8])], opts: &ModelOptions) -> Result<Model> {
        let Some(json) = manifest else {
            let [(name, bytes)] = files else {
                return Err(Error::invalid(
                    "files",
                    "one ONNX file when there is no manifest",
                    format!("{} files", files.len()),
                ));
            };
            return Self::load_embedded(Source::Memory { name, bytes }, opts);
        };
        let manifest_path = PathBuf::from("model.json");
        let manifest = Manifest::from_json(json, &manifest_path)?;
        let mut sources = Vec::with_capacity(manifest.files.len());
        for file in &manifest.files {
            let Some(&(name, bytes)) = files.iter().find(|(n, _)| *n == file.path) else {
                let given: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
                let detail = format!("missing file {} (given: {given:?})", file.path);
                return Err(Error::Model { path: manifest_path, detail });
            };
            sources.push(Source::Memory { name, bytes });
        }
        Self::open_package(manifest, manifest_path, sources, opts)
    }

    /// Opens each of the manifest's files from `sources` (in the manifest's order) and checks them.
    fn open_package(
        manifest: Manifest,
        manifest_path: PathBuf,
        sources: Vec<Source<'_>>,
        opts: &ModelOptions,
    ) -> Result<Model> {
        let mut graphs = Vec::with_capacity(sources.len());
        let mut provider = None;
        for (file, src) in manifest.files.iter().zip(sources) {
            let (graph, used) = open_graph(src, &file.path, opts)?;
            provider.get_or_insert(used);
            graphs.push((src.path(), graph));
        }
        Self::assemble(manifest, manifest_path, graphs, provider.unwrap_or(Provider::Cpu), opts.engine)
    }

    /// A single-file package whose manifest is in the ONNX file's metadata
    /// (key [`MANIFEST_METADATA_KEY`]); the file may have been renamed.
    fn load_embedded(src: Source<'_>, opts: &ModelOptions) -> Result<Model> {
        let onnx = src.path();
        let name = onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (graph, used) = open_graph(src, &name, opts)?;
        let bad = |detail: String| Error::Model { path: onnx.clone(), detail };
        let embedded = graph.metadata(MANIFEST_METADATA_KEY);
        if embedded.is_some() && !opts.waveform.stems.is_empty() {
            return Err(bad("the file carries its own manifest; the waveform flags are for bare graphs".into()));
        }
        let Some(json) = embedded else {
            let io = graph.io();
            if let ([input], [output]) = (&io.inputs[..], &io.outputs[..])
                && !opts.waveform.stems.is_empty()
            {
                let manifest = opts.waveform.manifest(&onnx, input, output)?;
                return Self::assemble(manifest, onnx.clone(), vec![(onnx, graph)], used, opts.engine);
            }
            // A bare UVR MDX-Net file: its hash says what it is, as in UVR.
            let ([input], [output]) = (&io.inputs[..], &io.outputs[..]) else {
                return Err(bad(format!(
                    "no manifest: neither {} nor `{MANIFEST_METADATA_KEY}` in the ONNX metadata (and not a \
                     one-input, one-output MDX-Net graph that UVR's model data could describe)",
                    manifest_path(&onnx).display()
                )));
            };
            let hash = match src {
                Source::File(p) => uvr::uvr_hash(p)?,
                Source::Memory { bytes, .. } => uvr::uvr_hash_bytes(bytes),
            };
            let manifest = uvr::manifest(&onnx, &hash, &opts.mdx, input, output)?;
            return Self::assemble(manifest, onnx.clone(), vec![(onnx, graph)], used, opts.engine);
        };
        let mut manifest = Manifest::from_json(json.as_bytes(), &onnx)?;
        if manifest.files.len() != 1 {
            return Err(bad("an embedded manifest describes a single-file package".into()));
        }
        manifest.files[0].path = name;
        Self::assemble(manifest, onnx.clone(), vec![(onnx, graph)], used, opts.engine)
    }

    /// Checks every graph against the manifest.
    fn assemble(
        manifest: Manifest,
        manifest_path: PathBuf,
        opened: Vec<(PathBuf, Box<dyn Graph>)>,
        provider: Provider,
        engine: Engine,
    ) -> Result<Model> {
        let mut graphs = Vec::with_capacity(opened.len());
        for ((onnx, graph), file) in opened.into_iter().zip(&manifest.files) {
            check_graph(&manifest, file, graph.io()).map_err(|detail| Error::Model { path: onnx, detail })?;
            graphs.push(graph);
        }
        Ok(Model { manifest, manifest_path, graphs, provider, engine })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }
    /// Inputs and outputs of each graph, as loaded.
    pub fn graphs(&self) -> Vec<&GraphIo> {
        self.graphs.iter().map(|g| g.io()).collect()
    }
    /// The provider the model actually runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }
    /// The engine running the graphs.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs graph `file` (an index into the manifest's `files`) on named `f32`
    /// inputs and returns every output by name, in the graph's order.
    pub fn run(&mut self, file: usize, inputs: Inputs) -> Result<Vec<(String, ndarray::ArrayD<f32>)>> {
        self.run_with(file, inputs, |outs| Ok(outs.into_iter().map(|(n, a)| (n.to_string(), a.to_owned())).collect()))
    }

    /// Like [`Model::run`], but hands the outputs to `read` as views into the
    /// engine's buffers, without copying them.
    pub fn run_with<R>(
        &mut self,
        file: usize,
        inputs: Inputs,
        read: impl FnOnce(OutputViews<'_>) -> Result<R>,
    ) -> Result<R> {
        let n = self.graphs.len();
        let graph =
            self.graphs.get_mut(file).ok_or_else(|| Error::invalid("file", format!("an index below {n}"), file))?;
        let mut read = Some(read);
        let mut result = None;
        graph.run(inputs, &mut |outs| {
            let read = read.take().ok_or_else(|| Error::Inference { detail: "a graph returned twice".into() })?;
            result = Some(read(outs)?);
            Ok(())
        })?;
        result.ok_or_else(|| Error::Inference { detail: "the graph returned no outputs".into() })
    }
}

/// The manifest's tensors (the file's own, where it names them) must exist in
/// the graph with the same rank, and every dimension fixed on both sides must agree.
fn check_graph(m: &Manifest, file: &ModelFile, io: &GraphIo) -> std::result::Result<(), String> {
    let inputs = file.inputs.as_ref().unwrap_or(&m.inputs);
    let outputs = file.outputs.as_ref().unwrap_or(&m.outputs);
    for (what, want, have) in [("input", inputs, &io.inputs), ("output", outputs, &io.outputs)] {
        for w in want {
            let Some(h) = have.iter().find(|h| h.name == w.name) else {
                let names: Vec<&str> = have.iter().map(|h| h.name.as_str()).collect();
                return Err(format!("the manifest names {what} `{}`, the graph has {names:?}", w.name));
            };
            if h.shape.len() != w.shape.len() {
                return Err(format!(
                    "{what} `{}`: the manifest says rank {} {:?}, the graph has rank {} {:?}",
                    w.name,
                    w.shape.len(),
                    w.shape,
                    h.shape.len(),
                    h.shape
                ));
            }
            if let Some(d) = (0..w.shape.len()).find(|&d| w.shape[d] > 0 && h.shape[d] > 0 && w.shape[d] != h.shape[d])
            {
                return Err(format!(
                    "{what} `{}` dimension {d}: the manifest says {}, the graph says {}",
                    w.name, w.shape[d], h.shape[d]
                ));
            }
        }
        if have.len() != want.len() {
            let extra: Vec<&str> =
                have.iter().filter(|h| !want.iter().any(|w| w.name == h.name)).map(|h| h.name.as_str()).collect();
            return Err(format!("the graph has {what}s the manifest does not describe: {extra:?}"));
        }
    }
    Ok(())
}
