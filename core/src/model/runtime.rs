//! Finding and loading the ONNX Runtime shared library.
//!
//! Order: an explicit path → `SPLITSOUND_ORT_LIB` → `ORT_DYLIB_PATH` → the
//! `onnxruntime` (or `onnxruntime-gpu`) Python package, asked of `python3`,
//! when the program opts in ([`allow_python_probe`]; `SPLITSOUND_ORT_PYTHON=1`)
//! → the system's library names (found through the loader's search path). The
//! first that loads and is new enough (ONNX Runtime ≥ 1.31) wins, for the whole
//! process: ONNX Runtime can be loaded once.
//!
//! The probe starts a `python3` process, which a library inside a plugin host
//! or a server should not do unasked: the `splitsound` command opts in, the
//! Python package finds the wheel in its own interpreter and passes the path,
//! and everything else names the library or relies on the system's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The loaded runtime.
#[derive(Debug)]
pub struct Runtime {
    /// The library file that was loaded.
    pub library: PathBuf,
    /// Where that path came from (`explicit`, `SPLITSOUND_ORT_LIB`, `python`, …).
    pub source: &'static str,
    pub(crate) environment: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

#[cfg(target_os = "windows")]
const SYSTEM_NAMES: &[&str] = &["onnxruntime.dll"];
#[cfg(target_os = "macos")]
const SYSTEM_NAMES: &[&str] = &["libonnxruntime.dylib"];
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const SYSTEM_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.so.1"];

/// Loads ONNX Runtime (once per process) and returns it. `explicit` is tried
/// first; once a runtime is loaded, later calls return it whatever they pass.
pub fn runtime(explicit: Option<&Path>) -> Result<&'static Runtime> {
    if let Some(r) = RUNTIME.get() {
        return Ok(r);
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = RUNTIME.get() {
        return Ok(r);
    }
    let mut tried = Vec::new();
    let mut last = String::from("no candidate library was found");
    for (source, path) in candidates(explicit) {
        match ort::init_from(&path) {
            Ok(builder) => match builder.with_name("splitsound").build() {
                Ok(environment) => {
                    let r = Runtime { library: path, source, environment };
                    return Ok(RUNTIME.get_or_init(|| r));
                }
                Err(e) => {
                    last = e.to_string();
                    tried.push(format!("{} ({source}): {e}", path.display()));
                }
            },
            Err(e) => {
                last = e.to_string();
                tried.push(format!("{} ({source}): {e}", path.display()));
            }
        }
    }
    Err(Error::RuntimeUnavailable { tried, detail: last })
}

static PYTHON_PROBE: AtomicBool = AtomicBool::new(false);

/// Lets [`runtime`] ask `python3` where the `onnxruntime` package's library is
/// (a subprocess); off unless a program turns it on or `SPLITSOUND_ORT_PYTHON=1`.
pub fn allow_python_probe(on: bool) {
    PYTHON_PROBE.store(on, Ordering::Relaxed);
}

fn python_probe_allowed() -> bool {
    PYTHON_PROBE.load(Ordering::Relaxed) || std::env::var("SPLITSOUND_ORT_PYTHON").is_ok_and(|v| v == "1")
}

/// The library paths to try, in order, with where each came from.
pub fn candidates(explicit: Option<&Path>) -> Vec<(&'static str, PathBuf)> {
    let mut out: Vec<(&'static str, PathBuf)> = Vec::new();
    if let Some(p) = explicit {
        out.push(("explicit", p.to_path_buf()));
    }
    for var in ["SPLITSOUND_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            out.push((if var == "SPLITSOUND_ORT_LIB" { "SPLITSOUND_ORT_LIB" } else { "ORT_DYLIB_PATH" }, v.into()));
        }
    }
    if python_probe_allowed()
        && let Some(p) = python_package_library()
    {
        out.push(("python onnxruntime package", p));
    }
    out.extend(SYSTEM_NAMES.iter().map(|n| ("system", PathBuf::from(n))));
    out
}

/// `onnxruntime/capi/libonnxruntime.*` of the Python package, if `python3` has one.
fn python_package_library() -> Option<PathBuf> {
    let python = if cfg!(windows) { "python" } else { "python3" };
    let out = Command::new(python)
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    package_library(Path::new(String::from_utf8(out.stdout).ok()?.trim()))
}

/// The runtime library inside an `onnxruntime` Python package folder (the one
/// holding its `__init__.py`): `capi/libonnxruntime.*`, not its provider libraries.
pub fn package_library(package_dir: &Path) -> Option<PathBuf> {
    let dir = package_dir.join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name.starts_with("libonnxruntime.so")
                || name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
                || name == "onnxruntime.dll")
                && !name.contains("providers")
        })
        .collect();
    libs.sort();
    libs.pop()
}
