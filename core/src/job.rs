//! File in, stem files out: the job the CLI, the C API and the hosted service run.

use std::path::{Path, PathBuf};

use crate::audio::AudioBuffer;
use crate::decode::{DecodeOptions, decode_file};
use crate::error::{Error, Result};
use crate::query::{QueryMode, QueryResolution, resolve_query};
use crate::separator::{SeparateOptions, Separator, Stage, Stems, separate_audio};
use crate::write::{PendingFile, WriteOptions, encode};

/// Which stems to write.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StemSelection {
    /// Every stem the separator produces.
    #[default]
    All,
    /// These stems, by name.
    Stems(Vec<String>),
    /// A description (see [`crate::resolve_query`]): writes the described sound
    /// as `<a>+<b>` and everything else as `no_<a>+<b>`.
    Query(String),
}

/// Options of [`separate_file`].
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileJobOptions {
    pub decode: DecodeOptions,
    pub write: WriteOptions,
    pub selection: StemSelection,
}

/// One file written by a job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WrittenStem {
    pub name: String,
    pub path: PathBuf,
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileJobReport {
    pub input: PathBuf,
    pub output_dir: PathBuf,
    pub sample_rate: u32,
    pub channels: usize,
    pub duration_secs: f64,
    pub stems: Vec<WrittenStem>,
    /// Set for [`StemSelection::Query`]; the first written stem is the one the
    /// user asked for (the isolated sound, or the mix with it removed).
    pub query: Option<QueryResolution>,
}

/// Stems as (name, audio) pairs, in output order.
pub type NamedBuffers = Vec<(String, AudioBuffer)>;

/// Picks and combines stems according to `selection`. Returns the stems to
/// write, in order, and the query resolution if there was one.
pub fn select_stems(
    stems: Stems,
    available: &[String],
    selection: &StemSelection,
) -> Result<(NamedBuffers, Option<QueryResolution>)> {
    match selection {
        StemSelection::All => Ok((stems.into_vec(), None)),
        StemSelection::Stems(names) => {
            check_names(names, available)?;
            let picked = stems.into_vec().into_iter().filter(|(n, _)| names.contains(n)).collect();
            Ok((picked, None))
        }
        StemSelection::Query(q) => {
            let res = resolve_query(q, available)?;
            let (target, rest): (Vec<_>, Vec<_>) = stems.iter().partition(|(n, _)| res.targets.iter().any(|t| t == n));
            let label = res.targets.join("+");
            let described = AudioBuffer::sum(target.iter().map(|(_, b)| *b))?;
            let residual = if rest.is_empty() {
                AudioBuffer::silence(described.sample_rate(), described.num_channels(), described.frames())?
            } else {
                AudioBuffer::sum(rest.iter().map(|(_, b)| *b))?
            };
            let pair = vec![(label.clone(), described), (format!("no_{label}"), residual)];
            let out = match res.mode {
                QueryMode::Isolate => pair,
                QueryMode::Remove => pair.into_iter().rev().collect(),
            };
            Ok((out, Some(res)))
        }
    }
}

/// Validates stem names against what a separator produces.
pub fn check_names(names: &[String], available: &[String]) -> Result<()> {
    if let Some(bad) = names.iter().find(|n| !available.contains(n)) {
        return Err(Error::UnknownStem { stem: bad.clone(), available: available.to_vec() });
    }
    if names.is_empty() {
        return Err(Error::invalid("stems", "at least one stem name", "an empty list"));
    }
    Ok(())
}

/// Decodes `input`, separates it, and writes `out_dir/<track>/<stem>.<ext>`,
/// where `<track>` is the input's file name without extension.
///
/// Files are written under temporary names and renamed only once every stem is
/// encoded, so an error or a cancellation leaves no partial output.
pub fn separate_file(
    sep: &mut dyn Separator,
    input: &Path,
    out_dir: &Path,
    opts: &FileJobOptions,
    call: &SeparateOptions<'_>,
) -> Result<FileJobReport> {
    // Check the selection before spending time on the audio.
    match &opts.selection {
        StemSelection::Stems(names) => check_names(names, sep.stems())?,
        StemSelection::Query(q) => {
            resolve_query(q, sep.stems())?;
        }
        StemSelection::All => {}
    }
    call.report(Stage::Decode, 0, 1);
    let audio = decode_file(input, &opts.decode).map_err(|e| match e {
        Error::Io { path: None, source } => Error::Io { path: Some(input.to_path_buf()), source },
        e => e,
    })?;
    call.report(Stage::Decode, 1, 1);
    call.check_cancel()?;
    let stems = separate_audio(sep, &audio, call)?;
    let (chosen, query) = select_stems(stems, sep.stems(), &opts.selection)?;

    let track = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "track".into());
    let dir = out_dir.join(track);
    let created = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = write_all(&dir, chosen, &opts.write, call);
    let written = match result {
        Ok(w) => w,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(e);
        }
    };
    Ok(FileJobReport {
        input: input.to_path_buf(),
        output_dir: dir,
        sample_rate: audio.sample_rate(),
        channels: audio.num_channels(),
        duration_secs: audio.duration_secs(),
        stems: written,
        query,
    })
}

fn write_all(
    dir: &Path,
    stems: Vec<(String, AudioBuffer)>,
    write: &WriteOptions,
    call: &SeparateOptions<'_>,
) -> Result<Vec<WrittenStem>> {
    let total = stems.len() as u64;
    let mut pending = Vec::with_capacity(stems.len());
    for (i, (name, audio)) in stems.into_iter().enumerate() {
        call.check_cancel()?;
        let path = dir.join(format!("{name}.{}", write.format.extension()));
        let bytes = encode(&audio, write)?;
        pending.push((name, PendingFile::write(path, &bytes)?));
        call.report(Stage::Write, i as u64 + 1, total);
    }
    call.check_cancel()?;
    pending.into_iter().map(|(name, p)| p.commit().map(|path| WrittenStem { name, path })).collect()
}
