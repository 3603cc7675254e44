//! The C ABI's model calls over a registry served from 127.0.0.1: a pull with
//! a progress callback, a cancel flag set from it, the resumed pull, the path,
//! a separator by name, verify after damage, remove.

#[path = "../../core/tests/support/http.rs"]
mod http;

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use splitsound::*;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_error() -> String {
    let mut buf = [0 as c_char; 2048];
    // SAFETY: a buffer of its length.
    unsafe { splitsound_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) };
    // SAFETY: NUL-terminated by the call.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

struct Seen {
    calls: Vec<(u64, u64)>,
    cancel_after: Option<u64>,
    cancel: *mut splitsound_cancel,
}

unsafe extern "C" fn on_progress(userdata: *mut c_void, done: u64, total: u64) {
    // SAFETY: the test passes a live `Seen`.
    let seen = unsafe { &mut *(userdata as *mut Seen) };
    seen.calls.push((done, total));
    if seen.cancel_after.is_some_and(|n| done > n) {
        // SAFETY: a live flag.
        unsafe { splitsound_cancel_request(seen.cancel) };
    }
}

#[test]
fn pull_with_progress_and_cancel_then_use_by_name() {
    let srv = http::Server::start();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/neural/demucs");
    let files: Vec<_> = ["ci.json", "ci.onnx"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(data.join(f)).unwrap();
            let (size, sha) = (bytes.len(), hex::encode(Sha256::digest(&bytes)));
            serde_json::json!({"url": srv.put(&format!("demucs-c/{f}"), bytes), "size": size, "sha256": sha})
        })
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi-models");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let doc = serde_json::json!({"registry_version": 1, "models": [{"name": "demucs-c", "family": "demucs-hybrid",
        "stems": ["drums", "bass", "other", "vocals"], "license": "MIT", "files": files, "load": "ci.json"}]});
    let reg = dir.join("registry.json");
    std::fs::write(&reg, doc.to_string()).unwrap();
    // SAFETY: the only test in this binary that touches the environment.
    unsafe { std::env::set_var("SPLITSOUND_MODELS", dir.join("cache")) };
    let (name, reg) = (c("demucs-c"), c(reg.to_str().unwrap()));

    unsafe {
        // Listed, not installed.
        let mut buf = [0 as c_char; 1024];
        let mut n = 0usize;
        assert_eq!(
            splitsound_model_path(name.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut n),
            splitsound_status::UnknownModel,
            "the registry is given to pulls, not to model_path: {}",
            last_error()
        );

        // Cancelled from the progress callback, then resumed.
        let mut cancel = std::ptr::null_mut();
        assert_eq!(splitsound_cancel_new(&mut cancel), splitsound_status::Ok);
        let mut seen = Seen { calls: Vec::new(), cancel_after: Some(300_000), cancel };
        let s = splitsound_model_pull(
            name.as_ptr(),
            reg.as_ptr(),
            Some(on_progress),
            (&mut seen as *mut Seen).cast(),
            cancel,
        );
        assert_eq!(s, splitsound_status::Cancelled, "{}", last_error());
        splitsound_cancel_free(cancel);
        let mut seen = Seen { calls: Vec::new(), cancel_after: None, cancel: std::ptr::null_mut() };
        let s = splitsound_model_pull(
            name.as_ptr(),
            reg.as_ptr(),
            Some(on_progress),
            (&mut seen as *mut Seen).cast(),
            std::ptr::null(),
        );
        assert_eq!(s, splitsound_status::Ok, "{}", last_error());
        let (done, total) = *seen.calls.last().unwrap();
        assert_eq!(done, total);
        assert!(seen.calls[0].0 > 300_000, "resumed, not restarted: {:?}", &seen.calls[..3]);
        let ranges = srv.requests("demucs-c/ci.onnx");
        assert_eq!(ranges.len(), 2);
        assert!(ranges[1].starts_with("bytes="), "{ranges:?}");

        // The path, and a separator by name.
        assert_eq!(splitsound_model_path(name.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut n), splitsound_status::Ok);
        let path = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_string();
        assert!(path.ends_with("demucs-c/ci.json"), "{path}");
        let mut sep = std::ptr::null_mut();
        assert_eq!(
            splitsound_separator_new(name.as_ptr(), std::ptr::null(), &mut sep),
            splitsound_status::Ok,
            "{}",
            last_error()
        );
        let mut count = 0usize;
        assert_eq!(splitsound_separator_stem_count(sep, &mut count), splitsound_status::Ok);
        assert_eq!(count, 4);
        splitsound_separator_free(sep);

        // Verify, damage, verify, remove.
        assert_eq!(splitsound_model_verify(name.as_ptr()), splitsound_status::Ok);
        let onnx = PathBuf::from(&path).with_file_name("ci.onnx");
        std::fs::write(&onnx, b"short").unwrap();
        assert_eq!(splitsound_model_verify(name.as_ptr()), splitsound_status::Checksum);
        assert!(last_error().contains("wrong_size"), "{}", last_error());
        let mut removed = false;
        assert_eq!(splitsound_model_remove(name.as_ptr(), &mut removed), splitsound_status::Ok);
        assert!(removed);
        let mut json = [0 as c_char; 64];
        assert_eq!(
            splitsound_model_list_json(std::ptr::null(), true, json.as_mut_ptr(), json.len(), &mut n),
            splitsound_status::Ok
        );
        assert_eq!(CStr::from_ptr(json.as_ptr()).to_str().unwrap(), "[]");
    }
    unsafe { std::env::remove_var("SPLITSOUND_MODELS") };
}
