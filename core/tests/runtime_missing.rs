//! Loading ONNX Runtime from a path that is not a library: a typed error that
//! lists what was tried, or a fall-through to the next candidate; never a panic.
//! (Its own test binary: ONNX Runtime can be loaded once per process.)
#![cfg(feature = "onnx")]

mod common;
use splitsound_core::Error;
use splitsound_core::model::{runtime, runtime_candidates};

#[test]
fn a_bogus_library_is_reported_or_skipped() {
    let dir = common::scratch("runtime_missing");
    let bogus = dir.join("libonnxruntime.so");
    std::fs::write(&bogus, b"this is not a shared library").unwrap();
    let candidates = runtime_candidates(Some(&bogus));
    assert_eq!(candidates[0].1, bogus);
    assert_eq!(candidates[0].0, "explicit");
    // A library does not start `python3` unless the program opts in.
    if std::env::var_os("SPLITSOUND_ORT_PYTHON").is_none() {
        assert!(!candidates.iter().any(|(s, _)| s.starts_with("python")), "{candidates:?}");
    }
    match runtime(Some(&bogus)) {
        Ok(rt) => assert_ne!(rt.library, bogus, "loaded a file that is not a library"),
        Err(Error::RuntimeUnavailable { tried, .. }) => {
            assert!(tried[0].contains("libonnxruntime.so"), "{tried:?}");
            let msg = runtime(Some(&bogus)).unwrap_err().to_string();
            assert!(msg.contains("pip install onnxruntime"), "{msg}");
        }
        Err(e) => panic!("{e:?}"),
    }
}
