//! Opening a separator from what a user typed: a built-in's name or a model
//! package's path. The CLI and every language binding go through here, so a
//! name means the same thing everywhere.

use std::path::Path;

use crate::ensemble::{EnsembleAlgorithm, EnsembleSeparator};
use crate::error::{Error, Result};
use crate::model::{NeuralOptions, NeuralSeparator};
use crate::realtime::{RealtimeSeparator, ThreadedOptions};
use crate::separator::Separator;

/// Whether `spec` names a model package (an existing manifest, ONNX file or
/// folder) rather than a built-in. `builtin:…` always names a built-in.
pub fn is_model_package(spec: &str) -> bool {
    !spec.starts_with("builtin:") && Path::new(spec).exists()
}

/// A built-in (`builtin:hpss`, or a bare built-in name) with its defaults, or the
/// model package at the path `spec` loaded with `opts`, or (with the `download`
/// feature) the model installed in the cache under the name `spec`. A name that
/// is none of these fails with [`crate::Error::UnknownSeparator`], listing the
/// built-ins, or with [`crate::Error::ModelNotInstalled`] when a registry lists
/// it (nothing is downloaded here: `registry::ModelCache::pull` does that).
///
/// A JSON file with an `"ensemble"` object ([`EnsembleSpec`]) opens an
/// ensemble of the separators it names (paths relative to the file).
pub fn load_separator(spec: &str, opts: NeuralOptions) -> Result<Box<dyn Separator>> {
    if let Some(e) = EnsembleSpec::read(Path::new(spec))? {
        return load_ensemble(&e.models, e.algorithm, e.weights, opts);
    }
    match package_path(spec)? {
        Some(path) => Ok(Box::new(NeuralSeparator::builder(path).options(opts).build()?)),
        None => crate::builtin::builtin_separator(spec),
    }
}

/// The model package `spec` names: a path that exists, or (with the
/// `download` feature) the name of a model in the cache. `None` for a built-in.
fn package_path(spec: &str) -> Result<Option<std::path::PathBuf>> {
    if is_model_package(spec) {
        return Ok(Some(spec.into()));
    }
    if spec.starts_with("builtin:") || crate::builtin::BUILTIN_NAMES.contains(&spec) {
        return Ok(None);
    }
    #[cfg(feature = "download")]
    return crate::registry::installed_path(spec);
    #[cfg(not(feature = "download"))]
    Ok(None)
}

/// Several separators ([`load_separator`]'s names, each with `opts`) as one
/// [`EnsembleSeparator`].
pub fn load_ensemble(
    specs: &[String],
    algorithm: EnsembleAlgorithm,
    weights: Option<Vec<f64>>,
    opts: NeuralOptions,
) -> Result<Box<dyn Separator>> {
    if specs.len() < 2 {
        return Err(Error::invalid("ensemble", "at least two models", specs.len()));
    }
    if let Some(w) = &weights {
        // Before loading anything.
        crate::ensemble::check_weights(algorithm, w, specs.len())?;
    }
    let members = specs
        .iter()
        .map(|s| {
            if EnsembleSpec::read(Path::new(s))?.is_some() {
                return Err(Error::invalid("ensemble member", "a model or a built-in", format!("the ensemble {s}")));
            }
            load_separator(s, opts.clone())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(EnsembleSeparator::new(members, algorithm, weights)?))
}

/// An ensemble saved as a file: `{"ensemble": {"models": ["a/model.json",
/// "builtin:center"], "algorithm": "avg_fft", "weights": [2, 1]}}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// Model packages (relative to the file) or built-ins.
    pub models: Vec<String>,
    #[serde(default)]
    pub algorithm: EnsembleAlgorithm,
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
}

impl EnsembleSpec {
    /// The ensemble in the JSON file at `path`; `None` when it is not a JSON
    /// file with an `"ensemble"` object (a model manifest, an ONNX file, a name).
    pub fn read(path: &Path) -> Result<Option<Self>> {
        if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        #[derive(serde::Deserialize)]
        struct Probe {
            ensemble: Option<serde_json::Value>,
        }
        // A manifest is not an ensemble; malformed JSON is the manifest loader's to report.
        let Ok(Probe { ensemble: Some(v) }) = serde_json::from_slice::<Probe>(&bytes) else {
            return Ok(None);
        };
        let mut e: Self = serde_json::from_value(v)
            .map_err(|e| Error::Model { path: path.to_path_buf(), detail: format!("ensemble: {e}") })?;
        // Relative to the file: every entry but a built-in's name.
        let dir = path.parent().unwrap_or(Path::new("."));
        for m in &mut e.models {
            let builtin = m.starts_with("builtin:") || crate::builtin::BUILTIN_NAMES.contains(&m.as_str());
            if !builtin && Path::new(m).is_relative() {
                *m = dir.join(&m).to_string_lossy().into_owned();
            }
        }
        Ok(Some(e))
    }
}

impl RealtimeSeparator {
    /// [`load_separator`] for real time: `hpss` and `center` run frame by frame,
    /// a model package on a worker thread ([`RealtimeSeparator::threaded`]) with `rt`.
    pub fn load(spec: &str, opts: NeuralOptions, rt: ThreadedOptions) -> Result<Self> {
        if EnsembleSpec::read(Path::new(spec))?.is_some() {
            return Err(Error::Unsupported {
                what: "an ensemble in real time (it runs every model over the whole input)".into(),
                suggestion: Some("run one of its models in real time".into()),
            });
        }
        match package_path(spec)? {
            Some(path) => Self::threaded(Box::new(NeuralSeparator::builder(path).options(opts).build()?), rt),
            None => Self::builtin(spec),
        }
    }
}
