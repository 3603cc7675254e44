//! The query resolver: a description of a sound to a separator's stems.

use std::ffi::c_char;

use splitsound_core::{QueryMode, QueryResolution};

use crate::handle::{free_handle, get, get_str, give};
use crate::status::{guard, splitsound_status};
use crate::strings::{arg_str, arg_strs, need, nth};

/// Whether the described sound is wanted alone or removed.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum splitsound_query_mode {
    Isolate = 0,
    Remove = 1,
}

/// A resolved description: its target stems, its mode, and notes on fallbacks.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct splitsound_query {
    res: QueryResolution,
}

/// Resolves a description (`"remove the vocals"`, `"just the bass"`,
/// `"karaoke"`) against `stem_count` stem names (a separator's, from
/// `splitsound_separator_stem_name`). Fails with
/// `SPLITSOUND_STATUS_UNRESOLVED_QUERY` when it names none of them.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_resolve(
    query: *const c_char,
    stems: *const *const c_char,
    stem_count: usize,
    out: *mut *mut splitsound_query,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a string or NULL; `stem_count` strings.
        let (q, names) = unsafe { (arg_str(query, "query")?, arg_strs(stems, stem_count, "stems")?) };
        need(out, "out")?;
        let res = splitsound_core::resolve_query(q, &names)?;
        give(splitsound_query { res }, out);
        Ok(())
    })
}

/// Frees a resolved query; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_free(p: *mut splitsound_query) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

/// The mode: one of `splitsound_query_mode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_mode_of(query: *const splitsound_query, out: *mut u32) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe {
        get(query, "query", out, |q| {
            Ok(match q.res.mode {
                QueryMode::Isolate => splitsound_query_mode::Isolate,
                QueryMode::Remove => splitsound_query_mode::Remove,
            } as u32)
        })
    }
}

/// Number of target stems (the stems that make up the described sound).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_target_count(
    query: *const splitsound_query,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(query, "query", out, |q| Ok(q.res.targets.len())) }
}

/// Target stem `index`, in the separator's order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_target(
    query: *const splitsound_query,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(query, "query", buf, len, out_n, |q| Ok(nth(&q.res.targets, index, "target")?.clone())) }
}

/// Number of notes (explanations of fallbacks, `"no piano stem; using other"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_note_count(
    query: *const splitsound_query,
    out: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(query, "query", out, |q| Ok(q.res.notes.len())) }
}

/// Note `index`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_query_note(
    query: *const splitsound_query,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(query, "query", buf, len, out_n, |q| Ok(nth(&q.res.notes, index, "note")?.clone())) }
}
