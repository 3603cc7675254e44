//! A text-prompted model (SAM-Audio) through the command: a description as
//! the query, the reference run's draws from .npy files, and the routing of
//! descriptions no stem names to `--text-model`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray_npy::WriteNpyExt;
use splitsound_core::{AudioBuffer, ClipMode, DecodeOptions, OutputFormat, SampleEncoding, WriteOptions, decode_file};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data() -> PathBuf {
    root().join("core/tests/data/neural/sam-audio")
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splitsound")).args(args).output().unwrap()
}

/// A reference array of parity_sam_audio.py: shape and values.
fn refs(name: &str) -> (Vec<usize>, Vec<f32>, serde_json::Value) {
    let dir = data().join("refs");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let e = &index["arrays"][name];
    let bytes = std::fs::read(dir.join(e["file"].as_str().unwrap())).unwrap();
    let v = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let shape = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    (shape, v, e["params"].clone())
}

fn float_wav(path: &Path, rate: u32, x: Vec<f32>) {
    // The mixture peaks above full scale: kept as it is.
    let opts = WriteOptions {
        format: OutputFormat::Wav,
        encoding: SampleEncoding::F32,
        clip: ClipMode::None,
        ..Default::default()
    };
    let bytes = splitsound_core::encode(&AudioBuffer::new(rate, vec![x]).unwrap(), &opts).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn rel(a: &[f32], want: &[f32]) -> f32 {
    let peak = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(want).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / peak
}

#[test]
fn a_description_separates_as_the_reference() {
    let dir = scratch("sam-audio");
    let (_, input, params) = refs("input_1");
    let n = input.len();
    float_wav(&dir.join("mix.wav"), 48000, input);
    // Item 1's rows of the reference's noise [2, 103, 16] and message [4, 16].
    let (shape, noise, _) = refs("ode_noise");
    let (t, w) = (shape[1], shape[2]);
    let noise = ndarray::Array2::from_shape_vec((t, w), noise[t * w..].to_vec()).unwrap();
    noise.write_npy(std::fs::File::create(dir.join("noise.npy")).unwrap()).unwrap();
    let (_, msg, _) = refs("watermark_message");
    let msg = ndarray::Array2::from_shape_vec((2, 16), msg[32..].iter().map(|&b| b as i64).collect()).unwrap();
    msg.write_npy(std::fs::File::create(dir.join("msg.npy")).unwrap()).unwrap();
    let model = data().join("sam-audio-tiny.json");
    let prompt = params["prompt"].as_str().unwrap();
    let query = format!("isolate {prompt}");
    let p = |f: &str| dir.join(f).display().to_string();
    let r = run(&[
        "separate",
        "-m",
        &model.display().to_string(),
        "--query",
        &query,
        &p("mix.wav"),
        "-o",
        &p("out"),
        "--bits",
        "32f",
        "--clip",
        "none",
        "--ode-noise",
        &p("noise.npy"),
        "--watermark-message",
        &p("msg.npy"),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for (stem, want) in [("target", "target_1"), ("residual", "residual_1")] {
        let got = decode_file(dir.join(format!("out/mix/{stem}.wav")), &DecodeOptions::default()).unwrap();
        assert_eq!((got.frames(), got.num_channels()), (n, 1));
        let e = rel(got.channel(0), &refs(want).1[..n]);
        println!("{stem}: {e:.2e} of peak");
        assert!(e < 1e-5, "{stem}: {e:.2e}");
    }
    // Without draws, --seed decides them: the same seed, the same files.
    let seeded = |out: &str| {
        let m = model.display().to_string();
        run(&["separate", "-m", &m, "-q", prompt, &p("mix.wav"), "-o", &p(out), "--seed", "5"])
    };
    let (a, b) = (seeded("s1"), seeded("s2"));
    assert!(a.status.success() && b.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(
        std::fs::read(dir.join("s1/mix/target.wav")).unwrap(),
        std::fs::read(dir.join("s2/mix/target.wav")).unwrap()
    );
}

#[test]
fn descriptions_no_stem_names_go_to_the_text_model() {
    let dir = scratch("sam-audio-route");
    let mix = root().join("examples/data/demo/mixture.flac").display().to_string();
    let text = data().join("sam-audio-tiny.json").display().to_string();
    let o = dir.join("out").display().to_string();
    // Named stems still go to the stem model.
    let r = run(&["separate", "-m", "builtin:hpss", "--text-model", &text, "-q", "remove the drums", &mix, "-o", &o]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(dir.join("out/mixture/percussive.wav").is_file());
    assert!(!dir.join("out/mixture/target.wav").exists());
    // Anything else goes to the text model, in the input's layout.
    let r = run(&[
        "separate",
        "-m",
        "builtin:hpss",
        "--text-model",
        &text,
        "-q",
        "a dog barking",
        &mix,
        "-o",
        &o,
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.contains("\"description\":\"a dog barking\""), "{stdout}");
    let input = decode_file(root().join("examples/data/demo/mixture.flac"), &DecodeOptions::default()).unwrap();
    for stem in ["target", "residual"] {
        let got = decode_file(dir.join(format!("out/mixture/{stem}.wav")), &DecodeOptions::default()).unwrap();
        assert_eq!((got.frames(), got.num_channels()), (input.frames(), input.num_channels()), "{stem}");
    }
    // Without a text model the error says that one would serve it.
    let r = run(&["separate", "-m", "builtin:hpss", "-q", "a dog barking", &mix, "-o", &o]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("text-prompted model"), "{err}");
    // A text-prompted model needs a description; a bad one is a usage error.
    let r = run(&["separate", "-m", &text, &mix, "-o", &o]);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    let r = run(&["separate", "-m", &text, "-q", "犬が吠える", &mix, "-o", &o]);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("description"), "{err}");
}
