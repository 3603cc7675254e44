//! The model cache: `<root>/<name>/` holds a model's files and the registry
//! entry it was installed from (`.entry.json`). A folder appears by a rename
//! once every file is fetched and verified, so a model is either whole or
//! absent. `.partial/` keeps interrupted downloads to resume; `.locks/` holds
//! one lock file per model, taken by pulls and removals.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Entry, Registry, check_name};
use crate::error::{Error, Result};

/// Environment variable that overrides the cache's folder.
pub const MODELS_ENV: &str = "SPLITSOUND_MODELS";

/// The entry a model was installed from, inside its folder. Files of an entry
/// never start with `.`, so it cannot collide with one.
pub(super) const ENTRY_FILE: &str = ".entry.json";

/// A model in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub entry: Entry,
    pub dir: PathBuf,
}

impl Installed {
    /// The path that opens the model ([`crate::load_separator`] takes it).
    pub fn load_path(&self) -> PathBuf {
        self.dir.join(self.entry.load_file())
    }
}

/// What [`ModelCache::verify`] found for one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileCheck {
    Ok { file: String },
    Missing { file: String },
    WrongSize { file: String, expected: u64, actual: u64 },
    WrongSha256 { file: String, expected: String, actual: String },
}

impl FileCheck {
    pub fn is_ok(&self) -> bool {
        matches!(self, FileCheck::Ok { .. })
    }
}

/// Where a pull stands, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub model: String,
    pub file: String,
    /// Bytes of all the model's files present so far (resumed bytes count).
    pub done: u64,
    /// Bytes of all the model's files.
    pub total: u64,
}

/// The local model cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    root: PathBuf,
}

impl ModelCache {
    /// A cache in `root` (created when something is installed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// [`MODELS_ENV`] when set, otherwise `splitsound/models` in the platform's
    /// cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux,
    /// `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows).
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = std::env::var_os(MODELS_ENV).filter(|d| !d.is_empty()) {
            return Ok(Self::new(dir));
        }
        let base = dirs::cache_dir().ok_or_else(|| Error::Unsupported {
            what: "finding this platform's cache directory".into(),
            suggestion: Some(format!("set {MODELS_ENV} to a folder for models")),
        })?;
        Ok(Self::new(base.join("splitsound").join("models")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(super) fn partial_dir(&self, name: &str) -> PathBuf {
        self.root.join(".partial").join(name)
    }

    /// The installed model `name`, if it is whole (a folder with its entry).
    pub fn get(&self, name: &str) -> Result<Option<Installed>> {
        check_name(name).map_err(|d| Error::invalid("model name", "a model name", d))?;
        let dir = self.model_dir(name);
        let path = dir.join(ENTRY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let bad = |detail: String| Error::Registry { origin: path.display().to_string(), detail };
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        entry.validate().map_err(bad)?;
        if entry.name != name {
            let detail = format!("the folder {name} holds the entry of `{}`", entry.name);
            return Err(Error::Registry { origin: path.display().to_string(), detail });
        }
        Ok(Some(Installed { entry, dir }))
    }

    /// Every installed model, by name.
    pub fn installed(&self) -> Result<Vec<Installed>> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        let mut out = Vec::new();
        for d in rd {
            let d = d.map_err(|e| Error::io(&self.root, e))?;
            let name = d.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_err() {
                continue; // .partial, .locks, a stray file
            }
            // One damaged entry does not hide the others (`get` names it).
            match self.get(&name) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(e) => log::warn!("skipping a damaged model in the cache: {e}"),
            }
        }
        out.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        Ok(out)
    }

    /// The path that opens model `name` from the cache, without the network.
    /// A model the cache lacks fails with [`Error::ModelNotInstalled`] (naming
    /// its URLs and the command that fetches it) when `registry` lists it, and
    /// with [`Error::UnknownModel`] otherwise.
    pub fn resolve(&self, name: &str, registry: &Registry) -> Result<PathBuf> {
        if let Some(m) = self.get(name)? {
            return Ok(m.load_path());
        }
        let entry = registry.entry(name)?;
        Err(Error::ModelNotInstalled {
            name: name.to_string(),
            cache: self.root.clone(),
            urls: entry.files.iter().map(|f| f.url.clone()).collect(),
        })
    }

    /// Removes model `name`; `false` when it was not installed. Waits for a
    /// pull of it in progress to finish.
    pub fn remove(&self, name: &str) -> Result<bool> {
        check_name(name).map_err(|d| Error::invalid("model name", "a model name", d))?;
        let _lock = self.lock(name)?;
        let dir = self.model_dir(name);
        let partial = self.partial_dir(name);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        if !dir.exists() {
            return Ok(false);
        }
        // Out of sight first, so a crash halfway leaves no half model under its name.
        let trash = self.root.join(".partial").join(format!(".rm-{name}-{}", std::process::id()));
        std::fs::create_dir_all(self.root.join(".partial")).map_err(|e| Error::io(&self.root, e))?;
        std::fs::rename(&dir, &trash).map_err(|e| Error::io(&dir, e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
        Ok(true)
    }

    /// Checks every file of model `name` against its entry's size and SHA-256.
    pub fn verify(&self, name: &str) -> Result<Vec<FileCheck>> {
        let m = self.get(name)?.ok_or_else(|| Error::ModelNotInstalled {
            name: name.to_string(),
            cache: self.root.clone(),
            urls: Vec::new(),
        })?;
        let mut out = Vec::new();
        for f in &m.entry.files {
            let file = f.file_name().to_string();
            let path = m.dir.join(&file);
            let size = match std::fs::metadata(&path) {
                Ok(md) => md.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.push(FileCheck::Missing { file });
                    continue;
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            if size != f.size {
                out.push(FileCheck::WrongSize { file, expected: f.size, actual: size });
                continue;
            }
            let actual = sha256_file(&path)?;
            out.push(if actual == f.sha256 {
                FileCheck::Ok { file }
            } else {
                FileCheck::WrongSha256 { file, expected: f.sha256.clone(), actual }
            });
        }
        Ok(out)
    }

    /// [`ModelCache::verify`] of model `name`, or of every installed model
    /// when `None`: (name, checks) in name order.
    pub fn verify_models(&self, name: Option<&str>) -> Result<Vec<(String, Vec<FileCheck>)>> {
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => self.installed()?.into_iter().map(|m| m.entry.name).collect(),
        };
        names.into_iter().map(|n| Ok((n.clone(), self.verify(&n)?))).collect()
    }

    /// The exclusive lock on model `name`, held until the file is dropped.
    pub(super) fn lock(&self, name: &str) -> Result<File> {
        let (f, path) = self.lock_file(name)?;
        f.lock().map_err(|e| Error::io(path, e))?;
        Ok(f)
    }

    /// [`ModelCache::lock`], waiting for another holder while listening for `cancel`.
    pub(super) fn lock_cancellable(&self, name: &str, cancel: &crate::separator::CancelToken) -> Result<File> {
        let (f, path) = self.lock_file(name)?;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    cancel.check()?;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
        }
    }

    fn lock_file(&self, name: &str) -> Result<(File, PathBuf)> {
        let dir = self.root.join(".locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{name}.lock"));
        let f =
            File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok((f, path))
    }
}

/// Lower-case hex SHA-256 of a file's contents.
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
