//! File in, stem files out: the job the CLI, the C API and the hosted service run.

use std::path::{Path, PathBuf};

use crate::audio::AudioBuffer;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::decode::{DecodeOptions, StreamDecoder};
use crate::error::{Error, Result};
use crate::query::{QueryMode, QueryResolution, resolve_query};
use crate::resample::{StreamResampler, resampled_len};
use crate::separator::{SeparateOptions, Separator, Stage, Stems};
use crate::stream::{StemAudio, StreamSpec, into_frames, planar};
use crate::write::{PendingFile, StemWriter, WriteOptions};

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

/// Picks and combines stems according to `selection`. Returns the stems to
/// write, in order, and the query resolution if there was one.
pub fn select_stems(
    stems: Stems,
    available: &[String],
    selection: &StemSelection,
) -> Result<(Stems, Option<QueryResolution>)> {
    match selection {
        StemSelection::All => Ok((stems, None)),
        StemSelection::Stems(names) => {
            check_names(names, available)?;
            let picked = stems.into_vec().into_iter().filter(|(n, _)| names.contains(n)).collect();
            Ok((Stems::new(picked)?, None))
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
            Ok((Stems::new(out)?, Some(res)))
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
/// The job streams (see [`crate::stream`]): one thread decodes and resamples
/// upcoming blocks, the calling thread separates, and another resamples the
/// stems back and encodes them, joined by bounded queues, so memory does not
/// grow with the input's length (for separators whose stream is bounded) and
/// decoding and encoding overlap the separation.
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
    // Check the options and the selection before spending time on the audio.
    opts.write.validate()?;
    let outputs = output_names(sep.stems(), &opts.selection)?;
    let query = match &opts.selection {
        StemSelection::Query(q) => Some(resolve_query(q, sep.stems())?),
        _ => None,
    };
    let with_path = |e: Error| e.with_path(input);
    let decoder = StreamDecoder::open(input, &opts.decode).map_err(with_path)?;
    let info = decoder.info().clone();
    drop(decoder);
    let in_rate = info.sample_rate;
    let rate = sep.sample_rate().unwrap_or(in_rate);
    let spec = StreamSpec {
        sample_rate: rate,
        channels: info.channels,
        frames: info.frames.map(|n| resampled_len(n, in_rate, rate)),
    };
    let plan = Plan { input, decode: &opts.decode, rate, spec, call };

    let track = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "track".into());
    let dir = out_dir.join(track);
    let created = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let writing = Writing {
        dir: &dir,
        outputs: &outputs,
        names: sep.stems().to_vec(),
        in_rate,
        sep_rate: rate,
        opts,
        query: &query,
    };
    let result = run_pipeline(sep, &plan, &writing);
    let (frames, written) = match result {
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
        sample_rate: in_rate,
        channels: info.channels,
        duration_secs: frames as f64 / in_rate as f64,
        stems: written,
        query,
    })
}

/// Names of the files a selection writes, in order.
fn output_names(available: &[String], selection: &StemSelection) -> Result<Vec<String>> {
    Ok(match selection {
        StemSelection::All => available.to_vec(),
        StemSelection::Stems(names) => {
            check_names(names, available)?;
            available.iter().filter(|n| names.contains(n)).cloned().collect()
        }
        StemSelection::Query(q) => {
            let res = resolve_query(q, available)?;
            let label = res.targets.join("+");
            let pair = vec![label.clone(), format!("no_{label}")];
            match res.mode {
                QueryMode::Isolate => pair,
                QueryMode::Remove => pair.into_iter().rev().collect(),
            }
        }
    })
}

/// Blocks in flight between two threads of the pipeline, per queue.
const QUEUE: usize = 4;

struct Plan<'a, 'b> {
    input: &'a Path,
    decode: &'a DecodeOptions,
    /// The separator's rate.
    rate: u32,
    spec: StreamSpec,
    call: &'a SeparateOptions<'b>,
}

struct Writing<'a> {
    dir: &'a Path,
    outputs: &'a [String],
    names: Vec<String>,
    in_rate: u32,
    /// The rate the stems arrive at.
    sep_rate: u32,
    opts: &'a FileJobOptions,
    query: &'a Option<QueryResolution>,
}

enum ToWriter {
    Block(StemAudio),
    /// The input had this many frames (at its own rate): the stems' length.
    End(u64),
}

/// Decodes the input and sends it in blocks at the separator's rate; returns
/// the input's frame count. An error is sent too, so the receiver never takes
/// a failed read for the end of the input.
fn read_input(plan: &Plan<'_, '_>, tx: &SyncSender<Result<Vec<Vec<f32>>>>) -> u64 {
    let run = || -> Result<u64> {
        let mut dec = StreamDecoder::open(plan.input, plan.decode)?;
        let in_rate = dec.info().sample_rate;
        let channels = dec.info().channels;
        let mut rs = (in_rate != plan.rate).then(|| StreamResampler::new(in_rate, plan.rate, channels)).transpose()?;
        let mut frames = 0u64;
        loop {
            if plan.call.cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(Error::Cancelled);
            }
            let block = dec.next_block()?;
            let done = block.is_none();
            let mut out = vec![Vec::new(); channels];
            match (&mut rs, block) {
                (None, Some(b)) => {
                    frames += b.frames() as u64;
                    out = b.into_channels();
                }
                (None, None) => {}
                (Some(r), Some(b)) => {
                    frames += b.frames() as u64;
                    r.process(&b.planar(), &mut out)?;
                }
                (Some(r), None) => r.finish(&mut out)?,
            }
            if !out[0].is_empty() && tx.send(Ok(out)).is_err() {
                return Err(Error::Cancelled);
            }
            if done {
                return Ok(frames);
            }
        }
    };
    match run() {
        Ok(n) => n,
        Err(e) => {
            let _ = tx.send(Err(e.with_path(plan.input)));
            0
        }
    }
}

/// Runs decode → separate → encode on three threads; returns the input's
/// frame count and the committed files.
fn run_pipeline(
    sep: &mut dyn Separator,
    plan: &Plan<'_, '_>,
    writing: &Writing<'_>,
) -> Result<(u64, Vec<WrittenStem>)> {
    let call = plan.call;
    let mut stream = sep.stream(plan.spec, *call)?;
    let total = plan.spec.frames.unwrap_or(0);
    std::thread::scope(|scope| {
        if stream.needs_prepass() {
            let (tx, rx) = sync_channel(QUEUE);
            let reader = scope.spawn(move || read_input(plan, &tx));
            for block in rx {
                stream.prepass(&planar(&block?))?;
            }
            let _ = reader.join();
        }
        let (tx, rx) = sync_channel(QUEUE);
        let reader = scope.spawn(move || read_input(plan, &tx));
        let (wtx, wrx) = sync_channel::<ToWriter>(QUEUE);
        let writer = scope.spawn(move || write_stems(writing, wrx));
        let separated = (|| -> Result<()> {
            let mut done = 0u64;
            call.report(Stage::Separate, 0, total);
            for block in rx {
                let block = block?;
                call.check_cancel()?;
                done += block[0].len() as u64;
                let out = stream.process(&planar(&block))?;
                if out.iter().next().is_some_and(|(_, s)| !s.is_empty()) {
                    wtx.send(ToWriter::Block(into_frames(out))).map_err(|_| Error::Cancelled)?;
                }
                call.report(Stage::Separate, done, total.max(done));
            }
            let out = stream.finish()?;
            wtx.send(ToWriter::Block(into_frames(out))).map_err(|_| Error::Cancelled)?;
            call.report(Stage::Separate, done, done);
            Ok(())
        })();
        let frames = reader.join().unwrap_or(0);
        if separated.is_ok() {
            let _ = wtx.send(ToWriter::End(frames));
        }
        drop(wtx);
        let written = writer.join().unwrap_or_else(|_| Err(Error::Encode { detail: "the writer panicked".into() }));
        let pending = match (separated, written) {
            // The writer failed first (a full disk): its error, not the queue's.
            (Err(Error::Cancelled), Err(e)) if !call.cancel.is_some_and(|c| c.is_cancelled()) => return Err(e),
            (Err(e), _) => return Err(e),
            (Ok(()), w) => w?,
        };
        call.check_cancel()?;
        let committed = pending
            .into_iter()
            .map(|(name, p)| p.commit().map(|path| WrittenStem { name, path }))
            .collect::<Result<Vec<_>>>()?;
        call.report(Stage::Write, committed.len() as u64, committed.len() as u64);
        Ok((frames, committed))
    })
}

/// Frames held back from the writers until the input's length is known, to
/// cut the resampling round trip's extra frame (or pad a missing one).
const HOLDBACK: usize = 64;

/// The writer thread: resamples stems back to the input's rate, combines them
/// as selected, and encodes them; returns the encoded files, uncommitted.
fn write_stems(w: &Writing<'_>, rx: Receiver<ToWriter>) -> Result<Vec<(String, PendingFile)>> {
    let ext = w.opts.write.format.extension();
    let mut writers: Vec<StemWriter> = Vec::new();
    let mut back: Vec<StreamResampler> = Vec::new();
    // Stems × channels at the input's rate, not yet written.
    let mut pending: StemAudio = Vec::new();
    let mut written = 0u64;
    let flush = |pending: &mut StemAudio, upto: usize, writers: &mut Vec<StemWriter>| -> Result<()> {
        if upto == 0 {
            return Ok(());
        }
        if writers.is_empty() {
            let channels = pending[0].len();
            for name in w.outputs {
                let path = w.dir.join(format!("{name}.{ext}"));
                writers.push(StemWriter::create(path, w.in_rate, channels, &w.opts.write)?);
            }
        }
        let head: StemAudio =
            pending.iter_mut().map(|s| s.iter_mut().map(|c| c.drain(..upto).collect()).collect()).collect();
        for (wr, block) in writers.iter_mut().zip(select_frames(head, &w.names, &w.opts.selection, w.query)) {
            wr.write(&planar(&block))?;
        }
        Ok(())
    };
    loop {
        match rx.recv() {
            Ok(ToWriter::Block(block)) => {
                let channels = block.first().map_or(0, Vec::len);
                if channels == 0 || block[0][0].is_empty() {
                    continue;
                }
                if pending.is_empty() {
                    pending = vec![vec![Vec::new(); channels]; block.len()];
                }
                for (k, stem) in block.into_iter().enumerate() {
                    if w.sep_rate != w.in_rate {
                        if back.len() <= k {
                            back.push(StreamResampler::new(w.sep_rate, w.in_rate, channels)?);
                        }
                        back[k].process(&planar(&stem), &mut pending[k])?;
                    } else {
                        pending[k].iter_mut().zip(stem).for_each(|(p, s)| p.extend(s));
                    }
                }
                let upto = pending[0][0].len().saturating_sub(HOLDBACK);
                flush(&mut pending, upto, &mut writers)?;
                written += upto as u64;
            }
            Ok(ToWriter::End(frames)) => {
                if pending.is_empty() {
                    return Err(Error::Empty { what: "input audio".into() });
                }
                for (r, p) in back.iter_mut().zip(pending.iter_mut()) {
                    r.finish(p)?;
                }
                let want = frames.saturating_sub(written) as usize;
                for c in pending.iter_mut().flatten() {
                    c.resize(want, 0.0);
                }
                flush(&mut pending, want, &mut writers)?;
                return writers.into_iter().zip(w.outputs).map(|(wr, name)| Ok((name.clone(), wr.finish()?))).collect();
            }
            // The separating thread stopped early and has its own error.
            Err(_) => return Err(Error::Cancelled),
        }
    }
}

/// [`select_stems`] on one block of frames.
fn select_frames(
    stems: StemAudio,
    names: &[String],
    selection: &StemSelection,
    query: &Option<QueryResolution>,
) -> Vec<Vec<Vec<f32>>> {
    let sum = |chosen: Vec<&Vec<Vec<f32>>>, like: &Vec<Vec<f32>>| -> Vec<Vec<f32>> {
        let mut it = chosen.into_iter();
        let Some(first) = it.next() else { return like.iter().map(|c| vec![0.0; c.len()]).collect() };
        let mut out = first.clone();
        for s in it {
            out.iter_mut().zip(s).for_each(|(o, c)| o.iter_mut().zip(c).for_each(|(o, c)| *o += c));
        }
        out
    };
    match (selection, query) {
        (StemSelection::Query(_), Some(res)) => {
            let (target, rest): (Vec<_>, Vec<_>) =
                names.iter().zip(&stems).partition(|(n, _)| res.targets.iter().any(|t| t == *n));
            let described = sum(target.into_iter().map(|(_, s)| s).collect(), &stems[0]);
            let residual = sum(rest.into_iter().map(|(_, s)| s).collect(), &stems[0]);
            match res.mode {
                QueryMode::Isolate => vec![described, residual],
                QueryMode::Remove => vec![residual, described],
            }
        }
        (StemSelection::Stems(keep), _) => {
            names.iter().zip(stems).filter(|(n, _)| keep.contains(n)).map(|(_, s)| s).collect()
        }
        _ => stems,
    }
}
