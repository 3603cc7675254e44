//! Opening a separator from what a user typed: a built-in's name or a model
//! package's path. The CLI and every language binding go through here, so a
//! name means the same thing everywhere.

use std::path::Path;

use crate::error::Result;
use crate::model::{NeuralOptions, NeuralSeparator};
use crate::realtime::{RealtimeSeparator, ThreadedOptions};
use crate::separator::Separator;

/// Whether `spec` names a model package (an existing manifest, ONNX file or
/// folder) rather than a built-in. `builtin:…` always names a built-in.
pub fn is_model_package(spec: &str) -> bool {
    !spec.starts_with("builtin:") && Path::new(spec).exists()
}

/// A built-in (`builtin:hpss`, or a bare built-in name) with its defaults, or the
/// model package at the path `spec` loaded with `opts`. A name that is neither
/// fails with [`crate::Error::UnknownSeparator`], listing the built-ins.
pub fn load_separator(spec: &str, opts: NeuralOptions) -> Result<Box<dyn Separator>> {
    if is_model_package(spec) {
        Ok(Box::new(NeuralSeparator::load(spec, opts)?))
    } else {
        crate::builtin::builtin_separator(spec)
    }
}

impl RealtimeSeparator {
    /// [`load_separator`] for real time: `hpss` and `center` run frame by frame,
    /// a model package on a worker thread ([`RealtimeSeparator::threaded`]) with `rt`.
    pub fn load(spec: &str, opts: NeuralOptions, rt: ThreadedOptions) -> Result<Self> {
        if is_model_package(spec) {
            Self::threaded(Box::new(NeuralSeparator::load(spec, opts)?), rt)
        } else {
            Self::builtin(spec)
        }
    }
}
