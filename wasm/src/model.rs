//! Neural model packages in the browser: the same package as native (manifest
//! plus ONNX files), read from bytes, run by core's pipelines on tract.

use js_sys::{Array, Float32Array, Function, Object, Reflect, Uint8Array};
use splitsound_core::Separator;
use splitsound_core::model::{Model as CoreModel, NeuralOptions, NeuralSeparator, ndarray};
use wasm_bindgen::prelude::*;

use crate::{Audio, Cancel, Stems, invalid, js_error, run_separator, set};

/// A loaded model package.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Model {
    sep: NeuralSeparator,
}

#[wasm_bindgen]
impl Model {
    /// Loads a package from its manifest (`model.json`'s text) and its ONNX files,
    /// `names[i]` being the name the manifest gives `files[i]`; or, with no
    /// manifest, one ONNX file carrying its own. `options` is JSON of the
    /// native `NeuralOptions` (`{"overlap": 0.5, "shifts": 2}`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        manifest: Option<String>,
        names: Vec<String>,
        files: Array,
        options: Option<String>,
    ) -> Result<Model, JsValue> {
        if names.len() as u32 != files.length() {
            return Err(invalid("files", &format!("{} files, one per name", names.len()), files.length()));
        }
        let mut bytes = Vec::with_capacity(names.len());
        for (i, f) in files.iter().enumerate() {
            let f = f.dyn_into::<Uint8Array>().map_err(|_| invalid("files", "Uint8Arrays", format!("item {i}")))?;
            bytes.push(f.to_vec());
        }
        let opts: NeuralOptions = match options.as_deref() {
            None | Some("") => NeuralOptions::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| invalid("options", "NeuralOptions as JSON", e))?,
        };
        let files: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(bytes.iter().map(Vec::as_slice)).collect();
        let model =
            CoreModel::from_memory(manifest.as_deref().map(str::as_bytes), &files, &opts.model).map_err(js_error)?;
        Ok(Model { sep: NeuralSeparator::from_model(model, opts).map_err(js_error)? })
    }

    /// The package's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.sep.model().manifest().name.clone()
    }

    /// The stems it produces, in order.
    #[wasm_bindgen(getter)]
    pub fn stems(&self) -> Array {
        self.sep.stems().iter().map(|s| JsValue::from(s.as_str())).collect()
    }

    /// The rate it separates at (input at another rate is resampled to it).
    #[wasm_bindgen(getter, js_name = sampleRate)]
    pub fn sample_rate(&self) -> u32 {
        self.sep.model().manifest().sample_rate
    }

    /// Where it computes (`cpu (tract)`).
    #[wasm_bindgen(getter, js_name = runsOn)]
    pub fn runs_on(&self) -> String {
        self.sep.runs_on()
    }

    /// Separates `audio`; `progress(stage, done, total)` is called as it goes.
    pub fn separate(&mut self, audio: &Audio, progress: Option<Function>) -> Result<Stems, JsValue> {
        run_separator(&mut self.sep, audio, progress, None)
    }

    /// [`Model::separate`] that stops with an error whose `code` is
    /// `"cancelled"` once `cancel.cancel()` is called (from the progress function).
    #[wasm_bindgen(js_name = separateCancellable)]
    pub fn separate_cancellable(
        &mut self,
        audio: &Audio,
        progress: Option<Function>,
        cancel: &Cancel,
    ) -> Result<Stems, JsValue> {
        run_separator(&mut self.sep, audio, progress, Some(&cancel.token))
    }

    /// Runs graph `file` (an index into the manifest's files) on named inputs
    /// `{name: {data: Float32Array, dims: number[]}}` and returns its outputs the
    /// same way: the network alone, without the family's pipeline.
    #[wasm_bindgen(js_name = runGraph)]
    pub fn run_graph(&mut self, file: usize, inputs: Object) -> Result<Object, JsValue> {
        let mut named = Vec::new();
        for entry in Object::entries(&inputs).iter() {
            let entry: Array = entry.into();
            let name = entry.get(0).as_string().unwrap_or_default();
            let tensor = entry.get(1);
            let data = Reflect::get(&tensor, &"data".into())?
                .dyn_into::<Float32Array>()
                .map_err(|_| invalid("inputs", "{data: Float32Array, dims: number[]}", &name))?;
            let dims: Vec<usize> = Reflect::get(&tensor, &"dims".into())?
                .dyn_into::<Array>()
                .map_err(|_| invalid("inputs", "{data: Float32Array, dims: number[]}", &name))?
                .iter()
                .map(|d| d.as_f64().filter(|d| *d >= 0.0 && d.fract() == 0.0).map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("inputs", "dimensions as whole numbers", &name))?;
            let array = ndarray_from(&name, data.to_vec(), dims)?;
            named.push((name, array));
        }
        let out = Object::new();
        self.sep
            .model_mut()
            .run_with(file, named, |views| {
                for (name, view) in views {
                    let tensor = Object::new();
                    let data: Vec<f32> = view.iter().copied().collect();
                    set(&tensor, "data", Float32Array::from(data.as_slice()));
                    set(&tensor, "dims", view.shape().iter().map(|&d| JsValue::from(d as f64)).collect::<Array>());
                    set(&out, name, tensor);
                }
                Ok(())
            })
            .map_err(js_error)?;
        Ok(out)
    }
}

fn ndarray_from(name: &str, data: Vec<f32>, dims: Vec<usize>) -> Result<ndarray::ArrayD<f32>, JsValue> {
    let want: usize = dims.iter().product();
    if want != data.len() {
        return Err(invalid(
            "inputs",
            &format!("{want} values for dims {dims:?}"),
            format!("{} in `{name}`", data.len()),
        ));
    }
    ndarray::ArrayD::from_shape_vec(dims, data).map_err(|e| invalid("inputs", "a valid shape", e))
}
