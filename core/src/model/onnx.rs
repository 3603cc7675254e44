//! The ONNX Runtime engine: sessions on the providers a caller asks for.

use ort::ep::ExecutionProvider;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{IoBinding, Session, SessionOutputs};

use super::runtime::{Runtime, runtime};
use super::{Fallback, Graph, GraphIo, Inputs, ModelOptions, OutputViews, Provider, Source, TensorSpec};
use crate::error::{Error, Result};

/// A graph on an ONNX Runtime session.
struct OrtGraph {
    session: Session,
    io: GraphIo,
    /// With [`ModelOptions::io_binding`]: outputs bound to host memory the
    /// session's provider writes into.
    binding: Option<Bound>,
}

/// An I/O binding, with the input shapes its output buffers were made for.
struct Bound {
    binding: IoBinding,
    host: MemoryInfo<'static>,
    shapes: Vec<Vec<usize>>,
}

impl Bound {
    /// Binds every output to host memory: ordinary memory on the CPU,
    /// page-locked memory for CUDA (the device copies into it directly).
    fn new(session: &Session, provider: Provider) -> ort::Result<Bound> {
        let host = match provider {
            #[cfg(feature = "cuda")]
            Provider::Cuda { device } => MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                device as i32,
                AllocatorType::Device,
                MemoryType::CPUOutput,
            )?,
            _ => MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)?,
        };
        Ok(Bound { binding: session.create_binding()?, host, shapes: Vec::new() })
    }

    /// Binds `values` as the inputs. ONNX Runtime keeps the outputs of a run in
    /// the binding and writes the next run's into them, which holds while the
    /// input shapes (and so, for our graphs, the output shapes) stay the same:
    /// segment after segment. When they change (a last, smaller batch; another
    /// input length) the outputs are bound afresh.
    fn bind(&mut self, session: &Session, values: &[(String, ort::value::DynValue)]) -> ort::Result<()> {
        let shapes: Vec<Vec<usize>> =
            values.iter().map(|(_, v)| v.shape().iter().map(|&d| d as usize).collect()).collect();
        if shapes != self.shapes {
            self.binding.clear_outputs();
            for out in session.outputs() {
                self.binding.bind_output_to_device(out.name(), &self.host)?;
            }
            self.shapes = shapes;
        }
        for (name, value) in values {
            self.binding.bind_input(name.as_str(), value)?;
        }
        Ok(())
    }
}

/// Opens `src` on the first provider in `opts.providers` that registers.
pub(super) fn open(src: Source<'_>, file: &str, opts: &ModelOptions) -> Result<(Box<dyn Graph>, Provider)> {
    let rt = runtime(opts.runtime_library.as_deref())?;
    let (session, provider) = open_session(rt, src, opts)?;
    let io = graph_io(file, &session);
    let binding = if opts.io_binding {
        Some(Bound::new(&session, provider).map_err(|e| Error::Model {
            path: src.path(),
            detail: format!("ONNX Runtime cannot bind its outputs: {e}"),
        })?)
    } else {
        None
    };
    Ok((Box::new(OrtGraph { session, io, binding }), provider))
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
        let outputs: SessionOutputs<'_> = match &mut self.binding {
            None => self.session.run(values).map_err(inference)?,
            Some(bound) => {
                bound.bind(&self.session, &values).map_err(inference)?;
                self.session.run_binding(&bound.binding).map_err(inference)?
            }
        };
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
    // Arena on or off is a session option, whatever the providers.
    ort::ep::CPU::default().with_arena_allocator(opts.memory_arena).register(&mut b).map_err(|e| e.to_string())?;
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
