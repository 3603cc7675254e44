//! UVR / audio-separator MDX-Net `.onnx` files that configure themselves.
//!
//! Those files carry no parameters. UVR and audio-separator recognise one by a
//! hash of its contents (MD5 of its last 10,000 × 1,024 bytes, or of the whole
//! file when it is shorter) and look its parameters up in UVR's model data,
//! `mdx_model_data/model_data_new.json` ([`TABLE_SOURCE`]). We ship that table
//! and do the same; [`MdxOverrides`] (the CLI's `--mdx-*` flags) take
//! precedence over it, and a file the table lacks needs all of them.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

use md5::{Digest, Md5};

use super::manifest::{
    Defaults, Family, MANIFEST_FORMAT_VERSION, Manifest, MdxParams, ModelFile, Normalisation, TensorSpec,
};
use crate::error::{Error, Result};
use crate::stft::{PadMode, StftConfig, WindowKind};

/// Where the shipped table comes from.
pub const TABLE_SOURCE: &str = include_str!("uvr_mdx_model_data.source");

/// Bytes of the file's end that the hash covers.
const HASHED_BYTES: u64 = 10_000 * 1024;

/// UVR's hop, fixed for every MDX-Net model.
const HOP: usize = 1024;

/// One row of UVR's table.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Row {
    compensate: f32,
    mdx_dim_f_set: usize,
    mdx_dim_t_set: u32,
    mdx_n_fft_scale_set: usize,
    primary_stem: String,
}

fn table() -> &'static HashMap<String, Row> {
    static TABLE: OnceLock<HashMap<String, Row>> = OnceLock::new();
    TABLE.get_or_init(|| {
        parse_table(include_str!("uvr_mdx_model_data.json").as_bytes()).expect("the shipped table parses")
    })
}

/// The MDX-Net rows of a model-data document; rows of other kinds (MDX-C
/// configs, VR models) are skipped, as UVR's own table mixes them.
fn parse_table(json: &[u8]) -> std::result::Result<HashMap<String, Row>, serde_json::Error> {
    let all: HashMap<String, serde_json::Value> = serde_json::from_slice(json)?;
    Ok(all.into_iter().filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?))).collect())
}

fn read_table(path: &Path) -> Result<HashMap<String, Row>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_table(&bytes).map_err(|e| Error::Model { path: path.to_path_buf(), detail: format!("UVR model data: {e}") })
}

/// Parameters of an MDX-Net file, given by hand; each overrides the table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MdxOverrides {
    /// UVR's `mdx_n_fft_scale_set`.
    pub n_fft: Option<usize>,
    /// `mdx_dim_f_set`: bins fed to the network.
    pub dim_f: Option<usize>,
    /// `2^mdx_dim_t_set`: frames per segment.
    pub dim_t: Option<usize>,
    pub compensate: Option<f32>,
    /// The stem the network outputs (`Vocals`, `Instrumental`, …).
    pub primary_stem: Option<String>,
    /// A model-data file in UVR's format (`{"<hash>": {"compensate": …,
    /// "mdx_dim_f_set": …, …}}`, as UVR saves for a model it did not know)
    /// whose rows take precedence over the shipped table.
    pub model_data: Option<std::path::PathBuf>,
}

impl MdxOverrides {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The hash UVR and audio-separator key their model data by.
pub fn uvr_hash(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    uvr_hash_of(&mut f).map_err(|e| Error::io(path, e))
}

/// [`uvr_hash`] of bytes in memory.
pub fn uvr_hash_bytes(bytes: &[u8]) -> String {
    let tail = &bytes[bytes.len().saturating_sub(HASHED_BYTES as usize)..];
    hex(&Md5::digest(tail))
}

fn uvr_hash_of(f: &mut (impl Read + Seek)) -> std::io::Result<String> {
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(len.saturating_sub(HASHED_BYTES)))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stem UVR pairs with `primary` (`common_separator.secondary_stem`):
/// Vocals ↔ Instrumental, otherwise `X` ↔ `No X`.
pub fn secondary_stem(primary: &str) -> String {
    match primary {
        "Vocals" => "Instrumental".into(),
        "Instrumental" => "Vocals".into(),
        p => match p.strip_prefix("No ") {
            Some(rest) => rest.to_string(),
            None => format!("No {p}"),
        },
    }
}

/// The manifest of a bare MDX-Net file whose graph reads `input` and writes
/// `output` ([`super::GraphIo`] of the opened file), from the table row of its
/// hash and `over`.
pub(crate) fn manifest(
    onnx: &Path,
    hash: &str,
    over: &MdxOverrides,
    input: &TensorSpec,
    output: &TensorSpec,
) -> Result<Manifest> {
    let user = match &over.model_data {
        Some(p) => read_table(p)?.remove(hash),
        None => None,
    };
    let row = user.as_ref().or_else(|| table().get(hash));
    let file = onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let missing = || Error::Model {
        path: onnx.to_path_buf(),
        detail: format!(
            "no manifest (neither {} nor `{}` in the ONNX metadata), and its UVR hash {hash} is not in UVR's \
             MDX-Net model data ({TABLE_SOURCE}); \
             give its parameters: --mdx-n-fft N --mdx-dim-f N --mdx-dim-t N --mdx-compensate X \
             --mdx-primary-stem NAME (UVR's mdx_n_fft_scale_set, mdx_dim_f_set, 2^mdx_dim_t_set, compensate, \
             primary_stem), or wrap it with python/tools/mdx_package.py; a graph from mix segments to stems \
             [B, S, C, L] needs --waveform-stems NAMES (and --waveform-window, --waveform-partial, … as its \
             exporter chunks)",
            super::manifest::manifest_path(onnx).display(),
            super::MANIFEST_METADATA_KEY
        ),
    };
    let pick = |o: Option<usize>, r: Option<usize>| o.or(r).ok_or_else(missing);
    let n_fft = pick(over.n_fft, row.map(|r| r.mdx_n_fft_scale_set))?;
    let dim_f = pick(over.dim_f, row.map(|r| r.mdx_dim_f_set))?;
    let dim_t = pick(over.dim_t, row.map(|r| 1usize << r.mdx_dim_t_set.min(16)))?;
    let compensate = over.compensate.or(row.map(|r| r.compensate)).ok_or_else(missing)?;
    let primary = over.primary_stem.clone().or(row.map(|r| r.primary_stem.clone())).ok_or_else(missing)?;
    let bad = |detail: String| Error::Model { path: onnx.to_path_buf(), detail };
    if !(compensate.is_finite() && compensate > 0.0) {
        return Err(bad(format!("compensate must be positive, got {compensate}")));
    }
    if dim_t < 2 || dim_f == 0 || dim_f > n_fft / 2 + 1 {
        return Err(bad(format!(
            "dim_f {dim_f} must be in 1..=n_fft/2+1 ({}) and dim_t {dim_t} at least 2",
            n_fft / 2 + 1
        )));
    }
    // The graph's own shape: [batch, 4, dim_f, dim_t], batch free or fixed.
    let want = [4, dim_f as i64, dim_t as i64];
    for t in [input, output] {
        let fits = t.shape.len() == 4 && t.shape[1..].iter().zip(want).all(|(&g, w)| g == -1 || g == w);
        if !fits {
            return Err(bad(format!(
                "`{}` has shape {:?}, but n_fft {n_fft}, dim_f {dim_f}, dim_t {dim_t} need [batch, 4, {dim_f}, {dim_t}]{}",
                t.name,
                t.shape,
                if row.is_some() { " (the parameters of its UVR hash; override them with --mdx-* flags)" } else { "" }
            )));
        }
    }
    let shape = |t: &TensorSpec| vec![t.shape[0], 4, dim_f as i64, dim_t as i64];
    let secondary = secondary_stem(&primary);
    let m = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: file.trim_end_matches(".onnx").to_string(),
        family: Family::Mdx,
        sample_rate: 44100,
        channels: 2,
        stems: vec![primary, secondary],
        // audio-separator's chunk: hop · (segment_size − 1), segment_size = dim_t.
        segment_samples: HOP * (dim_t - 1),
        stft: Some(StftConfig {
            n_fft,
            hop_length: HOP,
            win_length: None,
            window: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Reflect,
            normalized: false,
        }),
        normalisation: Normalisation::None,
        mdx: Some(MdxParams { dim_f, dim_t, compensate }),
        msst: None,
        roformer: None,
        mdx23c: None,
        waveform: None,
        sam_audio: None,
        defaults: Defaults { overlap: 0.25, shifts: 0 },
        inputs: vec![TensorSpec { name: input.name.clone(), shape: shape(input) }],
        outputs: vec![TensorSpec { name: output.name.clone(), shape: shape(output) }],
        files: vec![ModelFile::new(file)],
    };
    let json = serde_json::to_vec(&m).expect("a manifest serialises");
    Manifest::from_json(&json, onnx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_last_10000_kib() {
        let small: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert_eq!(uvr_hash_bytes(&small), hex(&Md5::digest(&small)));
        let big: Vec<u8> = (0..HASHED_BYTES as usize + 777).map(|i| (i * 7) as u8).collect();
        assert_eq!(uvr_hash_bytes(&big), hex(&Md5::digest(&big[777..])));
        let mut cur = std::io::Cursor::new(big.clone());
        assert_eq!(uvr_hash_of(&mut cur).unwrap(), uvr_hash_bytes(&big));
    }

    #[test]
    fn secondary_stems_pair_as_uvr_pairs_them() {
        assert_eq!(secondary_stem("Vocals"), "Instrumental");
        assert_eq!(secondary_stem("Instrumental"), "Vocals");
        assert_eq!(secondary_stem("Drums"), "No Drums");
        assert_eq!(secondary_stem("No Other"), "Other");
    }

    #[test]
    fn the_shipped_table_has_mdx_rows() {
        assert!(table().len() > 10, "{}", table().len());
        for (k, r) in table() {
            assert_eq!(k.len(), 32, "{k}");
            assert!(r.mdx_dim_f_set <= r.mdx_n_fft_scale_set / 2 + 1, "{k}: {r:?}");
        }
    }
}
