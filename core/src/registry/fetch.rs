//! Downloads over HTTP(S) (reqwest's blocking client on rustls): resumed with
//! `Range` after a cut, checked against the entry's SHA-256 before anything is
//! installed, installed by renaming a finished folder into place, under the
//! model's lock so that two pulls neither corrupt it nor fetch it twice.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};

use super::cache::{ENTRY_FILE, sha256_file};
use super::{Entry, Installed, ModelCache, PullProgress, RemoteFile};
use crate::error::{Error, Result};
use crate::separator::CancelToken;

/// Attempts in a row that gain no byte before a pull gives up.
const MAX_FRUITLESS_ATTEMPTS: u32 = 5;

/// Requests for one file before a pull gives up, progress or not.
const MAX_ATTEMPTS: u32 = 30;

fn client() -> Result<Client> {
    Client::builder()
        .user_agent(concat!("splitsound/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Per read, in the blocking client: a stalled connection fails (and is
        // resumed) instead of hanging.
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Download { url: String::new(), detail: format!("HTTP client: {e}") })
}

/// The body at `url`, at most `max` bytes (a registry document).
pub(super) fn get_small(url: &str, max: u64) -> Result<Vec<u8>> {
    let err = |detail: String| Error::Download { url: url.to_string(), detail };
    let resp = client()?.get(url).send().map_err(|e| err(chain(&e)))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    resp.take(max + 1).read_to_end(&mut body).map_err(|e| err(e.to_string()))?;
    if body.len() as u64 > max {
        return Err(err(format!("larger than {max} bytes")));
    }
    Ok(body)
}

/// Why one request did not finish a file.
enum Failure {
    /// Worth another request (a cut, a timeout, a 5xx); bytes already written stay.
    Transient(String),
    /// Not (a 404, a body larger than the entry says, a full disk).
    Fatal(Error),
}

impl ModelCache {
    /// Fetches `entry`'s files, verifies each against its size and SHA-256, and
    /// installs the model (returned). A model already installed from the same
    /// files is returned without touching the network. `progress` hears about
    /// every chunk; `cancel` stops between chunks, keeping what was fetched for
    /// the next pull to resume.
    ///
    /// Fails with [`Error::Checksum`] (and deletes the file) when a download
    /// does not match, with [`Error::Download`] when the server refuses or
    /// keeps failing, and [`Error::Cancelled`].
    pub fn pull(
        &self,
        entry: &Entry,
        progress: &mut dyn FnMut(&PullProgress),
        cancel: &CancelToken,
    ) -> Result<Installed> {
        entry.validate().map_err(|detail| Error::Registry { origin: entry.name.clone(), detail })?;
        let name = entry.name.as_str();
        std::fs::create_dir_all(self.root()).map_err(|e| Error::io(self.root(), e))?;
        let _lock = self.lock_cancellable(name, cancel)?;
        // Whoever held the lock before may have installed it (from these or a
        // mirror's URLs: the same files are the same names, sizes and hashes).
        // A file gone or of the wrong size is fetched again (a full check is `verify`'s job).
        let key = |e: &Entry| {
            e.files.iter().map(|f| (f.file_name().to_string(), f.size, f.sha256.clone())).collect::<Vec<_>>()
        };
        if let Some(m) = self.get(name)?
            && key(&m.entry) == key(entry)
            && m.entry
                .files
                .iter()
                .all(|f| std::fs::metadata(m.dir.join(f.file_name())).is_ok_and(|md| md.len() == f.size))
        {
            return Ok(m);
        }
        let partial = self.partial_dir(name);
        std::fs::create_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        let client = client()?;
        let total: u64 = entry.files.iter().map(|f| f.size).sum();
        let mut before = 0u64;
        for f in &entry.files {
            let done = partial.join(f.file_name());
            let finished = std::fs::metadata(&done).is_ok_and(|m| m.len() == f.size) && sha256_file(&done)? == f.sha256;
            if !finished {
                // Keyed by the checksum: a part of another version is never resumed.
                let part = partial.join(format!("{}.{}.part", f.file_name(), &f.sha256[..16]));
                let mut report = |n: u64| {
                    progress(&PullProgress {
                        model: name.to_string(),
                        file: f.file_name().to_string(),
                        done: before + n,
                        total,
                    })
                };
                download(&client, f, &part, &mut report, cancel)?;
                let actual = sha256_file(&part)?;
                if actual != f.sha256 {
                    let _ = std::fs::remove_file(&part);
                    return Err(Error::Checksum { url: f.url.clone(), expected: f.sha256.clone(), actual });
                }
                std::fs::rename(&part, &done).map_err(|e| Error::io(&done, e))?;
            }
            before += f.size;
        }
        install(self, entry, &partial)
    }
}

/// Moves the verified files of `partial` into a fresh folder with the entry,
/// and that folder into place.
fn install(cache: &ModelCache, entry: &Entry, partial: &Path) -> Result<Installed> {
    let name = entry.name.as_str();
    let parent = partial.parent().expect("partial folders live in .partial");
    // What an interrupted install or removal of this model left (we hold its lock).
    if let Ok(rd) = std::fs::read_dir(parent) {
        for d in rd.flatten() {
            let n = d.file_name().to_string_lossy().into_owned();
            let ours = [".stage-", ".old-", ".rm-"].iter().any(|p| {
                n.strip_prefix(p)
                    .and_then(|rest| rest.rsplit_once('-'))
                    .is_some_and(|(model, pid)| model == name && pid.bytes().all(|b| b.is_ascii_digit()))
            });
            if ours {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
    let stage = parent.join(format!(".stage-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&stage).map_err(|e| Error::io(&stage, e))?;
    for f in &entry.files {
        let (from, to) = (partial.join(f.file_name()), stage.join(f.file_name()));
        std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
    }
    let json = serde_json::to_vec_pretty(entry).expect("an entry serialises");
    let entry_path = stage.join(ENTRY_FILE);
    let mut w = File::create(&entry_path).map_err(|e| Error::io(&entry_path, e))?;
    w.write_all(&json).and_then(|()| w.sync_all()).map_err(|e| Error::io(&entry_path, e))?;
    let dir = cache.model_dir(name);
    // Another version: out of the way, the new one in, then the old one gone.
    let old = parent.join(format!(".old-{name}-{}", std::process::id()));
    let replaced = dir.exists();
    if replaced {
        std::fs::rename(&dir, &old).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&stage, &dir).map_err(|e| Error::io(&dir, e))?;
    if let Ok(d) = File::open(cache.root()) {
        let _ = d.sync_all(); // the rename, durable where the platform allows
    }
    if replaced {
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::remove_dir_all(partial).map_err(|e| Error::io(partial, e))?;
    Ok(Installed { entry: entry.clone(), dir })
}

/// Brings `part` to `f.size` bytes, resuming from what it holds, retrying
/// transient failures with a backoff while they make progress.
fn download(
    client: &Client,
    f: &RemoteFile,
    part: &Path,
    report: &mut dyn FnMut(u64),
    cancel: &CancelToken,
) -> Result<()> {
    let mut fruitless = 0u32;
    let mut attempts = 0u32;
    loop {
        cancel.check()?;
        attempts += 1;
        let have = match std::fs::metadata(part) {
            Ok(m) if m.len() <= f.size => m.len(),
            Ok(_) => {
                // Longer than the file can be: start again.
                File::create(part).map_err(|e| Error::io(part, e))?;
                0
            }
            Err(_) => 0,
        };
        if have == f.size {
            return Ok(());
        }
        match request(client, f, part, have, report, cancel) {
            Ok(()) => {}
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(detail)) => {
                let now = std::fs::metadata(part).map_or(0, |m| m.len());
                fruitless = if now > have { 0 } else { fruitless + 1 };
                if fruitless >= MAX_FRUITLESS_ATTEMPTS || attempts >= MAX_ATTEMPTS {
                    return Err(Error::Download {
                        url: f.url.clone(),
                        detail: format!(
                            "{detail} ({attempts} attempts, the last {fruitless} without progress; {now} of {} bytes \
                             kept for the next pull)",
                            f.size
                        ),
                    });
                }
                let wait = Duration::from_millis(250 << fruitless.min(5));
                log::warn!("{}: {detail}; resuming at byte {now} in {wait:?}", f.url);
                // Waiting, but listening for a cancel.
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until {
                    cancel.check()?;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// One GET from byte `have`, appending to `part`.
fn request(
    client: &Client,
    f: &RemoteFile,
    part: &Path,
    have: u64,
    report: &mut dyn FnMut(u64),
    cancel: &CancelToken,
) -> std::result::Result<(), Failure> {
    let fatal = |detail: String| Failure::Fatal(Error::Download { url: f.url.clone(), detail });
    let mut req = client.get(&f.url);
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().map_err(|e| Failure::Transient(chain(&e)))?;
    let status = resp.status();
    let range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // The whole file's length as the server states it (`…/LEN` of a range), when it does.
    let stated_total = range.rsplit_once('/').and_then(|(_, t)| t.trim().parse::<u64>().ok());
    let wrong_size = |len: u64| {
        fatal(format!(
            "the server's file is {len} bytes, the registry says {}: a different file (or a page in its place)",
            f.size
        ))
    };
    let start = match status {
        StatusCode::PARTIAL_CONTENT => {
            if !range.starts_with(&format!("bytes {have}-")) {
                return Err(fatal(format!("asked for bytes {have}-, the server sent the range {range:?}")));
            }
            if let Some(t) = stated_total.filter(|&t| t != f.size) {
                return Err(wrong_size(t));
            }
            have
        }
        // The server ignores Range: the body is the whole file.
        StatusCode::OK => {
            if let Some(len) = resp.content_length().filter(|&l| l != f.size) {
                return Err(wrong_size(len));
            }
            0
        }
        // What we hold is not a prefix the server recognises: start over,
        // unless the server says its file is not the registry's.
        StatusCode::RANGE_NOT_SATISFIABLE => {
            if let Some(t) = stated_total.filter(|&t| t != f.size) {
                return Err(wrong_size(t));
            }
            File::create(part).map_err(|e| Failure::Fatal(Error::io(part, e)))?;
            return Err(Failure::Transient("the server refused the resume range".into()));
        }
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
            return Err(Failure::Transient(format!("HTTP {s}")));
        }
        s => return Err(fatal(format!("HTTP {s}"))),
    };
    let io_fatal = |e: std::io::Error| Failure::Fatal(Error::io(part, e));
    let mut out =
        File::options().create(true).append(start > 0).write(true).truncate(start == 0).open(part).map_err(io_fatal)?;
    let mut at = start;
    report(at);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if cancel.is_cancelled() {
            out.sync_all().map_err(io_fatal)?;
            return Err(Failure::Fatal(Error::Cancelled));
        }
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.sync_all().map_err(io_fatal)?;
                return Err(Failure::Transient(format!("cut at byte {at}: {e}")));
            }
        };
        if at + n as u64 > f.size {
            drop(out);
            let _ = std::fs::remove_file(part);
            return Err(fatal(format!("the server sent more than the registry's {} bytes", f.size)));
        }
        out.write_all(&buf[..n]).map_err(io_fatal)?;
        at += n as u64;
        report(at);
    }
    out.sync_all().map_err(io_fatal)?;
    if at < f.size {
        return Err(Failure::Transient(format!("the body ended at byte {at} of {}", f.size)));
    }
    Ok(())
}

/// An error with its causes, which is where reqwest says what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
