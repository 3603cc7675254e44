//! The model package manifest: a JSON sidecar next to the ONNX file(s), or the
//! `splitsound.manifest` metadata entry of a single ONNX file.
//!
//! HT-Demucs (`python/tools/export_demucs.py` writes it):
//! ```json
//! {
//!   "format_version": 1,
//!   "name": "htdemucs",
//!   "family": "demucs-hybrid",
//!   "sample_rate": 44100,
//!   "channels": 2,
//!   "stems": ["drums", "bass", "other", "vocals"],
//!   "segment_samples": 343980,
//!   "stft": {"n_fft": 4096, "hop_length": 1024, "window": "hann", "center": true,
//!            "pad_mode": "reflect", "normalized": true},
//!   "normalisation": "mono_mean_std",
//!   "defaults": {"overlap": 0.25, "shifts": 1},
//!   "inputs": [{"name": "mix", "shape": [-1, 2, 343980]}, {"name": "spec", "shape": [-1, 4, 2048, 336]}],
//!   "outputs": [{"name": "time", "shape": [-1, 4, 2, 343980]}, {"name": "freq", "shape": [-1, 4, 4, 2048, 336]}],
//!   "files": [{"path": "htdemucs.onnx", "stem_weights": [1, 1, 1, 1]}]
//! }
//! ```
//! Shapes use `-1` for a dimension the graph leaves free (here the batch of
//! segments). A bag of models (htdemucs_ft) lists several files, each with
//! per-stem weights.
//!
//! Per family:
//! - `demucs-hybrid`: inputs `mix` [B, C, L] and `spec` [B, 2C, n_fft/2, ⌈L/hop⌉],
//!   outputs `time` [B, S, C, L] and `freq` [B, S, 2C, n_fft/2, ⌈L/hop⌉]; `L` is
//!   `segment_samples`; hop = n_fft/4, `normalized: true`.
//! - `umx`: one file per stem, each mapping `magnitude` [B, 2, n_fft/2+1, frames]
//!   to the target's magnitude of the same shape; `segment_samples` is 0 (the
//!   network sees the whole input).
//! - `mdx`: an `"mdx": {"dim_f", "dim_t", "compensate"}` section; input and
//!   output [B, 4, dim_f, dim_t]; `segment_samples` = hop · (dim_t − 1); stems
//!   are [primary, secondary].
//! - `bs-roformer`, `mel-band-roformer` (`python/tools/export_msst.py` writes
//!   them): an `"msst"` section (`chunk_size`, `num_overlap`, `batch_size`,
//!   `normalize`, `residual`) and a `"roformer"` section (`freqs_per_bands` or
//!   `num_bands`, `zero_dc`, `match_input_audio_length`); input
//!   [B, frames, rows · 2] and output [B, stems, frames, rows · 2], where the
//!   rows are the bands' (bin, channel) pairs; `segment_samples` = `chunk_size`.
//! - `mdx23c`: the `"msst"` section and `"mdx23c": {"dim_f"}`; input
//!   [B, 2 · channels, dim_f, frames] (channel-major, then real and imaginary)
//!   and output [B, stems, 2 · channels, dim_f, frames].
//! - `scnet`: the `"msst"` section; an STFT with a rectangular window
//!   (`win_length`, `normalized` as the model's config); input
//!   [B, 2 · channels, n_fft/2 + 1, frames] and output
//!   [B, stems, 2 · channels, n_fft/2 + 1, frames], where the frames are those
//!   of a chunk zero-padded to an odd number of hops.
//! - `waveform` (`python/tools/export_demucs.py --stft-in-graph`, demucs-onnx):
//!   one input [B, C, L] and one output [B, S, C, L], `L` = `segment_samples`;
//!   a `"waveform"` section (`window`: `triangular` with `transition_power`,
//!   `linear` with `fade_samples`, or `hann`; `partial`: `context` or
//!   `zero_right`); `normalisation` `mono_mean_std` or `none`.

use std::path::Path;

use crate::audio::check_sample_rate;
use crate::error::{Error, Result};
use crate::stft::{PadMode, StftConfig, WindowKind};

/// The newest manifest format this build reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// Which reference pipeline the model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// HT-Demucs (htdemucs, htdemucs_6s, htdemucs_ft): waveform and spectrogram branches.
    DemucsHybrid,
    /// Open-Unmix (umxhq, umxl): magnitude masks per target, then a Wiener filter.
    Umx,
    /// UVR/audio-separator MDX-Net: one primary stem, secondary = mix − primary.
    Mdx,
    /// BS-RoFormer (`msst.models.bs_roformer.BSRoformer`), run as msst's `demix`.
    BsRoformer,
    /// Mel-Band RoFormer (`msst.models.bs_roformer.MelBandRoformer`), run as msst's `demix`.
    MelBandRoformer,
    /// MDX23C (`msst.models.mdx23c_tfc_tdf_v3.TFC_TDF_net`), run as msst's `demix`.
    Mdx23c,
    /// SCNet (`msst.models.scnet.SCNet`), run as msst's `demix`.
    Scnet,
    /// A graph from mix segments to stem segments, its STFT (if any) inside:
    /// our `export_demucs.py --stft-in-graph`, demucs-onnx's exports. Chunked
    /// as its `"waveform"` section says.
    Waveform,
    /// Meta's SAM-Audio: a text-prompted target and its residual, from four
    /// graphs (text encoder, codec encoder, velocity, codec decoder) and a
    /// tokenizer, as its `"sam_audio"` section says.
    SamAudio,
}

/// The overlap-add window of the `waveform` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveWindow {
    /// demucs `apply_model`'s: rising to the middle and falling, normalised to
    /// 1, raised to `transition_power`.
    Triangular,
    /// Flat, with linear fades of `fade_samples` from 0 at each end (msst's
    /// `_getWindowingArray`, demucs-onnx's inference).
    Linear,
    /// A symmetric Hann window over the segment (numpy's `hanning`).
    Hann,
}

/// Where the last, partial segment's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partial {
    /// Centred on its chunk, with the real samples around it (demucs's
    /// `TensorChunk.padded`), then trimmed back.
    #[default]
    Context,
    /// Starting at its chunk, zeros after the input's end.
    ZeroRight,
}

/// How the `waveform` family chunks: the window, and the partial segment.
/// The overlap and shifts are `defaults` (and the options); the normalisation
/// is the manifest's `normalisation`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveformParams {
    pub window: WaveWindow,
    #[serde(default = "one")]
    pub transition_power: f32,
    /// The fades of the `linear` window.
    #[serde(default)]
    pub fade_samples: Option<usize>,
    #[serde(default)]
    pub partial: Partial,
}

fn one() -> f32 {
    1.0
}

/// What a bare `waveform` graph's manifest would say (the CLI's
/// `--waveform-*` flags): a third-party export shipped as a lone `.onnx`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BareWaveform {
    /// The stems, in the graph's output order. Given, a graph without a
    /// manifest is opened as a `waveform` model.
    pub stems: Vec<String>,
    /// 44100 when absent.
    pub sample_rate: Option<u32>,
    /// Triangular (`apply_model`'s) when absent.
    pub window: Option<WaveWindow>,
    pub transition_power: Option<f32>,
    pub fade_samples: Option<usize>,
    pub partial: Option<Partial>,
    /// Normalise by the mono mix's mean and standard deviation.
    pub normalise: bool,
    /// 0.25 when absent.
    pub overlap: Option<f64>,
}

impl BareWaveform {
    /// The manifest of the bare graph `onnx` with this input and output.
    pub(crate) fn manifest(&self, onnx: &Path, input: &TensorSpec, output: &TensorSpec) -> Result<Manifest> {
        let bad = |detail: String| Error::Model { path: onnx.to_path_buf(), detail };
        let (Some(&c), Some(&l)) = (input.shape.get(1), input.shape.get(2)) else {
            return Err(bad(format!("input `{}` {:?} is not [batch, channels, samples]", input.name, input.shape)));
        };
        if input.shape.len() != 3 || c < 1 || l < 1 {
            return Err(bad(format!(
                "input `{}` {:?}: a waveform graph needs fixed channels and samples, [batch, channels, samples]",
                input.name, input.shape
            )));
        }
        let s = self.stems.len() as i64;
        if output.shape.len() != 4 || (output.shape[1] != -1 && output.shape[1] != s) {
            return Err(bad(format!(
                "output `{}` {:?} is not [batch, {s} stems (as --waveform-stems names), channels, samples]",
                output.name, output.shape
            )));
        }
        let m = Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            name: onnx.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            family: Family::Waveform,
            sample_rate: self.sample_rate.unwrap_or(44100),
            channels: c as usize,
            stems: self.stems.clone(),
            segment_samples: l as usize,
            stft: None,
            normalisation: if self.normalise { Normalisation::MonoMeanStd } else { Normalisation::None },
            mdx: None,
            msst: None,
            roformer: None,
            mdx23c: None,
            sam_audio: None,
            waveform: Some(WaveformParams {
                window: self.window.unwrap_or(WaveWindow::Triangular),
                transition_power: self.transition_power.unwrap_or(1.0),
                fade_samples: self.fade_samples,
                partial: self.partial.unwrap_or_default(),
            }),
            defaults: Defaults { overlap: self.overlap.unwrap_or(0.25), shifts: 0 },
            inputs: vec![TensorSpec { name: input.name.clone(), shape: vec![input.shape[0], c, l] }],
            outputs: vec![TensorSpec { name: output.name.clone(), shape: vec![output.shape[0], s, c, l] }],
            files: vec![ModelFile::new(onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())],
        };
        m.validate().map_err(bad)?;
        Ok(m)
    }
}

/// How the input is normalised before the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    #[default]
    None,
    /// demucs: subtract the mono mix's mean, divide by its standard deviation.
    MonoMeanStd,
}

/// Default separation settings the model's authors use.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    pub overlap: f64,
    pub shifts: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { overlap: 0.25, shifts: 0 }
    }
}

/// Parameters of an MDX-Net model (UVR's model data: `mdx_dim_f_set`,
/// `2^mdx_dim_t_set`, `compensate`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdxParams {
    /// Frequency bins fed to the network (the lowest `dim_f` of `n_fft / 2 + 1`).
    pub dim_f: usize,
    /// Frames per segment.
    pub dim_t: usize,
    /// The secondary stem is `mix − compensate · primary`.
    pub compensate: f32,
}

/// How msst's `demix` runs a model: the config's `audio.chunk_size` (or
/// `inference.chunk_size`), `inference.num_overlap`, `inference.batch_size`
/// (which changes the windows, as it does in msst) and `inference.normalize`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsstParams {
    pub chunk_size: usize,
    pub num_overlap: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub normalize: bool,
    /// A single-target model: the last stem is the mix minus the first
    /// (msst's `extract_instrumental`, for `training.target_instrument`).
    #[serde(default)]
    pub residual: bool,
}

/// The band layout and the inverse STFT of a band-split RoFormer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoformerParams {
    /// BS-RoFormer: bins per band, in order, summing to `n_fft / 2 + 1`.
    #[serde(default)]
    pub freqs_per_bands: Option<Vec<usize>>,
    /// Mel-Band RoFormer: the number of mel bands (the bands are computed as
    /// the module computes them, from `librosa.filters.mel`).
    #[serde(default)]
    pub num_bands: Option<usize>,
    /// Mel-Band RoFormer: the `sample_rate` of its mel bands, when it is not the package's.
    #[serde(default)]
    pub mel_sample_rate: Option<u32>,
    /// Mel-Band RoFormer: each band's first and last bin, as the module computed
    /// them (the exporter writes them); computed from `num_bands` when absent.
    #[serde(default)]
    pub mel_bands: Option<Vec<[usize; 2]>>,
    /// Zero the DC bin of every stem's spectrum before the inverse STFT (msst 0.1.0's default).
    pub zero_dc: bool,
    /// Mel-Band RoFormer: the inverse STFT is cut to the input's length (otherwise
    /// `hop · (frames − 1)`); BS-RoFormer always is.
    #[serde(default)]
    pub match_input_audio_length: bool,
}

/// MDX23C's spectrogram: the lowest `dim_f` bins of the STFT go into the
/// network (`audio.dim_f`), the rest come back as zeros.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mdx23cParams {
    pub dim_f: usize,
}

/// SAM-Audio's pipeline (`python/tools/export_sam_audio.py` writes it): the
/// codec's hop and latent channels, the T5 tokenizer, the ODE and the codec
/// watermark's message size. `segment_samples` is the chunk a long input is
/// cut into (a multiple of `hop_length`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamAudioParams {
    /// Samples per latent frame (1920 at 48 kHz: 25 frames a second).
    pub hop_length: usize,
    /// The codec's latent channels (C); the velocity works on 2C (target, residual).
    pub latent_channels: usize,
    /// The tokenizer.json of the text encoder, relative to the manifest.
    pub tokenizer: String,
    /// Longest description in tokens, `</s>` included (T5's 512).
    pub text_max_length: usize,
    /// Midpoint steps from t = 0 to 1 (16: two velocity evaluations each).
    pub ode_steps: usize,
    /// Bits of the codec watermark's message (16).
    pub watermark_bits: usize,
    /// The anchor id of padded frames (`<pad>` = the number of anchors); valid
    /// frames take `<null>`, 0, when no time span is given.
    pub pad_anchor: u32,
    /// Samples two consecutive chunks share and cross-fade over (a multiple of `hop_length`).
    pub crossfade_samples: usize,
}

/// A named tensor and its shape (`-1` = free).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
}

/// One ONNX file of the package.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Relative to the manifest's directory.
    pub path: String,
    /// Weight of each stem when averaging a bag; all ones if absent.
    #[serde(default)]
    pub stem_weights: Option<Vec<f32>>,
    /// This file's own inputs and outputs, where a package's graphs differ
    /// (`sam-audio`); otherwise the manifest's apply to every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<TensorSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<TensorSpec>>,
}

impl ModelFile {
    /// A file of the manifest's inputs and outputs.
    pub fn new(path: impl Into<String>) -> Self {
        Self { path: path.into(), stem_weights: None, inputs: None, outputs: None }
    }
}

/// The manifest of a model package.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub family: Family,
    pub sample_rate: u32,
    pub channels: usize,
    pub stems: Vec<String>,
    /// Samples per segment the network is run on; 0 for `umx`, whose network
    /// sees the whole input.
    pub segment_samples: usize,
    #[serde(default)]
    pub stft: Option<StftConfig>,
    #[serde(default)]
    pub normalisation: Normalisation,
    /// Required for the `mdx` family.
    #[serde(default)]
    pub mdx: Option<MdxParams>,
    /// Required for the msst families (`bs-roformer`, `mel-band-roformer`, `mdx23c`, `scnet`).
    #[serde(default)]
    pub msst: Option<MsstParams>,
    /// Required for `bs-roformer` and `mel-band-roformer`.
    #[serde(default)]
    pub roformer: Option<RoformerParams>,
    /// Required for `mdx23c`.
    #[serde(default)]
    pub mdx23c: Option<Mdx23cParams>,
    /// Required for `waveform`.
    #[serde(default)]
    pub waveform: Option<WaveformParams>,
    /// Required for `sam-audio`.
    #[serde(default)]
    pub sam_audio: Option<SamAudioParams>,
    #[serde(default)]
    pub defaults: Defaults,
    /// The graphs' inputs and outputs; empty where each file names its own.
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    pub files: Vec<ModelFile>,
}

/// Where the manifest of the package at `path` is: `path` itself (`model.json`),
/// or the sidecar of an ONNX file (`model.onnx` → `model.json`), which may be
/// missing when the ONNX file carries its manifest in its metadata.
pub fn manifest_path(path: &Path) -> std::path::PathBuf {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        path.with_extension("json")
    } else {
        path.to_path_buf()
    }
}

impl Manifest {
    /// Reads, parses and validates the manifest file at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&json, path)
    }

    /// Parses and validates a manifest; `path` is only used in messages.
    pub fn from_json(json: &[u8], path: &Path) -> Result<Self> {
        let bad = |detail: String| Error::Model { path: path.to_path_buf(), detail };
        let m: Manifest = serde_json::from_slice(json).map_err(|e| bad(format!("invalid manifest JSON: {e}")))?;
        m.validate().map_err(bad)?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.format_version == 0 || self.format_version > MANIFEST_FORMAT_VERSION {
            return Err(format!(
                "manifest format_version {} is not supported (this build reads 1..={MANIFEST_FORMAT_VERSION})",
                self.format_version
            ));
        }
        check_sample_rate(self.sample_rate).map_err(|e| e.to_string())?;
        if !(1..=2).contains(&self.channels) {
            return Err(format!("channels must be 1 or 2, got {}", self.channels));
        }
        if self.stems.is_empty() {
            return Err("stems is empty".into());
        }
        for (i, s) in self.stems.iter().enumerate() {
            if s.is_empty() || s.contains(['/', '\\', '.']) || self.stems[..i].contains(s) {
                return Err(format!("stem name `{s}` is empty, repeated, or not usable as a file name"));
            }
        }
        if self.segment_samples == 0 && self.family != Family::Umx {
            return Err("segment_samples must be positive (0, the whole input, is for umx only)".into());
        }
        if !(0.0..1.0).contains(&self.defaults.overlap) {
            return Err(format!("defaults.overlap must be in [0, 1), got {}", self.defaults.overlap));
        }
        if let Some(stft) = &self.stft {
            crate::stft::Stft::new(*stft).map_err(|e| format!("stft: {e}"))?;
        }
        let per_file = self.files.iter().any(|f| f.inputs.is_some() || f.outputs.is_some());
        if per_file && self.family != Family::SamAudio {
            return Err("files name their own inputs and outputs only in a sam-audio package".into());
        }
        let mut all = vec![("inputs", &self.inputs, false), ("outputs", &self.outputs, false)];
        for f in &self.files {
            all.extend(f.inputs.as_ref().map(|s| ("inputs", s, true)));
            all.extend(f.outputs.as_ref().map(|s| ("outputs", s, true)));
        }
        for (what, specs, per_file) in all {
            if specs.is_empty() && (per_file || self.files.iter().any(|f| f.inputs.is_none() || f.outputs.is_none())) {
                return Err(format!("{what} is empty"));
            }
            for (i, t) in specs.iter().enumerate() {
                if t.name.is_empty() || specs[..i].iter().any(|o| o.name == t.name) {
                    return Err(format!("{what}: name `{}` is empty or repeated", t.name));
                }
                if t.shape.is_empty() || t.shape.iter().any(|&d| d == 0 || d < -1) {
                    return Err(format!(
                        "{what}: `{}` has shape {:?}; dimensions must be positive or -1",
                        t.name, t.shape
                    ));
                }
            }
        }
        if self.files.is_empty() {
            return Err("files is empty".into());
        }
        for f in &self.files {
            if f.path.is_empty() || Path::new(&f.path).is_absolute() {
                return Err(format!("file path `{}` must be relative to the manifest", f.path));
            }
            if let Some(w) = &f.stem_weights
                && (w.len() != self.stems.len() || w.iter().any(|x| !x.is_finite() || *x < 0.0))
            {
                return Err(format!(
                    "{}: stem_weights must have one finite, non-negative weight per stem ({}), got {w:?}",
                    f.path,
                    self.stems.len()
                ));
            }
        }
        if self.files.len() > 1 {
            for (k, stem) in self.stems.iter().enumerate() {
                let total: f32 = self.files.iter().map(|f| f.stem_weights.as_ref().map_or(1.0, |w| w[k])).sum();
                if total <= 0.0 {
                    return Err(format!("stem `{stem}` has weight 0 in every model of the bag"));
                }
            }
        }
        Ok(())
    }
}

/// The manifest's STFT, which `family` requires to be torch.stft's plain form:
/// centred, reflect-padded, periodic Hann over the whole frame, not normalised.
pub(crate) fn plain_torch_stft(m: &Manifest, family: &str) -> std::result::Result<StftConfig, String> {
    let cfg = m.stft.ok_or_else(|| format!("the {family} family needs `stft` in the manifest"))?;
    let want = StftConfig {
        win_length: None,
        window: WindowKind::Hann,
        center: true,
        pad_mode: PadMode::Reflect,
        normalized: false,
        ..cfg
    };
    if cfg != want {
        return Err(format!(
            "{family} uses a centred, reflect-padded, periodic Hann STFT, not normalised; got {cfg:?}"
        ));
    }
    Ok(cfg)
}
