//! `splitsound model pull|list|rm|verify` and `separate -m NAME`, as a user
//! runs them, against a registry served from 127.0.0.1.

#[path = "../../core/tests/support/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use http::{Behaviour, Server};
use sha2::{Digest, Sha256};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/neural").join(rel)
}

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/demo/mixture.flac")
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-models-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A cache folder and a registry file listing the random-weight HT-Demucs CI
/// package served by `srv` as model `name`.
struct Setup {
    dir: PathBuf,
    registry: PathBuf,
}

impl Setup {
    fn new(test: &str, srv: &Server, name: &str, corrupt_sha: bool) -> Self {
        let dir = scratch(test);
        let files: Vec<_> = ["ci.json", "ci.onnx"]
            .iter()
            .map(|f| {
                let bytes = std::fs::read(data("demucs").join(f)).unwrap();
                let mut sha = hex::encode(Sha256::digest(&bytes));
                if corrupt_sha && f.ends_with(".onnx") {
                    sha = hex::encode(Sha256::digest(b"not this"));
                }
                let size = bytes.len();
                let url = srv.put(&format!("{name}/{f}"), bytes);
                serde_json::json!({"url": url, "size": size, "sha256": sha})
            })
            .collect();
        let doc = serde_json::json!({"registry_version": 1, "models": [{"name": name, "family": "demucs-hybrid",
            "stems": ["drums", "bass", "other", "vocals"], "license": "MIT", "description": "random weights",
            "files": files, "load": "ci.json"}]});
        let registry = dir.join("registry.json");
        std::fs::write(&registry, doc.to_string()).unwrap();
        Self { dir, registry }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_splitsound"));
        c.args(args).env("SPLITSOUND_MODELS", self.dir.join("cache")).env("SPLITSOUND_REGISTRY", &self.registry);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn pull_list_separate_verify_rm() {
    let srv = Server::start();
    let s = Setup::new("flow", &srv, "demucs-ci", false);
    let out = s.dir.join("out");
    let demo = demo();
    let sep = |extra: &[&str]| {
        let mut a = vec!["separate", demo.to_str().unwrap(), "-o", out.to_str().unwrap(), "-m", "demucs-ci"];
        a.extend_from_slice(extra);
        s.run(&a)
    };

    // Listed, not installed: a separation says what to fetch and fetches nothing.
    let o = s.run(&["model", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == "demucs-ci").unwrap();
    assert_eq!(row["installed"], false);
    assert!(rows.as_array().unwrap().iter().any(|r| r["name"] == "uvr-mdx-net-voc-ft"), "the compiled-in registry");
    let o = sep(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("splitsound model pull demucs-ci"), "{}", text(&o));
    assert!(text(&o).contains(&format!("{}/demucs-ci/ci.onnx", srv.base)), "{}", text(&o));
    assert!(srv.requests("demucs-ci/ci.onnx").is_empty());

    // Pulled, then separated offline (no further requests).
    let o = s.run(&["model", "pull", "demucs-ci", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["event"] == "download"));
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "installed");
    assert!(Path::new(last["path"].as_str().unwrap()).starts_with(s.cache()));
    let o = sep(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("mixture/vocals.wav").is_file());
    assert_eq!(srv.requests("demucs-ci/ci.onnx").len(), 1);
    let o = s.run(&["model", "list", "--installed"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("demucs-ci"), "{}", text(&o));
    let o = s.run(&["model", "inspect", "demucs-ci"]);
    assert!(o.status.success(), "{}", text(&o));

    // verify: ok, then damaged after a byte flips; rm removes it.
    assert!(s.run(&["model", "verify"]).status.success());
    let onnx = s.cache().join("demucs-ci/ci.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    bytes[5000] ^= 0x40;
    std::fs::write(&onnx, bytes).unwrap();
    let o = s.run(&["model", "verify", "demucs-ci", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][1]["status"], "wrong_sha256");
    assert!(s.run(&["model", "rm", "demucs-ci"]).status.success());
    assert!(!s.cache().join("demucs-ci").exists());
    assert_eq!(s.run(&["model", "rm", "demucs-ci"]).status.code(), Some(1));

    // --download fetches on first use.
    let o = sep(&["--download"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.requests("demucs-ci/ci.onnx").len(), 2);
    assert!(s.run(&["model", "verify", "demucs-ci"]).status.success());
}

#[test]
fn two_processes_pulling_at_once_fetch_once() {
    let srv = Server::start();
    let s = Setup::new("twice", &srv, "demucs-twice", false);
    srv.behave("demucs-twice/ci.onnx", Behaviour { delay: Some(Duration::from_millis(20)), ..Behaviour::default() });
    let kids: Vec<_> = (0..2)
        .map(|_| {
            s.cmd(&["model", "pull", "demucs-twice"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_eq!(srv.requests("demucs-twice/ci.onnx").len(), 1);
    assert!(s.run(&["model", "verify", "demucs-twice"]).status.success());
}

#[test]
fn a_cut_pull_resumes_and_a_bad_checksum_installs_nothing() {
    let srv = Server::start();
    let s = Setup::new("cut", &srv, "demucs-cut", false);
    srv.behave("demucs-cut/ci.onnx", Behaviour { cut_after: Some(700_000), cuts: 2, ..Behaviour::default() });
    let o = s.run(&["model", "pull", "demucs-cut"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.requests("demucs-cut/ci.onnx"), ["", "bytes=700000-", "bytes=1400000-"]);

    let bad = Setup::new("bad", &srv, "demucs-bad", true);
    let o = bad.run(&["model", "pull", "demucs-bad"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("nothing was installed"), "{}", text(&o));
    assert!(!bad.cache().join("demucs-bad").exists());
}

#[test]
fn names_that_are_nothing_and_urls_nobody_lists_are_usage_errors() {
    let srv = Server::start();
    let s = Setup::new("unknown", &srv, "demucs-x", false);
    let demo = demo();
    let o = s.run(&["separate", demo.to_str().unwrap(), "-m", "no-such-model"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("builtin:hpss") && text(&o).contains("demucs-x"), "{}", text(&o));
    let o = s.run(&["model", "pull", "no-such-model"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = s.run(&["model", "pull", &format!("{}/elsewhere.onnx", srv.base)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no registry lists this URL"), "{}", text(&o));
    // A malformed registry is named.
    std::fs::write(&s.registry, "{\"registry_version\": 1").unwrap();
    let o = s.run(&["model", "list"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("registry.json"), "{}", text(&o));
}

#[test]
fn a_bare_mdx_file_runs_with_flags_and_says_which_are_missing() {
    let demo = demo();
    let out = scratch("bare");
    let bare = data("mdx/mdx-random-bare.onnx");
    let run = |extra: &[&str]| {
        let mut a = vec!["separate", demo.to_str().unwrap(), "-o", out.to_str().unwrap(), "-m", bare.to_str().unwrap()];
        a.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_splitsound")).args(&a).output().unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--mdx-dim-f"), "{}", text(&o));
    let flags = ["--mdx-n-fft", "2048", "--mdx-dim-f", "512", "--mdx-dim-t", "32", "--mdx-compensate", "1.035"];
    let mut all = flags.to_vec();
    all.extend(["--mdx-primary-stem", "Vocals"]);
    let o = run(&all);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("mixture/Vocals.wav").is_file() && out.join("mixture/Instrumental.wav").is_file());
}

#[test]
fn a_bare_waveform_graph_runs_with_its_exporters_chunking() {
    let demo = demo();
    let out = scratch("bare-waveform");
    let bare = data("waveform/released-bare.onnx");
    let run = |m: &str, extra: &[&str]| {
        let o = out.join(m.rsplit('/').next().unwrap());
        let mut a = vec!["separate", demo.to_str().unwrap(), "-o", o.to_str().unwrap(), "-m", m, "--bits", "32f"];
        a.extend_from_slice(extra);
        let r = Command::new(env!("CARGO_BIN_EXE_splitsound")).args(&a).output().unwrap();
        (r, o.join("mixture/vocals.wav"))
    };
    let (o, _) = run(bare.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--waveform-stems"), "{}", text(&o));
    let flags = [
        "--waveform-stems",
        "drums,bass,other,vocals",
        "--waveform-window",
        "linear",
        "--waveform-fade",
        "85995",
        "--waveform-partial",
        "zero-right",
    ];
    let (o, got) = run(bare.to_str().unwrap(), &flags);
    assert!(o.status.success(), "{}", text(&o));
    let (o, want) = run(data("waveform/demucs-onnx.json").to_str().unwrap(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(got).unwrap(), std::fs::read(want).unwrap(), "the flags say what the manifest says");
}
