//! C ABI of splitsound. Not built yet (tracked as the C ABI issue): the only
//! entry point so far is the version query, so the crate and its header exist.

use std::ffi::c_char;

/// NUL-terminated version string of the library; static, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn splitsound_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Keeps the link to core so the crate builds against the same version.
pub const CORE_VERSION: &str = splitsound_core::VERSION;
