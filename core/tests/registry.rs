//! Models by name: a registry served from 127.0.0.1, pulled into a fresh cache
//! (random-weight packages), resumed after cuts, refused on a checksum
//! mismatch, pulled twice at once, missed offline, removed and verified.
#![cfg(all(feature = "download", feature = "onnx"))]

mod common;
#[path = "support/http.rs"]
mod http;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use http::{Behaviour, Server};
use sha2::{Digest, Sha256};
use splitsound_core::registry::{Entry, FileCheck, ModelCache, PullProgress, Registry};
use splitsound_core::{CancelToken, Error, SeparateOptions, load_separator};

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A fresh, empty cache for one test.
fn cache(test: &str) -> ModelCache {
    ModelCache::new(scratch(&format!("registry-{test}")).join("models"))
}

/// The random-weight HT-Demucs CI package (a manifest and a 1.9 MB graph)
/// served under `/name/`, and a registry that lists it.
fn serve_package(srv: &Server, name: &str) -> (Registry, Vec<u8>) {
    let dir = repo_root().join("core/tests/data/neural/demucs");
    let onnx = std::fs::read(dir.join("ci.onnx")).unwrap();
    let json = std::fs::read(dir.join("ci.json")).unwrap();
    let files = [("ci.json", json), ("ci.onnx", onnx.clone())]
        .into_iter()
        .map(|(file, bytes)| {
            let (size, sha256) = (bytes.len(), sha(&bytes));
            let url = srv.put(&format!("{name}/{file}"), bytes);
            serde_json::json!({"url": url, "size": size, "sha256": sha256})
        })
        .collect::<Vec<_>>();
    let doc = serde_json::json!({"registry_version": 1, "models": [{
        "name": name, "family": "demucs-hybrid", "stems": ["drums", "bass", "other", "vocals"],
        "license": "MIT", "description": "random weights", "files": files, "load": "ci.json"}]});
    let mut r = Registry::default();
    r.add_json(doc.to_string().as_bytes(), "test").unwrap();
    (r, onnx)
}

fn quiet(_: &PullProgress) {}

#[test]
fn pull_installs_a_package_that_separates_like_the_original() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-test");
    let cache = cache("pull_installs_a_package_that_separates_like_the_original");
    let entry = reg.entry("pkg-test").unwrap();
    let mut seen = Vec::new();
    let m = cache.pull(entry, &mut |p: &PullProgress| seen.push(p.clone()), &CancelToken::new()).unwrap();
    let total: u64 = entry.files.iter().map(|f| f.size).sum();
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((total, total)));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(cache.installed().unwrap(), vec![m.clone()]);
    assert!(cache.verify("pkg-test").unwrap().iter().all(FileCheck::is_ok));
    assert_eq!(cache.resolve("pkg-test", &reg).unwrap(), m.load_path());

    // A second pull of the same entry touches nothing.
    cache.pull(entry, &mut quiet, &CancelToken::new()).unwrap();
    assert_eq!(srv.requests("pkg-test/ci.onnx").len(), 1);

    // The cached package separates exactly as the one in the repository.
    let input =
        splitsound_core::AudioBuffer::new(44100, vec![noise(3 * 44100, 1, 0.5), noise(3 * 44100, 2, 0.5)]).unwrap();
    let opts = splitsound_core::model::NeuralOptions::default();
    let path = m.load_path().to_string_lossy().into_owned();
    let ours = load_separator(&path, opts.clone()).unwrap().separate(&input, &SeparateOptions::default()).unwrap();
    let orig = repo_root().join("core/tests/data/neural/demucs/ci.json");
    let want =
        load_separator(orig.to_str().unwrap(), opts).unwrap().separate(&input, &SeparateOptions::default()).unwrap();
    assert_eq!(ours, want);
}

#[test]
fn a_cut_download_resumes_with_range() {
    let srv = Server::start();
    let (reg, onnx) = serve_package(&srv, "pkg-cut");
    let half = onnx.len() as u64 / 2;
    srv.behave("pkg-cut/ci.onnx", Behaviour { cut_after: Some(half), cuts: 1, ..Behaviour::default() });
    let cache = cache("a_cut_download_resumes_with_range");
    cache.pull(reg.entry("pkg-cut").unwrap(), &mut quiet, &CancelToken::new()).unwrap();
    assert_eq!(srv.requests("pkg-cut/ci.onnx"), ["".to_string(), format!("bytes={half}-")]);
    assert!(cache.verify("pkg-cut").unwrap().iter().all(FileCheck::is_ok));
}

#[test]
fn a_cancelled_pull_resumes_in_the_next_one() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-cancel");
    let cache = cache("a_cancelled_pull_resumes_in_the_next_one");
    let entry = reg.entry("pkg-cancel").unwrap();
    let cancel = CancelToken::new();
    let json_size = entry.files[0].size;
    // Cancel once the second file has begun.
    let e = cache
        .pull(
            entry,
            &mut |p: &PullProgress| {
                if p.done > json_size + 100_000 {
                    cancel.cancel()
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(cache.get("pkg-cancel").unwrap().is_none());
    cache.pull(entry, &mut quiet, &CancelToken::new()).unwrap();
    let reqs = srv.requests("pkg-cancel/ci.onnx");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].starts_with("bytes=") && reqs[1] != "bytes=0-", "{reqs:?}");
    // The manifest, finished before the cancel, is not fetched again.
    assert_eq!(srv.requests("pkg-cancel/ci.json").len(), 1);
    assert!(cache.verify("pkg-cancel").unwrap().iter().all(FileCheck::is_ok));
}

#[test]
fn a_server_that_ignores_range_still_gives_the_right_file() {
    let srv = Server::start();
    let (reg, onnx) = serve_package(&srv, "pkg-norange");
    let b = Behaviour { cut_after: Some(onnx.len() as u64 / 3), cuts: 1, ignore_range: true, ..Behaviour::default() };
    srv.behave("pkg-norange/ci.onnx", b);
    let cache = cache("a_server_that_ignores_range_still_gives_the_right_file");
    cache.pull(reg.entry("pkg-norange").unwrap(), &mut quiet, &CancelToken::new()).unwrap();
    assert!(cache.verify("pkg-norange").unwrap().iter().all(FileCheck::is_ok));
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-bad");
    let mut entry = reg.entry("pkg-bad").unwrap().clone();
    entry.files[1].sha256 = sha(b"something else");
    let cache = cache("a_checksum_mismatch_installs_nothing");
    let e = cache.pull(&entry, &mut quiet, &CancelToken::new()).unwrap_err();
    let Error::Checksum { url, expected, actual } = &e else { panic!("{e}") };
    assert!(url.ends_with("pkg-bad/ci.onnx"));
    assert_eq!(expected, &entry.files[1].sha256);
    assert_eq!(actual, &reg.entry("pkg-bad").unwrap().files[1].sha256);
    assert!(e.to_string().contains("nothing was installed"), "{e}");
    assert!(cache.get("pkg-bad").unwrap().is_none());
    assert!(!cache.root().join("pkg-bad").exists());
    assert!(cache.installed().unwrap().is_empty());
    // The bad download is not kept to be resumed.
    let parts = walk(&cache.root().join(".partial"));
    assert!(parts.iter().all(|p| !p.to_string_lossy().ends_with(".part")), "{parts:?}");
}

#[test]
fn a_body_longer_than_the_registry_says_is_refused() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-long");
    let mut entry = reg.entry("pkg-long").unwrap().clone();
    entry.files[1].size -= 10;
    let cache = cache("a_body_longer_than_the_registry_says_is_refused");
    let e = cache.pull(&entry, &mut quiet, &CancelToken::new()).unwrap_err();
    assert!(matches!(e, Error::Download { .. }) && e.to_string().contains("the registry says"), "{e}");
    assert!(cache.get("pkg-long").unwrap().is_none());
}

/// A server whose file is shorter than the registry says (or a page served in
/// its place) stops the pull at once, instead of fetching it again and again.
#[test]
fn a_file_of_another_size_stops_at_once() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-short");
    let mut entry = reg.entry("pkg-short").unwrap().clone();
    entry.files[1].size += 10;
    let cache = cache("a_file_of_another_size_stops_at_once");
    let e = cache.pull(&entry, &mut quiet, &CancelToken::new()).unwrap_err();
    assert!(matches!(e, Error::Download { .. }) && e.to_string().contains("the registry says"), "{e}");
    assert_eq!(srv.requests("pkg-short/ci.onnx").len(), 1);
    // Also when what is kept is already a prefix: the 416's stated length says so.
    let part = cache.root().join(".partial/pkg-short");
    std::fs::create_dir_all(&part).unwrap();
    let onnx = std::fs::read(repo_root().join("core/tests/data/neural/demucs/ci.onnx")).unwrap();
    std::fs::write(part.join(format!("ci.onnx.{}.part", &entry.files[1].sha256[..16])), &onnx).unwrap();
    let e = cache.pull(&entry, &mut quiet, &CancelToken::new()).unwrap_err();
    assert!(e.to_string().contains("the registry says"), "{e}");
    assert_eq!(srv.requests("pkg-short/ci.onnx").len(), 2);
}

#[test]
fn a_missing_file_is_a_download_error_naming_the_url() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-404");
    let mut entry = reg.entry("pkg-404").unwrap().clone();
    entry.files[1].url = format!("{}/nowhere.onnx", srv.base);
    let cache = cache("a_missing_file_is_a_download_error_naming_the_url");
    let e = cache.pull(&entry, &mut quiet, &CancelToken::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Download { url, detail } if url.ends_with("/nowhere.onnx") && detail.contains("404")),
        "{e}"
    );
    assert_eq!(srv.requests("nowhere.onnx").len(), 1, "a 404 is not retried");
    assert!(cache.get("pkg-404").unwrap().is_none());
}

#[test]
fn an_unreachable_server_gives_up_with_a_typed_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let doc = serde_json::json!({"registry_version": 1, "models": [{"name": "gone", "family": "mdx",
        "stems": ["a", "b"], "license": "MIT",
        "files": [{"url": format!("http://127.0.0.1:{port}/m.onnx"), "size": 10, "sha256": "0".repeat(64)}]}]});
    let mut reg = Registry::default();
    reg.add_json(doc.to_string().as_bytes(), "t").unwrap();
    let cache = cache("an_unreachable_server_gives_up_with_a_typed_error");
    let e = cache.pull(reg.entry("gone").unwrap(), &mut quiet, &CancelToken::new()).unwrap_err();
    assert!(matches!(e, Error::Download { .. }) && e.to_string().contains("attempts"), "{e}");
}

#[test]
fn two_concurrent_pulls_fetch_once_and_both_succeed() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-twice");
    srv.behave("pkg-twice/ci.onnx", Behaviour { delay: Some(Duration::from_millis(20)), ..Behaviour::default() });
    let cache = cache("two_concurrent_pulls_fetch_once_and_both_succeed");
    let entry: Entry = reg.entry("pkg-twice").unwrap().clone();
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let (cache, entry) = (cache.clone(), entry.clone());
            std::thread::spawn(move || cache.pull(&entry, &mut quiet, &CancelToken::new()))
        })
        .collect();
    let got: Vec<_> = pulls.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert_eq!(got[0], got[1]);
    assert_eq!(srv.requests("pkg-twice/ci.onnx").len(), 1);
    assert!(cache.verify("pkg-twice").unwrap().iter().all(FileCheck::is_ok));
}

#[test]
fn an_offline_miss_names_the_url_and_the_command() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-offline");
    let cache = cache("an_offline_miss_names_the_url_and_the_command");
    let e = cache.resolve("pkg-offline", &reg).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::ModelNotInstalled { .. }), "{msg}");
    assert!(msg.contains("splitsound model pull pkg-offline"), "{msg}");
    assert!(msg.contains(&format!("{}/pkg-offline/ci.onnx", srv.base)), "{msg}");
    assert!(srv.requests("pkg-offline/ci.onnx").is_empty(), "resolving never touches the network");
    let e = cache.resolve("no-such-model", &reg).unwrap_err();
    assert!(matches!(&e, Error::UnknownModel { available, .. } if available == &["pkg-offline"]), "{e}");
    assert!(matches!(cache.resolve("../etc", &reg), Err(Error::InvalidArgument { .. })));
}

#[test]
fn verify_finds_corruption_and_rm_removes() {
    let srv = Server::start();
    let (reg, onnx) = serve_package(&srv, "pkg-rm");
    let cache = cache("verify_finds_corruption_and_rm_removes");
    let m = cache.pull(reg.entry("pkg-rm").unwrap(), &mut quiet, &CancelToken::new()).unwrap();
    let path = m.dir.join("ci.onnx");
    let mut bytes = onnx.clone();
    bytes[1000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let checks = cache.verify("pkg-rm").unwrap();
    assert!(checks[0].is_ok());
    assert!(matches!(&checks[1], FileCheck::WrongSha256 { file, .. } if file == "ci.onnx"), "{checks:?}");
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert!(matches!(&cache.verify("pkg-rm").unwrap()[1], FileCheck::WrongSize { actual: 100, .. }));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(&cache.verify("pkg-rm").unwrap()[1], FileCheck::Missing { .. }));
    // A pull fetches a missing file again.
    cache.pull(reg.entry("pkg-rm").unwrap(), &mut quiet, &CancelToken::new()).unwrap();
    assert!(cache.verify("pkg-rm").unwrap().iter().all(FileCheck::is_ok));
    assert_eq!(srv.requests("pkg-rm/ci.onnx").len(), 2);
    assert!(cache.remove("pkg-rm").unwrap());
    assert!(!m.dir.exists());
    assert!(cache.get("pkg-rm").unwrap().is_none());
    assert!(!cache.remove("pkg-rm").unwrap());
    assert!(matches!(cache.verify("pkg-rm"), Err(Error::ModelNotInstalled { .. })));
}

/// The one test that sets the environment (tests run in parallel threads).
#[test]
fn names_resolve_through_the_environment_for_every_binding() {
    let srv = Server::start();
    let (reg, _) = serve_package(&srv, "pkg-env");
    let cache = cache("names_resolve_through_the_environment_for_every_binding");
    let registry_file = cache.root().parent().unwrap().join("registry.json");
    let doc = serde_json::json!({"registry_version": 1, "models": reg.entries()});
    std::fs::write(&registry_file, doc.to_string()).unwrap();
    // SAFETY: no other test of this binary reads or writes these variables.
    unsafe {
        std::env::set_var("SPLITSOUND_MODELS", cache.root());
        std::env::set_var("SPLITSOUND_REGISTRY", &registry_file);
    }
    assert_eq!(&ModelCache::from_env().unwrap(), &cache);
    let opts = splitsound_core::model::NeuralOptions::default();
    // Listed but not installed: the typed miss, from load_separator too.
    let Err(e) = load_separator("pkg-env", opts.clone()) else { panic!("loaded") };
    assert!(matches!(e, Error::ModelNotInstalled { .. }), "{e}");
    // Neither listed nor installed: still the built-ins' error.
    let Err(e) = load_separator("no-such-model", opts.clone()) else { panic!("loaded") };
    assert!(matches!(e, Error::UnknownSeparator { .. }), "{e}");
    cache.pull(reg.entry("pkg-env").unwrap(), &mut quiet, &CancelToken::new()).unwrap();
    let sep = load_separator("pkg-env", opts.clone()).unwrap();
    assert_eq!(sep.stems(), ["drums", "bass", "other", "vocals"]);
    let rt = splitsound_core::realtime::RealtimeSeparator::load("pkg-env", opts, Default::default()).unwrap();
    assert_eq!(rt.stems(), ["drums", "bass", "other", "vocals"]);
    // Built-in names stay built-ins.
    assert_eq!(load_separator("hpss", Default::default()).unwrap().stems(), ["harmonic", "percussive"]);
    unsafe {
        std::env::remove_var("SPLITSOUND_MODELS");
        std::env::remove_var("SPLITSOUND_REGISTRY");
    }
    let default = ModelCache::from_env().unwrap();
    assert!(default.root().ends_with("splitsound/models"), "{}", default.root().display());
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for d in rd.flatten() {
            let p = d.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
