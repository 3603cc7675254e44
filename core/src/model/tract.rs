//! The tract engine: a pure-Rust ONNX runtime compiled into the library, on the
//! CPU. No shared library to find, so it also runs where ONNX Runtime cannot be
//! loaded at all, the WebAssembly build first.
//!
//! tract optimises a graph for concrete input shapes. A package's graphs leave
//! some dimensions free (the batch; Open-Unmix's frames), so a graph keeps a few
//! plans, one per input shape it has met, oldest dropped first.

use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, IntoTValue, TVec, Tensor,
    TypedRunnableModel,
};

use super::{Fallback, Graph, GraphIo, Inputs, ModelOptions, OutputViews, Provider, Source, TensorSpec};
use crate::error::{Error, Result};

/// Plans kept per graph: enough for a full batch and the shorter last one.
const PLANS: usize = 4;

struct TractGraph {
    io: GraphIo,
    /// The graph before shapes are fixed; each plan starts from a copy (weights are shared).
    model: InferenceModel,
    /// Input names in the order tract takes them.
    order: Vec<String>,
    plans: Vec<(Vec<Vec<usize>>, Arc<TypedRunnableModel>)>,
    metadata: Vec<(String, String)>,
}

/// Reads the graph at `src`; tract runs on the CPU only, so any other provider
/// asked for first falls back to it, or fails under [`Fallback::Error`].
pub(super) fn open(src: Source<'_>, file: &str, opts: &ModelOptions) -> Result<(Box<dyn Graph>, Provider)> {
    let provider = cpu_only(opts)?;
    let model_err = |detail: String| Error::Model { path: src.path(), detail };
    let onnx = tract_onnx::onnx();
    let proto = match src {
        Source::File(path) => onnx.proto_model_for_path(path),
        Source::Memory { bytes, .. } => onnx.proto_model_for_read(&mut &bytes[..]),
    }
    .map_err(|e| model_err(format!("not an ONNX model: {e:#}")))?;
    let graph = proto.graph.as_ref().ok_or_else(|| model_err("the ONNX file has no graph".into()))?;
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut inputs = Vec::new();
    for v in graph.input.iter().filter(|v| !initializers.contains(&v.name.as_str())) {
        inputs.push(spec(v).map_err(model_err)?);
    }
    let outputs = graph.output.iter().map(spec).collect::<std::result::Result<Vec<_>, _>>().map_err(model_err)?;
    let metadata = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
    let model = onnx.model_for_proto_model(&proto).map_err(|e| model_err(format!("tract cannot load it: {e:#}")))?;
    let order = model
        .input_outlets()
        .map_err(|e| model_err(format!("{e:#}")))?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let io = GraphIo { file: file.to_string(), inputs, outputs };
    Ok((Box::new(TractGraph { io, model, order, plans: Vec::new(), metadata }), provider))
}

fn cpu_only(opts: &ModelOptions) -> Result<Provider> {
    match opts.providers.first() {
        None | Some(Provider::Cpu) => Ok(Provider::Cpu),
        Some(&p) => {
            let detail = "the tract engine runs on the CPU only".to_string();
            if opts.fallback == Fallback::Error {
                return Err(Error::ProviderUnavailable { provider: p.to_string(), detail });
            }
            log::warn!("execution provider {p} is not usable ({detail}); using the CPU");
            Ok(Provider::Cpu)
        }
    }
}

/// A float tensor's name and shape (free dimensions -1), or why the graph cannot be fed.
fn spec(v: &pb::ValueInfoProto) -> std::result::Result<TensorSpec, String> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(format!("`{}` is not a tensor", v.name));
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(format!("`{}` is not float32 (ONNX element type {})", v.name, t.elem_type));
    }
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(n)) if n > 0 => n,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TensorSpec { name: v.name.clone(), shape })
}

impl TractGraph {
    /// The plan for these input shapes, optimised on first use.
    fn plan(&mut self, shapes: &[Vec<usize>]) -> Result<Arc<TypedRunnableModel>> {
        if let Some((_, plan)) = self.plans.iter().find(|(s, _)| s == shapes) {
            return Ok(plan.clone());
        }
        let failed = |e: tract_onnx::prelude::TractError| Error::Inference {
            detail: format!("tract cannot run {} on inputs of shapes {shapes:?}: {e:#}", self.io.file),
        };
        let mut model = self.model.clone();
        for (i, shape) in shapes.iter().enumerate() {
            model.set_input_fact(i, InferenceFact::dt_shape(f32::datum_type(), shape)).map_err(failed)?;
        }
        let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(failed)?;
        if self.plans.len() == PLANS {
            self.plans.remove(0);
        }
        self.plans.push((shapes.to_vec(), plan.clone()));
        Ok(plan)
    }
}

impl Graph for TractGraph {
    fn io(&self) -> &GraphIo {
        &self.io
    }

    fn run(&mut self, inputs: Inputs, read: &mut dyn FnMut(OutputViews<'_>) -> Result<()>) -> Result<()> {
        let mut ordered = Vec::with_capacity(self.order.len());
        for name in &self.order {
            let Some((_, array)) = inputs.iter().find(|(n, _)| n == name) else {
                let given: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::Inference { detail: format!("input `{name}` missing (given {given:?})") });
            };
            ordered.push(array);
        }
        let shapes: Vec<Vec<usize>> = ordered.iter().map(|a| a.shape().to_vec()).collect();
        let plan = self.plan(&shapes)?;
        let failed = |e: tract_onnx::prelude::TractError| Error::Inference { detail: format!("tract: {e:#}") };
        let mut values = TVec::new();
        for (array, shape) in ordered.iter().zip(&shapes) {
            let data = array.as_standard_layout();
            let slice = data.as_slice().expect("a standard-layout array is contiguous");
            values.push(Tensor::from_shape(shape, slice).map_err(failed)?.into_tvalue());
        }
        let outputs = plan.run(values).map_err(failed)?;
        let mut views = Vec::with_capacity(outputs.len());
        for (spec, value) in self.io.outputs.iter().zip(outputs.iter()) {
            let slice = value.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()).map_err(failed)?;
            let view = ndarray::ArrayViewD::from_shape(value.shape(), slice)
                .map_err(|e| Error::Inference { detail: format!("output `{}`: {e}", spec.name) })?;
            views.push((spec.name.as_str(), view));
        }
        read(views)
    }

    fn metadata(&self, key: &str) -> Option<String> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}
