//! Neural models on ONNX Runtime: the runtime library, model packages
//! (a JSON manifest plus ONNX files), and execution providers.
//!
//! [`Model`] loads and checks a package; [`NeuralSeparator`] runs its family's
//! separation pipeline behind the [`crate::Separator`] interface.

mod demucs;
mod manifest;
mod mdx;
mod neural;
mod providers;
mod runtime;
mod umx;

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

pub use manifest::{
    Defaults, Family, MANIFEST_FORMAT_VERSION, Manifest, MdxParams, ModelFile, Normalisation, TensorSpec,
};
pub use neural::{NeuralBuilder, NeuralOptions, NeuralSeparator};
pub use providers::{Fallback, Provider};
pub use runtime::{Runtime, candidates as runtime_candidates, runtime};

use crate::error::{Error, Result};

/// The ONNX metadata key holding a package's manifest (JSON), for single-file
/// packages without a sidecar `.json`.
pub const MANIFEST_METADATA_KEY: &str = "splitsound.manifest";

/// How to load a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// The ONNX Runtime library; see [`runtime`] for where it is looked for otherwise.
    pub runtime_library: Option<PathBuf>,
    /// Providers in order of preference.
    pub providers: Vec<Provider>,
    pub fallback: Fallback,
    /// Threads for one operator; `None` lets ONNX Runtime decide.
    pub intra_threads: Option<usize>,
    /// Reuse memory between runs (ONNX Runtime's memory pattern optimisation).
    pub memory_pattern: bool,
    /// Graph optimisation level 0 (off) to 3 (all).
    pub optimization_level: u8,
    /// Treat subnormal floats as zero inside ONNX Runtime. Values below 1.2e-38
    /// change nothing audible, and arithmetic on them is slow: with it, full-size
    /// HT-Demucs runs about 9 % faster on x86 (benches/RESULTS.md).
    pub flush_denormals: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            runtime_library: None,
            providers: vec![Provider::Cpu],
            fallback: Fallback::default(),
            intra_threads: None,
            memory_pattern: true,
            optimization_level: 3,
            flush_denormals: true,
        }
    }
}

/// Inputs and outputs of a loaded graph, as ONNX Runtime reports them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GraphIo {
    pub file: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A loaded, checked model package.
#[derive(Debug)]
pub struct Model {
    manifest: Manifest,
    manifest_path: PathBuf,
    sessions: Vec<Session>,
    graphs: Vec<GraphIo>,
    provider: Provider,
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
        let is_onnx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        let sidecar = if is_onnx { path.with_extension("json") } else { path.to_path_buf() };
        if is_onnx && !sidecar.exists() {
            return Self::load_embedded(path, opts);
        }
        let manifest_path = sidecar;
        let json = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest = Manifest::from_json(&json, &manifest_path)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let rt = runtime(opts.runtime_library.as_deref())?;
        let mut sessions = Vec::with_capacity(manifest.files.len());
        let mut provider = None;
        for file in &manifest.files {
            let onnx = dir.join(&file.path);
            if !onnx.is_file() {
                return Err(Error::Model {
                    path: manifest_path.clone(),
                    detail: format!("missing file {}", onnx.display()),
                });
            }
            let (session, used) = open_session(rt, &onnx, opts)?;
            provider.get_or_insert(used);
            sessions.push((file.path.clone(), onnx, session));
        }
        Self::assemble(manifest, manifest_path, sessions, provider.unwrap_or(Provider::Cpu))
    }

    /// A single-file package whose manifest is in the ONNX file's metadata
    /// (key [`MANIFEST_METADATA_KEY`]); the file may have been renamed.
    fn load_embedded(onnx: &Path, opts: &ModelOptions) -> Result<Model> {
        let rt = runtime(opts.runtime_library.as_deref())?;
        if !onnx.is_file() {
            return Err(Error::io(onnx, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        let (session, used) = open_session(rt, onnx, opts)?;
        let bad = |detail: String| Error::Model { path: onnx.to_path_buf(), detail };
        let json = session.metadata().ok().and_then(|m| m.custom(MANIFEST_METADATA_KEY)).ok_or_else(|| {
            bad(format!(
                "no manifest: neither {} nor `{MANIFEST_METADATA_KEY}` in the ONNX metadata",
                onnx.with_extension("json").display()
            ))
        })?;
        let mut manifest = Manifest::from_json(json.as_bytes(), onnx)?;
        if manifest.files.len() != 1 {
            return Err(bad("an embedded manifest describes a single-file package".into()));
        }
        let name = onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        manifest.files[0].path = name.clone();
        Self::assemble(manifest, onnx.to_path_buf(), vec![(name, onnx.to_path_buf(), session)], used)
    }

    /// Checks every graph against the manifest.
    fn assemble(
        manifest: Manifest,
        manifest_path: PathBuf,
        opened: Vec<(String, PathBuf, Session)>,
        provider: Provider,
    ) -> Result<Model> {
        let mut sessions = Vec::with_capacity(opened.len());
        let mut graphs = Vec::with_capacity(opened.len());
        for (name, onnx, session) in opened {
            let io = graph_io(&name, &session);
            check_graph(&manifest, &io).map_err(|detail| Error::Model { path: onnx, detail })?;
            sessions.push(session);
            graphs.push(io);
        }
        Ok(Model { manifest, manifest_path, sessions, graphs, provider })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }
    /// Inputs and outputs of each graph, as loaded.
    pub fn graphs(&self) -> &[GraphIo] {
        &self.graphs
    }
    /// The provider the model actually runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Runs graph `file` (an index into the manifest's `files`) on named `f32`
    /// inputs and returns every output by name, in the graph's order.
    pub fn run(
        &mut self,
        file: usize,
        inputs: Vec<(String, ndarray::ArrayD<f32>)>,
    ) -> Result<Vec<(String, ndarray::ArrayD<f32>)>> {
        self.run_with(file, inputs, |outs| Ok(outs.into_iter().map(|(n, a)| (n.to_string(), a.to_owned())).collect()))
    }

    /// Like [`Model::run`], but hands the outputs to `read` as views into ONNX
    /// Runtime's buffers, without copying them.
    pub fn run_with<R>(
        &mut self,
        file: usize,
        inputs: Vec<(String, ndarray::ArrayD<f32>)>,
        read: impl FnOnce(Vec<(&str, ndarray::ArrayViewD<'_, f32>)>) -> Result<R>,
    ) -> Result<R> {
        let session = self
            .sessions
            .get_mut(file)
            .ok_or_else(|| Error::invalid("file", format!("an index below {}", self.graphs.len()), file))?;
        let inference = |e: ort::Error| Error::Inference { detail: e.to_string() };
        let mut values = Vec::with_capacity(inputs.len());
        for (name, array) in inputs {
            let tensor = ort::value::Tensor::from_array(array).map_err(inference)?;
            values.push((name, ort::value::DynValue::from(tensor)));
        }
        let outputs = session.run(values).map_err(inference)?;
        let names: Vec<&str> = outputs.keys().collect();
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            let value = outputs.get(name).expect("a key of these outputs");
            views.push((name, value.try_extract_array::<f32>().map_err(inference)?));
        }
        read(views)
    }
}

fn session_builder(rt: &Runtime, opts: &ModelOptions) -> std::result::Result<SessionBuilder, String> {
    let level = match opts.optimization_level {
        0 => GraphOptimizationLevel::Disable,
        1 => GraphOptimizationLevel::Level1,
        2 => GraphOptimizationLevel::Level2,
        _ => GraphOptimizationLevel::Level3,
    };
    let mut b = Session::builder(&rt.environment)
        .map_err(|e| e.to_string())?
        .with_optimization_level(level)
        .map_err(|e| e.to_string())?
        .with_memory_pattern(opts.memory_pattern)
        .map_err(|e| e.to_string())?;
    if let Some(n) = opts.intra_threads {
        b = b.with_intra_threads(n).map_err(|e| e.to_string())?;
    }
    if opts.flush_denormals {
        b = b.with_flush_to_zero().map_err(|e| e.to_string())?;
    }
    Ok(b)
}

/// Opens a session on the first provider in `opts.providers` that registers,
/// following the fallback policy; returns the session and the provider used.
fn open_session(rt: &Runtime, onnx: &Path, opts: &ModelOptions) -> Result<(Session, Provider)> {
    let model_err = |detail: String| Error::Model { path: onnx.to_path_buf(), detail };
    let mut wanted = opts.providers.clone();
    if wanted.is_empty() {
        wanted.push(Provider::Cpu);
    }
    if opts.fallback == Fallback::NextThenCpu && !wanted.contains(&Provider::Cpu) {
        wanted.push(Provider::Cpu);
    }
    for (i, p) in wanted.iter().copied().enumerate() {
        let mut builder = session_builder(rt, opts).map_err(model_err)?;
        if let Err(why) = register(p, &mut builder) {
            if opts.fallback == Fallback::Error || i + 1 == wanted.len() {
                return Err(Error::ProviderUnavailable { provider: p.to_string(), detail: why });
            }
            log::warn!("execution provider {p} is not usable ({why}); trying {}", wanted[i + 1]);
            continue;
        }
        let session =
            builder.commit_from_file(onnx).map_err(|e| model_err(format!("ONNX Runtime cannot load it: {e}")))?;
        return Ok((session, p));
    }
    unreachable!("the provider list is never empty")
}

/// Whether `p` can run here: compiled in, present in the loaded ONNX Runtime,
/// and accepted by it. Loads the runtime if needed.
pub fn provider_usable(p: Provider, opts: &ModelOptions) -> Result<std::result::Result<(), String>> {
    let rt = runtime(opts.runtime_library.as_deref())?;
    let mut builder = session_builder(rt, opts).map_err(|detail| Error::Inference { detail })?;
    Ok(register(p, &mut builder))
}

/// Registers one provider on a session builder, or says why it cannot run here.
fn register(p: Provider, builder: &mut SessionBuilder) -> std::result::Result<(), String> {
    match dispatch(p)? {
        None => Ok(()),
        Some(d) => d.register(builder).map_err(|e| e.to_string()),
    }
}

/// ort's provider object for `p`; `None` for the CPU, which is always there.
fn dispatch(p: Provider) -> std::result::Result<Option<ort::ep::ExecutionProviderDispatch>, String> {
    let not_compiled = |p: Provider| {
        Err(format!(
            "support was not compiled in; build splitsound-core with the `{}` feature",
            p.feature().unwrap_or("?")
        ))
    };
    match p {
        Provider::Cpu => Ok(None),
        #[cfg(feature = "cuda")]
        Provider::Cuda { device } => Ok(Some(ort::ep::CUDA::default().with_device_id(device as i32).build())),
        #[cfg(feature = "tensorrt")]
        Provider::TensorRt { device } => Ok(Some(ort::ep::TensorRT::default().with_device_id(device as i32).build())),
        #[cfg(feature = "coreml")]
        Provider::CoreMl => Ok(Some(ort::ep::CoreML::default().build())),
        #[cfg(feature = "directml")]
        Provider::DirectMl { device } => Ok(Some(ort::ep::DirectML::default().with_device_id(device as i32).build())),
        #[allow(unreachable_patterns)]
        other => not_compiled(other),
    }
}

fn graph_io(file: &str, session: &Session) -> GraphIo {
    let spec = |o: &ort::value::Outlet| TensorSpec {
        name: o.name().to_string(),
        shape: o.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default(),
    };
    GraphIo {
        file: file.to_string(),
        inputs: session.inputs().iter().map(spec).collect(),
        outputs: session.outputs().iter().map(spec).collect(),
    }
}

/// The manifest's tensors must exist in the graph with the same rank, and every
/// dimension fixed on both sides must agree.
fn check_graph(m: &Manifest, io: &GraphIo) -> std::result::Result<(), String> {
    for (what, want, have) in [("input", &m.inputs, &io.inputs), ("output", &m.outputs, &io.outputs)] {
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
