//! Evaluating a separator over a folder in MUSDB18-HQ layout:
//! `<dir>/<track>/mixture.wav` and `<dir>/<track>/<stem>.wav`.

use std::path::{Path, PathBuf};

use super::{StemScore, nan_median, score_stems, stem_files};
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator};

/// One track's scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrackScores {
    pub track: String,
    pub duration_secs: f64,
    pub stems: Vec<StemScore>,
}

/// Every track's scores and, per stem, the aggregate over tracks: the median
/// of the tracks' BSS Eval medians (as museval's and the papers' tables do) and
/// the mean of the global SDRs and SI-SDRs (as the MDX challenges do).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetScores {
    pub separator: String,
    pub tracks: Vec<TrackScores>,
    pub aggregate: Vec<StemScore>,
}

/// The track folders of `dir`: sub-folders with a `mixture.*` file, sorted.
pub fn dataset_tracks(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut tracks = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !path.is_dir() {
            continue;
        }
        let mixture = std::fs::read_dir(&path)
            .map_err(|e| Error::io(&path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.is_file() && p.file_stem().is_some_and(|s| s == "mixture"));
        if let Some(m) = mixture {
            tracks.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), m));
        }
    }
    tracks.sort();
    if tracks.is_empty() {
        return Err(Error::Empty { what: format!("dataset {} (no <track>/mixture.* folders)", dir.display()) });
    }
    Ok(tracks)
}

/// Separates every track's mixture with `sep` and scores the stems it shares
/// with the track's references. `on_track(done, total, name)` is called before
/// each track and once at the end.
pub fn evaluate_dataset(
    dir: &Path,
    sep: &mut dyn Separator,
    opts: &SeparateOptions<'_>,
    mut on_track: impl FnMut(usize, usize, &str),
) -> Result<DatasetScores> {
    let tracks = dataset_tracks(dir)?;
    let decode = crate::DecodeOptions::default();
    let mut out = Vec::with_capacity(tracks.len());
    for (i, (name, mixture)) in tracks.iter().enumerate() {
        on_track(i, tracks.len(), name);
        opts.check_cancel()?;
        let folder = mixture.parent().unwrap_or(dir);
        let refs: Vec<(String, PathBuf)> =
            stem_files(folder)?.into_iter().filter(|(s, _)| sep.stems().contains(s)).collect();
        if refs.is_empty() {
            return Err(Error::invalid(
                "dataset stems",
                format!("reference files named after the separator's stems ({})", sep.stems().join(", ")),
                format!("none in {}", folder.display()),
            ));
        }
        let mix = crate::decode_file(mixture, &decode)?;
        let stems = sep.separate(&mix, opts)?;
        let (mut names, mut r, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for (stem, path) in refs {
            let reference = crate::decode_file(&path, &decode)?;
            let estimate =
                stems.get(&stem).expect("filtered to the separator's stems").to_channels(reference.num_channels())?;
            r.push(reference);
            e.push(estimate);
            names.push(stem);
        }
        out.push(TrackScores {
            track: name.clone(),
            duration_secs: mix.duration_secs(),
            stems: score_stems(&names, &r, &e)?,
        });
    }
    on_track(tracks.len(), tracks.len(), "");
    Ok(DatasetScores { separator: sep.name().to_string(), aggregate: aggregate(&out), tracks: out })
}

fn aggregate(tracks: &[TrackScores]) -> Vec<StemScore> {
    let mut names: Vec<&str> = tracks.iter().flat_map(|t| t.stems.iter().map(|s| s.stem.as_str())).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let of: Vec<&StemScore> = tracks.iter().flat_map(|t| t.stems.iter().filter(|s| s.stem == name)).collect();
            let median = |f: fn(&StemScore) -> f64| nan_median(&of.iter().map(|s| f(s)).collect::<Vec<_>>());
            let mean = |f: fn(&StemScore) -> f64| {
                let v: Vec<f64> = of.iter().map(|s| f(s)).filter(|x| x.is_finite()).collect();
                if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
            };
            StemScore {
                stem: name.to_string(),
                sdr: median(|s| s.sdr),
                isr: median(|s| s.isr),
                sir: median(|s| s.sir),
                sar: median(|s| s.sar),
                windows: of.iter().map(|s| s.windows).sum(),
                global_sdr: mean(|s| s.global_sdr),
                si_sdr: mean(|s| s.si_sdr),
            }
        })
        .collect()
}
