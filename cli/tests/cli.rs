//! The `splitsound` command as a user runs it: outputs, JSON, exit codes, errors,
//! Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use splitsound_core::{DecodeOptions, decode_file};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitsound"))
}

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/demo/mixture.flac")
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect(l)).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn separates_the_demo_with_the_default_builtin() {
    let out_dir = scratch("default");
    let o = run(&["separate", demo().to_str().unwrap(), "-o", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files_in(&out_dir), ["mixture/harmonic.wav", "mixture/percussive.wav"]);
    let mix = decode_file(demo(), &DecodeOptions::default()).unwrap();
    let h = decode_file(out_dir.join("mixture/harmonic.wav"), &DecodeOptions::default()).unwrap();
    assert_eq!((h.frames(), h.num_channels(), h.sample_rate()), (mix.frames(), 2, 44100));
}

#[test]
fn json_output_formats_and_queries() {
    let out_dir = scratch("json");
    let o = run(&[
        "separate",
        demo().to_str().unwrap(),
        "-m",
        "builtin:center",
        "--query",
        "remove the vocals",
        "--format",
        "flac",
        "--bits",
        "24",
        "-o",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&o);
    assert!(lines.iter().any(|l| l["event"] == "progress"));
    let done = lines.iter().find(|l| l["event"] == "done").expect("a done event");
    assert_eq!(done["query"]["mode"], "remove");
    assert_eq!(done["stems"][0]["name"], "no_vocals");
    assert_eq!(lines.last().unwrap()["event"], "summary");
    assert_eq!(files_in(&out_dir), ["mixture/no_vocals.flac", "mixture/vocals.flac"]);
    let info = run(&["info", out_dir.join("mixture/vocals.flac").to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!((info["codec"].as_str(), info["bits_per_sample"].as_u64()), (Some("flac"), Some(24)));
}

#[test]
fn several_inputs_and_stem_selection() {
    let dir = scratch("multi");
    let (a, b) = (dir.join("a.flac"), dir.join("b.flac"));
    std::fs::copy(demo(), &a).unwrap();
    std::fs::copy(demo(), &b).unwrap();
    let out_dir = dir.join("out");
    let o = run(&[
        "separate",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-m",
        "builtin:repet",
        "--stems",
        "foreground",
        "--bits",
        "32f",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files_in(&out_dir), ["a/foreground.wav", "b/foreground.wav"]);
}

#[test]
fn usage_errors_exit_2_with_clear_messages() {
    let d = demo();
    let cases: &[(&[&str], &str)] = &[
        (&["separate", d.to_str().unwrap(), "-m", "builtin:nope"], "builtin:hpss"),
        (&["separate", d.to_str().unwrap(), "--stems", "vocals"], "harmonic"),
        (&["separate", d.to_str().unwrap(), "--query", "make it nicer"], "harmonic"),
        (&["separate", d.to_str().unwrap(), "--format", "flac", "--bits", "32f"], "16 or 24"),
        (&["separate", d.to_str().unwrap(), d.to_str().unwrap()], "same output folder"),
        (&["separate", "--bits", "12", d.to_str().unwrap()], "12"),
        (&["separate"], "INPUTS"),
        (&["separate", d.to_str().unwrap(), "--weights", "1,2"], "several models"),
        (&["separate", d.to_str().unwrap(), "-m", "hpss", "-m", "center", "--ensemble", "avg"], "median_wave"),
        (&["separate", d.to_str().unwrap(), "-m", "hpss", "-m", "center", "--weights", "1"], "one per model"),
        (
            &[
                "separate",
                d.to_str().unwrap(),
                "-m",
                "hpss",
                "-m",
                "center",
                "--ensemble",
                "max_wave",
                "--weights",
                "1,2",
            ],
            "avg_wave",
        ),
    ];
    for (args, needle) in cases {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_inputs_exit_1_and_others_still_run() {
    let dir = scratch("bad");
    std::fs::write(dir.join("empty.wav"), b"").unwrap();
    std::fs::write(dir.join("text.mp3"), b"hello, this is not audio at all\n").unwrap();
    let good = dir.join("good.flac");
    std::fs::copy(demo(), &good).unwrap();
    let out_dir = dir.join("out");
    let o = run(&[
        "separate",
        dir.join("empty.wav").to_str().unwrap(),
        dir.join("text.mp3").to_str().unwrap(),
        dir.join("missing.wav").to_str().unwrap(),
        good.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&o);
    let codes: Vec<&str> = lines.iter().filter(|l| l["event"] == "error").filter_map(|l| l["code"].as_str()).collect();
    assert_eq!(codes, ["empty", "unrecognized_format", "io"]);
    assert_eq!(lines.last().unwrap()["succeeded"], 1);
    assert_eq!(files_in(&out_dir), ["good/harmonic.wav", "good/percussive.wav"]);
    let o = run(&["info", dir.join("text.mp3").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unrecognised audio format"));
}

#[test]
fn info_and_list() {
    let o = run(&["info", demo().to_str().unwrap()]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && s.contains("44100 Hz") && s.contains("0:12.000"), "{s}");
    let o = run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
}

/// SIGINT mid-run: exit 130 and no files, partial or whole, in the output.
#[test]
fn ctrl_c_leaves_no_partial_files() {
    let dir = scratch("sigint");
    // A long input so the signal lands mid-separation: the demo 20 times.
    let mix = decode_file(demo(), &DecodeOptions::default()).unwrap();
    let long: Vec<Vec<f32>> = mix.channels().iter().map(|c| c.repeat(20)).collect();
    let long = splitsound_core::AudioBuffer::new(44100, long).unwrap();
    let input = dir.join("long.wav");
    splitsound_core::write_file(&input, &long, &Default::default()).unwrap();
    let out_dir = dir.join("out");
    let mut child = bin()
        .args(["separate", input.to_str().unwrap(), "-m", "builtin:repet", "-o", out_dir.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first progress line, then interrupt.
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines.next().expect("progress before exit").unwrap();
        if l.contains("\"analyse\"") {
            break;
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(files_in(&out_dir).is_empty(), "left behind: {:?}", files_in(&out_dir));
}

#[test]
fn model_inspect() {
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/models/tiny/tiny.json");
    let o = run(&["model", "inspect", tiny.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["graphs"][0]["inputs"][0]["name"], "mix");
    assert_eq!(v["providers"][0]["status"]["usable"], true);
    let text = run(&["model", "inspect", tiny.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("stems     full, half"));
    let o = run(&["model", "inspect", tiny.to_str().unwrap(), "--device", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["model", "inspect", "/nonexistent/model.json"]);
    assert_eq!(o.status.code(), Some(1));
}

/// `eval` scores the demo's true stems against themselves (perfect) and the
/// center separator's output against them.
#[test]
fn eval_scores_stems() {
    let demo_dir = demo().parent().unwrap().to_path_buf();
    let o =
        run(&["eval", "--reference", demo_dir.to_str().unwrap(), "--estimate", demo_dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stems: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["stem"].as_str().unwrap()).collect();
    assert_eq!(stems, ["bass", "drums", "other", "vocals"]);
    assert!(v[0]["global_sdr"].as_f64().unwrap() > 60.0);
    // A perfect estimate: BSS Eval's SDR is infinite (JSON has no infinity: null).
    assert!(v[0]["sdr"].is_null(), "{v}");
    assert!(v[0]["windows"].as_u64().unwrap() >= 11, "{v}");
    let o = run(&["eval", "--reference", demo_dir.to_str().unwrap(), "--estimate", demo_dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("inf"));

    let dir = scratch("eval");
    let o = run(&[
        "separate",
        demo().to_str().unwrap(),
        "-m",
        "builtin:center",
        "--bits",
        "32f",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let refs = dir.join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::copy(demo_dir.join("vocals.flac"), refs.join("vocals.flac")).unwrap();
    let o = run(&["eval", "--reference", refs.to_str().unwrap(), "--estimate", dir.join("mixture").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("vocals"), "{text}");
    // A reference stem with no estimate is a usage error naming what exists.
    std::fs::copy(demo_dir.join("bass.flac"), refs.join("bass.flac")).unwrap();
    let o = run(&["eval", "--reference", refs.to_str().unwrap(), "--estimate", dir.join("mixture").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("accompaniment"));
}

fn demucs_ci() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/neural/demucs/ci.json").display().to_string()
}

#[test]
fn separates_with_a_neural_model() {
    let out_dir = scratch("neural");
    let (model, o) = (demucs_ci(), out_dir.to_str().unwrap());
    let r = run(&[
        "separate",
        "-m",
        &model,
        "--shifts",
        "1",
        "--overlap",
        "0.5",
        "--batch",
        "2",
        demo().to_str().unwrap(),
        "-o",
        o,
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let lines = json_lines(&r);
    assert!(lines.iter().any(|l| l["event"] == "model" && l["provider"] == "cpu"), "{lines:?}");
    assert_eq!(
        files_in(&out_dir),
        ["mixture/bass.wav", "mixture/drums.wav", "mixture/other.wav", "mixture/vocals.wav"]
    );
    let mix = decode_file(demo(), &DecodeOptions::default()).unwrap();
    let v = decode_file(out_dir.join("mixture/vocals.wav"), &DecodeOptions::default()).unwrap();
    assert_eq!((v.frames(), v.num_channels()), (mix.frames(), 2));

    // A query works with the model's stems; a fallback from an unusable provider is announced.
    let q = scratch("neural-query");
    let r = run(&[
        "separate",
        "-m",
        &model,
        "--device",
        "cuda:0,cpu",
        "-q",
        "remove the vocals",
        demo().to_str().unwrap(),
        "-o",
        q.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("warning: execution provider cuda:0 is not usable"), "{err}");
    assert!(err.contains("runs on cpu"), "{err}");
    assert_eq!(files_in(&q), ["mixture/no_vocals.wav", "mixture/vocals.wav"]);
}

#[test]
fn neural_errors_are_typed() {
    let o = scratch("neural-errors");
    let out = o.to_str().unwrap();
    let model = demucs_ci();
    // Insisting on a provider that cannot run here.
    let r = run(&[
        "separate",
        "-m",
        &model,
        "--device",
        "cuda:0",
        "--strict-device",
        demo().to_str().unwrap(),
        "-o",
        out,
        "--json",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(json_lines(&r)[0]["code"], "provider_unavailable");
    // Bad flags for a neural model.
    let r = run(&["separate", "-m", &model, "--overlap", "1.5", demo().to_str().unwrap(), "-o", out]);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    let r = run(&["separate", "-m", &model, "--device", "npu:0", demo().to_str().unwrap(), "-o", out]);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    // A model file that is not a package.
    let fake = o.join("fake.json");
    std::fs::write(&fake, b"{\"format_version\": 1, \"name\": ").unwrap();
    let r = run(&["separate", "-m", fake.to_str().unwrap(), demo().to_str().unwrap(), "-o", out, "--json"]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(json_lines(&r)[0]["code"], "model");
    assert!(files_in(&o).iter().all(|f| f == "fake.json"), "{:?}", files_in(&o));
}

#[test]
fn separates_with_umx_and_mdx_packages() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/neural");
    let umx = data.join("umx/umx-ci.json");
    let o = scratch("umx");
    let r = run(&[
        "separate",
        "-m",
        umx.to_str().unwrap(),
        "--residual",
        "--niter",
        "2",
        demo().to_str().unwrap(),
        "-o",
        o.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(files_in(&o), ["mixture/drums.wav", "mixture/residual.wav", "mixture/vocals.wav"]);
    let mdx = data.join("mdx/mdx-random.json");
    let o = scratch("mdx");
    let r = run(&[
        "separate",
        "-m",
        mdx.to_str().unwrap(),
        "--denoise",
        "--stems",
        "instrumental",
        demo().to_str().unwrap(),
        "-o",
        o.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(files_in(&o), ["mixture/instrumental.wav"]);
}

#[test]
fn eval_over_a_dataset_folder() {
    let demo_dir = demo().parent().unwrap().to_path_buf();
    let data = scratch("dataset");
    for track in ["a", "b"] {
        let t = data.join(track);
        std::fs::create_dir_all(&t).unwrap();
        for f in ["mixture", "vocals", "drums", "bass", "other"] {
            std::fs::copy(demo_dir.join(format!("{f}.flac")), t.join(format!("{f}.flac"))).unwrap();
        }
    }
    std::fs::create_dir_all(data.join("not-a-track")).unwrap();
    let out = data.join("results.json");
    let r =
        run(&["eval", "--dataset", data.to_str().unwrap(), "-m", "builtin:center", "--output", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(text.contains("2 tracks") && text.contains("vocals"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["tracks"].as_array().unwrap().len(), 2);
    assert_eq!(v["aggregate"][0]["stem"], "vocals");
    // Both tracks are the demo, so the median equals each track's score.
    assert_eq!(v["aggregate"][0]["sdr"], v["tracks"][0]["stems"][0]["sdr"]);

    // A neural model scores all four stems; without --output the JSON goes to
    // splitsound-eval-<separator>.json in the current folder.
    let r = bin()
        .args(["eval", "--dataset", data.to_str().unwrap(), "-m", &demucs_ci(), "--json"])
        .current_dir(&data)
        .output()
        .unwrap();
    assert!(data.join("splitsound-eval-ci.json").is_file());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let stems: Vec<&str> = v["aggregate"].as_array().unwrap().iter().map(|s| s["stem"].as_str().unwrap()).collect();
    assert_eq!(stems, ["bass", "drums", "other", "vocals"]);

    // A separator with none of the dataset's stems, and a folder with no tracks.
    let r = run(&["eval", "--dataset", data.to_str().unwrap(), "-m", "builtin:hpss"]);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    let r = run(&["eval", "--dataset", data.join("not-a-track").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Several `-m`: one ensemble, its stems matched by name across the models.
#[test]
fn ensembles_of_several_models() {
    let out_dir = scratch("ensemble");
    let d = demo();
    let o = run(&[
        "separate",
        d.to_str().unwrap(),
        "-m",
        "builtin:center",
        "-m",
        "builtin:hpss",
        "-m",
        "builtin:center",
        "--ensemble",
        "avg_fft",
        "--weights",
        "1,1,3",
        "--json",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events = json_lines(&o);
    assert!(events[0]["name"].as_str().unwrap().starts_with("ensemble avg_fft of "), "{events:?}");
    assert_eq!(
        files_in(&out_dir),
        ["mixture/accompaniment.wav", "mixture/harmonic.wav", "mixture/percussive.wav", "mixture/vocals.wav"]
    );
    // The same model twice averages to itself, exactly.
    let single = scratch("ensemble-single");
    let o = run(&[
        "separate",
        d.to_str().unwrap(),
        "-m",
        "builtin:center",
        "-o",
        single.to_str().unwrap(),
        "--format",
        "wav",
        "--bits",
        "32f",
    ]);
    assert!(o.status.success());
    let o = run(&[
        "separate",
        d.to_str().unwrap(),
        "-m",
        "builtin:center",
        "-m",
        "builtin:center",
        "--ensemble",
        "avg_wave",
        "-o",
        out_dir.to_str().unwrap(),
        "--format",
        "wav",
        "--bits",
        "32f",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = decode_file(single.join("mixture/vocals.wav"), &DecodeOptions::default()).unwrap();
    let b = decode_file(out_dir.join("mixture/vocals.wav"), &DecodeOptions::default()).unwrap();
    assert_eq!(a.channels(), b.channels());
}
