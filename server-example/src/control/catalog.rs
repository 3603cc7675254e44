//! The separators jobs may name: the built-ins and the configured model
//! packages, with their stems, read from each package's manifest (or a named
//! model's registry entry) so that the API needs no ONNX Runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::error::StartupError;

#[derive(Debug, Clone)]
pub struct Catalog {
    /// Separator name → its stems.
    pub models: BTreeMap<String, Vec<String>>,
    /// The text-prompted ones among them (SAM-Audio): a description is their input.
    pub text_models: BTreeSet<String>,
    /// What a job that names no separator gets.
    pub default_separator: String,
    /// The text-prompted model for descriptions that name no stem of the job's model.
    pub text_model: Option<String>,
}

impl Catalog {
    /// The built-ins, the packages of `models` (name → path; their stems from
    /// their manifests) and `named` (name → stems, from the registry; their
    /// paths are in `models` too).
    pub fn build(
        models: &BTreeMap<String, PathBuf>,
        named: BTreeMap<String, Vec<String>>,
        default_separator: &str,
        text_model: Option<&str>,
    ) -> Result<Catalog, StartupError> {
        let mut out = BTreeMap::new();
        for name in splitsound_core::builtin::BUILTIN_NAMES {
            let spec = format!("builtin:{name}");
            let sep = splitsound_core::load_separator(&spec, Default::default())
                .map_err(|e| StartupError::Config(e.to_string()))?;
            out.insert(spec, sep.stems().to_vec());
        }
        for (name, path) in models.iter().filter(|(n, _)| !named.contains_key(*n)) {
            let manifest_path = splitsound_core::model::manifest_path(path);
            let manifest = splitsound_core::model::Manifest::from_file(&manifest_path)
                .map_err(|e| StartupError::Config(format!("worker.models.{name}: {e}")))?;
            out.insert(name.clone(), manifest.stems.clone());
        }
        out.extend(named);
        if !out.contains_key(default_separator) {
            return Err(StartupError::Config(format!(
                "worker.default_separator {default_separator:?} is neither a built-in nor a configured model"
            )));
        }
        let mut text_models = BTreeSet::new();
        for (name, path) in models {
            if splitsound_core::model::is_text_prompted(path)
                .map_err(|e| StartupError::Config(format!("worker.models.{name}: {e}")))?
            {
                text_models.insert(name.clone());
            }
        }
        if let Some(t) = text_model
            && !text_models.contains(t)
        {
            return Err(StartupError::Config(format!(
                "worker.text_model {t:?} is not a configured text-prompted model (a SAM-Audio package in \
                 worker.models or worker.named_models)"
            )));
        }
        Ok(Catalog {
            models: out,
            text_models,
            default_separator: default_separator.to_string(),
            text_model: text_model.map(str::to_string),
        })
    }
}
