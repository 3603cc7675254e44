//! The C ABI of splitsound: `include/splitsound.h`, generated from this crate
//! by a pinned cbindgen (`ffi/cbindgen.toml`; `scripts/gen-header.sh`).
//!
//! Every function here only translates: pointers and lengths into slices,
//! C strings into `&str`, core's [`splitsound_core::Error`] into a numbered
//! status plus a per-thread message, and panics into
//! `SPLITSOUND_STATUS_PANIC`. The conventions are written once, in the
//! header's preamble (`cbindgen.toml`) and in `include/README.md`.

// Every entry point has one safety contract, the conventions in the header's preamble.
#![allow(clippy::missing_safety_doc)]

mod audio;
mod handle;
mod models;
mod query;
mod realtime;
mod separator;
mod status;
mod strings;

use std::ffi::c_char;

pub use audio::*;
pub use models::*;
pub use query::*;
pub use realtime::*;
pub use separator::*;
pub use status::{splitsound_last_error, splitsound_status, splitsound_status_name};

/// The library's version (`"0.1.0"`), NUL-terminated; static, never freed.
/// Thread safety: any thread; real-time safe.
#[unsafe(no_mangle)]
pub extern "C" fn splitsound_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::status::{Failure, guard, splitsound_status};

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| -> Result<(), Failure> { panic!("boom") });
        assert_eq!(status, splitsound_status::Panic);
        let mut buf = [0 as std::ffi::c_char; 128];
        let mut n = 0;
        // SAFETY: a 128-byte buffer and a valid out-parameter.
        let s = unsafe { super::splitsound_last_error(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(s, splitsound_status::Ok);
        // SAFETY: NUL-terminated by splitsound_last_error.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert!(msg.contains("boom") && msg.contains("internal error"), "{msg}");
        assert_eq!(n, msg.len());
    }
}
