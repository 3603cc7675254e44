//! Checking what C hands in (pointers, strings, paths) and copying strings out.

use std::ffi::{CStr, c_char};
use std::path::Path;

use crate::status::{Failure, splitsound_status};

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| Failure::new(splitsound_status::InvalidUtf8, format!("`{name}` is not UTF-8: {e}")))
}

/// A NUL-terminated path argument: any bytes on Unix, UTF-8 elsewhere.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_path<'a>(p: *const c_char, name: &str) -> Result<&'a Path, Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        if p.is_null() {
            return Err(Failure::null(name));
        }
        // SAFETY: non-NULL and NUL-terminated by the caller's contract.
        let c = unsafe { CStr::from_ptr(p) };
        Ok(Path::new(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, name) }.map(Path::new)
    }
}

/// An array of `n` strings (`NULL` allowed when `n` is 0).
///
/// # Safety
/// `p` is NULL or points to `n` pointers, each valid for [`arg_str`].
pub(crate) unsafe fn arg_strs(p: *const *const c_char, n: usize, name: &str) -> Result<Vec<String>, Failure> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: `n` pointers by the caller's contract.
    let ptrs = unsafe { std::slice::from_raw_parts(p, n) };
    ptrs.iter()
        .enumerate()
        // SAFETY: each element is a valid string or NULL (reported).
        .map(|(i, &s)| unsafe { arg_str(s, &format!("{name}[{i}]")) }.map(str::to_owned))
        .collect()
}

/// Writes an out-parameter (checked for NULL before any work where possible).
///
/// # Safety
/// `p` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: valid by the caller's contract.
        unsafe { p.write(value) }
    }
}

/// Fails with `NullArgument` when a required out-parameter is NULL.
pub(crate) fn need<T>(p: *mut T, name: &str) -> Result<(), Failure> {
    if p.is_null() { Err(Failure::null(name)) } else { Ok(()) }
}

/// Copies `s` and a NUL into `buf` (`len` bytes) and `s.len()` into `*out_n`.
/// Too small: `BUFFER_TOO_SMALL`, `*out_n` = bytes needed with the NUL, `buf`
/// untouched. Records nothing (for `splitsound_last_error` itself).
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes; `out_n` is NULL or valid.
pub(crate) unsafe fn copy_str_unrecorded(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    let needed = s.len() + 1;
    if buf.is_null() && len > 0 {
        return splitsound_status::NullArgument;
    }
    if len < needed {
        // SAFETY: forwarded contract.
        unsafe { put(out_n, needed) };
        return splitsound_status::BufferTooSmall;
    }
    // SAFETY: `buf` holds at least `needed` bytes; `s` cannot overlap a caller buffer we were handed.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
        put(out_n, s.len());
    }
    splitsound_status::Ok
}

/// [`copy_str_unrecorded`] for entry points: failures carry a message.
///
/// # Safety
/// As [`copy_str_unrecorded`].
pub(crate) unsafe fn copy_str(s: &str, buf: *mut c_char, len: usize, out_n: *mut usize) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    match unsafe { copy_str_unrecorded(s, buf, len, out_n) } {
        splitsound_status::Ok => Ok(()),
        splitsound_status::NullArgument => Err(Failure::null("buf")),
        status => Err(Failure::new(status, format!("a buffer of {len} bytes; {} needed", s.len() + 1))),
    }
}

/// The `index`-th of `items`, or `InvalidArgument` naming the count.
pub(crate) fn nth<'a, T>(items: &'a [T], index: usize, what: &str) -> Result<&'a T, Failure> {
    items
        .get(index)
        .ok_or_else(|| Failure::invalid(format!("{what} index {index} out of range (there are {})", items.len())))
}

/// A `const float *const *` argument of `n` channels of `frames` samples each,
/// checked for NULL and alignment.
///
/// # Safety
/// `p` is NULL or points to `n` pointers, each NULL or valid for `frames` floats.
pub(crate) unsafe fn float_ptrs<'a>(p: *const *const f32, n: usize, name: &str) -> Result<&'a [*const f32], Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: `n` pointers by the caller's contract.
    let ptrs = unsafe { std::slice::from_raw_parts(p, n) };
    for (i, q) in ptrs.iter().enumerate() {
        if q.is_null() {
            return Err(Failure::null(&format!("{name}[{i}]")));
        }
        if !q.is_aligned() {
            return Err(Failure::invalid(format!("`{name}[{i}]` is not aligned for float")));
        }
    }
    Ok(ptrs)
}
