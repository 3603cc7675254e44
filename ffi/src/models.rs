//! Models by name: pull into the cache (progress callback, cancel flag), the
//! installed path, remove, verify, and the listing as JSON.
//!
//! The cache is `$SPLITSOUND_MODELS`, else the platform's cache folder. A
//! `registries` argument is NULL or registries (files or URLs) separated by
//! whitespace, consulted after the compiled-in one and `$SPLITSOUND_REGISTRY`.

use std::ffi::{c_char, c_void};

use splitsound_core::registry::{self, ModelCache, Registry};

use crate::handle::handle;
use crate::separator::splitsound_cancel;
use crate::status::{Failure, guard, splitsound_status};
use crate::strings::{arg_str, copy_str, put};

/// Called while a model downloads: `done` of `total` bytes of all its files.
/// Calls come from the calling thread; to stop, call
/// `splitsound_cancel_request` on the flag given to the pull.
#[allow(non_camel_case_types)]
pub type splitsound_pull_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, done: u64, total: u64)>;

fn cache() -> Result<ModelCache, Failure> {
    Ok(ModelCache::from_env()?)
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn load_registries(p: *const c_char) -> Result<Registry, Failure> {
    let sources: Vec<String> = if p.is_null() {
        Vec::new()
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, "registries") }?.split_whitespace().map(str::to_string).collect()
    };
    Ok(Registry::load(&sources)?)
}

/// Fetches `model` (a name, or the URL of a file a registry lists) into the
/// cache: resumes an interrupted download, checks every file's SHA-256 before
/// installing (`SPLITSOUND_STATUS_CHECKSUM` otherwise, with nothing
/// installed), and returns at once when it is installed already. Then
/// `splitsound_model_path` gives the path that opens it. `registries`,
/// `progress`, `userdata` and `cancel` may be NULL; a cancelled pull returns
/// `SPLITSOUND_STATUS_CANCELLED` and the next one resumes it.
///
/// Thread safety: any thread; pulls of one model in several threads or
/// processes fetch it once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_model_pull(
    model: *const c_char,
    registries: *const c_char,
    progress: splitsound_pull_callback,
    userdata: *mut c_void,
    cancel: *const splitsound_cancel,
) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller's strings and handle.
        let (target, reg) = unsafe { (arg_str(model, "model")?, load_registries(registries)?) };
        let entry = reg.lookup(target)?;
        let token = if cancel.is_null() {
            splitsound_core::CancelToken::new()
        } else {
            // SAFETY: a live handle.
            unsafe { handle(cancel, "cancel") }?.token().clone()
        };
        let mut report = |p: &registry::PullProgress| {
            if let Some(f) = progress {
                // SAFETY: the caller's callback and userdata, called on this thread.
                unsafe { f(userdata, p.done, p.total) }
            }
        };
        cache()?.pull(entry, &mut report, &token)?;
        Ok(())
    })
}

/// Copies the path that opens the installed model `name` into `buf` (string
/// convention). `SPLITSOUND_STATUS_MODEL_NOT_INSTALLED` when a registry lists
/// it but the cache lacks it (the last error names its URLs),
/// `SPLITSOUND_STATUS_UNKNOWN_MODEL` when none does. Never uses the network.
/// `splitsound_separator_new` also takes an installed model's name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_model_path(
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller's string.
        let name = unsafe { arg_str(name, "name") }?;
        let path = cache()?.resolve(name, &Registry::load_local(&[])?)?;
        // SAFETY: the caller's buffer.
        unsafe { copy_str(&path.to_string_lossy(), buf, len, out_n) }
    })
}

/// Removes model `name` from the cache; `*out_removed` (may be NULL) says
/// whether it was there.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_model_remove(name: *const c_char, out_removed: *mut bool) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller's string.
        let name = unsafe { arg_str(name, "name") }?;
        let removed = cache()?.remove(name)?;
        if !out_removed.is_null() {
            // SAFETY: non-NULL, valid by contract.
            unsafe { put(out_removed, removed) };
        }
        Ok(())
    })
}

/// Checks every cached file of model `name` against its size and SHA-256:
/// `SPLITSOUND_STATUS_OK` when all match, `SPLITSOUND_STATUS_CHECKSUM` when
/// one is missing or different (the last error lists them, as JSON).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_model_verify(name: *const c_char) -> splitsound_status {
    guard(|| {
        // SAFETY: the caller's string.
        let name = unsafe { arg_str(name, "name") }?;
        let bad: Vec<_> = cache()?.verify(name)?.into_iter().filter(|c| !c.is_ok()).collect();
        if bad.is_empty() {
            return Ok(());
        }
        let list = serde_json::to_string(&bad).expect("checks serialise");
        Err(Failure::new(splitsound_status::Checksum, format!("model `{name}` is damaged: {list}")))
    })
}

/// Copies the models as a JSON array into `buf` (string convention): those
/// the registries list, or only the installed ones when `installed_only`;
/// each with name, family, stems, description, license, sdr, files, size,
/// installed, path.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_model_list_json(
    registries: *const c_char,
    installed_only: bool,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    guard(|| {
        let reg = if installed_only {
            None
        } else {
            // SAFETY: the caller's string.
            Some(unsafe { load_registries(registries) }?)
        };
        let rows = registry::list(&cache()?, reg.as_ref())?;
        let json = serde_json::to_string(&rows).expect("listings serialise");
        // SAFETY: the caller's buffer.
        unsafe { copy_str(&json, buf, len, out_n) }
    })
}
