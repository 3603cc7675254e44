//! The ONNX Runtime engine: sessions on the providers a caller asks for.

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::runtime::{Runtime, runtime};
use super::{Fallback, Graph, GraphIo, Inputs, ModelOptions, OutputViews, Provider, Source, TensorSpec};
use crate::error::{Error, Result};

/// A graph on an ONNX Runtime session.
struct OrtGraph {
    session: Session,
    io: GraphIo,
}

/// Opens `src` on the first provider in `opts.providers` that registers.
pub(super) fn open(src: Source<'_>, file: &str, opts: &ModelOptions) -> Result<(Box<dyn Graph>, Provider)> {
    let rt = runtime(opts.runtime_library.as_deref())?;
    let (session, provider) = open_session(rt, src, opts)?;
    let io = graph_io(file, &session);
    Ok((Box::new(OrtGraph { session, io }), provider))
}

impl Graph for OrtGraph {
    fn io(&self) -> &GraphIo {
        &self.io
    }

    fn run(&mut self, inputs: Inputs, read: &mut dyn FnMut(OutputViews<'_>) -> Result<()>) -> Result<()> {
        let inference = |e: ort::Error| Error::Inference { detail: e.to_string() };
        let mut values = Vec::with_capacity(inputs.len());
        for (name, array) in inputs {
            let tensor = ort::value::Tensor::from_array(array).map_err(inference)?;
            values.push((name, ort::value::DynValue::from(tensor)));
        }
        let outputs = self.session.run(values).map_err(inference)?;
        let names: Vec<&str> = outputs.keys().collect();
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            let value = outputs.get(name).expect("a key of these outputs");
            views.push((name, value.try_extract_array::<f32>().map_err(inference)?));
        }
        read(views)
    }

    fn metadata(&self, key: &str) -> Option<String> {
        self.session.metadata().ok().and_then(|m| m.custom(key))
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
fn open_session(rt: &Runtime, src: Source<'_>, opts: &ModelOptions) -> Result<(Session, Provider)> {
    let model_err = |detail: String| Error::Model { path: src.path(), detail };
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
        let session = match src {
            Source::File(path) => builder.commit_from_file(path),
            Source::Memory { bytes, .. } => builder.commit_from_memory(bytes),
        }
        .map_err(|e| model_err(format!("ONNX Runtime cannot load it: {e}")))?;
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
