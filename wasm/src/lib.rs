//! Placeholder: this binding is not built yet (see the project's open issues).
//! It only re-exports core's version so the workspace layout is in place.

pub const CORE_VERSION: &str = splitsound_core::VERSION;
