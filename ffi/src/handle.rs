//! Opaque handles: making, freeing and borrowing them, and the common bodies
//! of the constructors, getters and setters built on them.

use std::ffi::c_char;

use crate::status::{Failure, guard, guard_void, splitsound_status};
use crate::strings::{copy_str, need, put};

/// Stores a new handle in `*out`.
pub(crate) fn give<T>(value: T, out: *mut *mut T) {
    // SAFETY: every caller checked `out` non-NULL.
    unsafe { put(out, Box::into_raw(Box::new(value))) }
}

/// Frees a handle made by [`give`]; NULL is a no-op. (cbindgen cannot see
/// functions made by macros, so each `_free` is written out and calls this.)
///
/// # Safety
/// `p` is NULL or came from [`give`] for this `T` and is freed once.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: forwarded contract.
        guard_void(|| drop(unsafe { Box::from_raw(p) }));
    }
}

/// A `_new` with the type's defaults.
pub(crate) fn new_default<T: Default>(out: *mut *mut T) -> splitsound_status {
    guard(|| {
        need(out, "out")?;
        give(T::default(), out);
        Ok(())
    })
}

/// A handle argument for reading.
///
/// # Safety
/// `p` is NULL or a live handle of this type.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: a live handle by the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// A handle argument for changing.
///
/// # Safety
/// `p` is NULL or a live handle of this type, used by no other thread now.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: a live, unshared handle by the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Runs `f` on a live, unshared handle: the body of a setter.
pub(crate) fn with_mut<H>(h: *mut H, name: &str, f: impl FnOnce(&mut H) -> Result<(), Failure>) -> splitsound_status {
    // SAFETY: a live handle or NULL, used by this thread only, by the type's contract.
    guard(|| f(unsafe { handle_mut(h, name) }?))
}

/// The body of a getter: `f` reads a value from the live handle `h` into `*out`.
///
/// # Safety
/// `h` is NULL or a live handle of type `H`; `out` is NULL or valid for a write.
pub(crate) unsafe fn get<H, T>(
    h: *const H,
    name: &str,
    out: *mut T,
    f: impl FnOnce(&H) -> Result<T, Failure>,
) -> splitsound_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(h, name) }?;
        need(out, "out")?;
        let value = f(h)?;
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { put(out, value) };
        Ok(())
    })
}

/// The body of a string getter: `f` picks a string of the live handle `h`,
/// copied out by the string convention.
///
/// # Safety
/// `h` is NULL or a live handle of type `H`; `buf`, `len` and `out_n` as for [`copy_str`].
pub(crate) unsafe fn get_str<H>(
    h: *const H,
    name: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
    f: impl FnOnce(&H) -> Result<String, Failure>,
) -> splitsound_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let s = f(unsafe { handle(h, name) }?)?;
        // SAFETY: forwarded contract.
        unsafe { copy_str(&s, buf, len, out_n) }
    })
}
