//! Models by name: registries that say where a model's files are, and the
//! local cache that holds what was fetched.
//!
//! A registry is a JSON document:
//! ```json
//! {
//!   "registry_version": 1,
//!   "models": [{
//!     "name": "uvr-mdx-net-inst-hq-3",
//!     "family": "mdx",
//!     "stems": ["Instrumental", "Vocals"],
//!     "description": "UVR MDX-Net instrumental model, HQ 3",
//!     "license": "MIT",
//!     "sdr": [{"stem": "vocals", "db": 9.4, "source": "…"}],
//!     "files": [{"url": "https://…/UVR-MDX-NET-Inst_HQ_3.onnx", "size": 66759214, "sha256": "…"}]
//!   }]
//! }
//! ```
//! A file is stored under the last segment of its URL unless it names a
//! `path`; the model is opened through `load` (a manifest or an ONNX file),
//! the first file when absent. A document with `"replace": true` hides the
//! registries before it (the compiled-in default among them), so a deployment
//! can serve only its own mirror.
//!
//! [`ModelCache`] keeps one folder per model under the platform's cache
//! directory (`SPLITSOUND_MODELS` overrides it); [`ModelCache::pull`] fills
//! it over HTTPS. All of it is splitsound-core's `download` feature.

mod cache;
mod fetch;

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::Family;

pub use cache::{FileCheck, Installed, MODELS_ENV, ModelCache, PullProgress};

/// The newest registry format this build reads.
pub const REGISTRY_VERSION: u32 = 1;

/// Environment variable naming registries (URLs or files, separated by
/// whitespace) consulted before the compiled-in one.
pub const REGISTRY_ENV: &str = "SPLITSOUND_REGISTRY";

/// The compiled-in registry: public UVR MDX-Net ONNX files at their release URLs.
pub const DEFAULT_REGISTRY: &str = include_str!("default.json");

/// One file of a model: where to fetch it and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    pub url: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    /// The name in the model's folder; the URL's last segment when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl RemoteFile {
    /// The file's name in the model's folder.
    pub fn file_name(&self) -> &str {
        self.path.as_deref().unwrap_or_else(|| url_file_name(&self.url))
    }
}

/// A published separation score, with where it comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sdr {
    pub stem: String,
    /// Decibels.
    pub db: f64,
    /// Who measured it, on what (a URL or a citation).
    pub source: String,
}

/// A model a registry offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub family: Family,
    pub stems: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub license: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sdr: Vec<Sdr>,
    pub files: Vec<RemoteFile>,
    /// The file that opens the model; the first file when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<String>,
    /// May a separation that names this model fetch it on first use? Off
    /// unless the registry says so: a download is an explicit step
    /// (`model pull`, or `--download`).
    #[serde(default)]
    pub auto_download: bool,
}

impl Entry {
    /// The file that opens the model, relative to its folder.
    pub fn load_file(&self) -> &str {
        self.load.as_deref().unwrap_or_else(|| self.files[0].file_name())
    }

    /// Checks what the cache relies on: a usable name, unique file names
    /// without path separators, SHA-256s in hex, `load` among the files.
    pub fn validate(&self) -> std::result::Result<(), String> {
        check_name(&self.name)?;
        if self.files.is_empty() {
            return Err(format!("model `{}` lists no files", self.name));
        }
        if self.stems.is_empty() {
            return Err(format!("model `{}` lists no stems", self.name));
        }
        let mut names = Vec::new();
        for f in &self.files {
            if !(f.url.starts_with("https://") || f.url.starts_with("http://")) {
                return Err(format!("model `{}`: {:?} is not an http(s) URL", self.name, f.url));
            }
            let n = f.file_name();
            if !usable_file_name(n) {
                return Err(format!(
                    "model `{}`: unusable file name {n:?} (letters, digits, `.`, `_`, `+`, `-`; not starting with `.`)",
                    self.name
                ));
            }
            if names.contains(&n) {
                return Err(format!("model `{}`: two files named {n:?}", self.name));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("model `{}`: sha256 of {n} is not 64 lower-case hex digits", self.name));
            }
            names.push(n);
        }
        if !names.contains(&self.load_file()) {
            return Err(format!("model `{}`: `load` names {:?}, not one of its files", self.name, self.load_file()));
        }
        Ok(())
    }
}

/// A model name: lower-case letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a model name (lower-case letters, digits, `.`, `_` and `-`, at most 128, not starting with `.`)"
        ))
    }
}

/// A name that stays one plain file in the model's folder on every platform:
/// no separators, drive prefixes, streams or device names.
fn usable_file_name(n: &str) -> bool {
    let stem = n.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT")) && stem.len() == 4);
    !n.is_empty()
        && n.len() <= 255
        && !n.starts_with('.')
        && !reserved
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// Everything after the last `/` of a URL, before any query or fragment.
fn url_file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    registry_version: u32,
    #[serde(default)]
    replace: bool,
    models: Vec<Entry>,
}

/// The models of one or more registry documents; a later document's entry
/// replaces an earlier one of the same name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// The compiled-in registry alone.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        r.add_json(DEFAULT_REGISTRY.as_bytes(), "the compiled-in registry").expect("the compiled-in registry parses");
        r
    }

    /// The compiled-in registry, then those of [`REGISTRY_ENV`], then each of
    /// `sources` (a file, or an http(s) URL with the `download` feature); a
    /// later one wins.
    /// Fetched registries are not cached: without the network, name an
    /// installed model or a file.
    pub fn load(sources: &[String]) -> Result<Self> {
        let mut r = Self::builtin();
        let env = std::env::var(REGISTRY_ENV).unwrap_or_default();
        for src in env.split_whitespace().map(str::to_string).chain(sources.iter().cloned()) {
            let bytes = read_source(&src)?;
            r.add_json(&bytes, &src)?;
        }
        Ok(r)
    }

    /// [`Registry::load`] without the network: registries named by URL (in
    /// [`REGISTRY_ENV`] or `sources`) are skipped.
    pub fn load_local(sources: &[String]) -> Result<Self> {
        let mut r = Self::builtin();
        let env = std::env::var(REGISTRY_ENV).unwrap_or_default();
        let all = env.split_whitespace().map(str::to_string).chain(sources.iter().cloned());
        for src in all.filter(|s| !(s.starts_with("https://") || s.starts_with("http://"))) {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            r.add_json(&bytes, &src)?;
        }
        Ok(r)
    }

    /// Adds one registry document; `origin` names it in errors.
    pub fn add_json(&mut self, json: &[u8], origin: &str) -> Result<()> {
        let bad = |detail: String| Error::Registry { origin: origin.to_string(), detail };
        let doc: Document = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if doc.registry_version == 0 || doc.registry_version > REGISTRY_VERSION {
            return Err(bad(format!(
                "registry_version {} (this build reads 1 to {REGISTRY_VERSION})",
                doc.registry_version
            )));
        }
        let mut seen = Vec::new();
        for e in &doc.models {
            e.validate().map_err(bad)?;
            if seen.contains(&&e.name) {
                return Err(bad(format!("model `{}` is listed twice", e.name)));
            }
            seen.push(&e.name);
        }
        if doc.replace {
            self.entries.clear();
        }
        for e in doc.models {
            self.entries.retain(|old| old.name != e.name);
            self.entries.push(e);
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry of `name`, or [`Error::UnknownModel`] listing the names there are.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.get(name).ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            available: self.entries.iter().map(|e| e.name.clone()).collect(),
        })
    }

    /// The entry `target` names: a model name, or the URL of one of its files
    /// ([`Registry::entry_for_url`]).
    pub fn lookup(&self, target: &str) -> Result<&Entry> {
        if target.starts_with("https://") || target.starts_with("http://") {
            self.entry_for_url(target)
        } else {
            self.entry(target)
        }
    }

    /// The entry for a bare URL (`model pull https://…/x.onnx`): the registry's
    /// entry that lists that URL, when one does. A URL no registry lists has no
    /// checksum to verify against, so it is refused.
    pub fn entry_for_url(&self, url: &str) -> Result<&Entry> {
        self.entries.iter().find(|e| e.files.iter().any(|f| f.url == url)).ok_or_else(|| Error::Registry {
            origin: url.to_string(),
            detail: "no registry lists this URL, so there is no checksum to verify it against; \
                     add an entry for it to a registry (--registry FILE) and pull it by name"
                .into(),
        })
    }
}

/// What a model name means to [`crate::load_separator`] (and so to every
/// binding): the path that opens the model installed under that name in
/// [`ModelCache::from_env`]'s cache. `None` when `spec` is not shaped like a
/// name, or no model of that name is installed or listed (a built-in's name,
/// say); [`Error::ModelNotInstalled`] when a registry lists it but the cache
/// lacks it. Never touches the network.
pub fn installed_path(spec: &str) -> Result<Option<std::path::PathBuf>> {
    if check_name(spec).is_err() {
        return Ok(None);
    }
    let Ok(cache) = ModelCache::from_env() else { return Ok(None) };
    if let Some(m) = cache.get(spec)? {
        return Ok(Some(m.load_path()));
    }
    let registry = Registry::load_local(&[])?;
    if registry.get(spec).is_none() {
        return Ok(None);
    }
    cache.resolve(spec, &registry).map(Some)
}

/// A model as `model list` shows it: its entry, its size, and where it is
/// installed if it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub entry: Entry,
    /// Bytes of all its files.
    pub size: u64,
    pub installed: bool,
    /// The path that opens it, when installed.
    pub path: Option<std::path::PathBuf>,
}

/// The models of `registry` (every installed one alone when `None`), each
/// marked installed or not; installed models no registry lists come last.
pub fn list(cache: &ModelCache, registry: Option<&Registry>) -> Result<Vec<Listed>> {
    let installed = cache.installed()?;
    let listed = |entry: &Entry, at: Option<&Installed>| Listed {
        entry: entry.clone(),
        size: entry.files.iter().map(|f| f.size).sum(),
        installed: at.is_some(),
        path: at.map(Installed::load_path),
    };
    let mut out: Vec<Listed> = registry
        .map(|r| r.entries().iter().map(|e| listed(e, installed.iter().find(|m| m.entry.name == e.name))).collect())
        .unwrap_or_default();
    for m in &installed {
        if !out.iter().any(|l| l.entry.name == m.entry.name) {
            out.push(listed(&m.entry, Some(m)));
        }
    }
    Ok(out)
}

/// The bytes of a registry named by a path or an http(s) URL.
fn read_source(src: &str) -> Result<Vec<u8>> {
    if src.starts_with("https://") {
        return fetch::get_small(src, 16 << 20);
    }
    if let Some(rest) = src.strip_prefix("http://") {
        // A registry holds the checksums everything else is verified against:
        // plain HTTP only where nobody sits between (this machine).
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
            return Err(Error::Registry {
                origin: src.to_string(),
                detail: "a registry over plain HTTP could be altered on the way; serve it over HTTPS".into(),
            });
        }
        return fetch::get_small(src, 16 << 20);
    }
    std::fs::read(Path::new(src)).map_err(|e| Error::io(src, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_is_valid() {
        let r = Registry::builtin();
        assert!(!r.entries().is_empty());
        for e in r.entries() {
            e.validate().unwrap();
            assert_eq!(e.family, Family::Mdx, "{}", e.name);
        }
    }

    #[test]
    fn later_documents_replace_entries_and_replace_hides_earlier() {
        let doc = |name: &str, replace: bool| {
            format!(
                r#"{{"registry_version": 1, "replace": {replace}, "models": [{{"name": "{name}", "family": "mdx",
                "stems": ["a", "b"], "license": "MIT", "files": [{{"url": "http://h/x.onnx", "size": 1,
                "sha256": "{}"}}]}}]}}"#,
                "0".repeat(64)
            )
        };
        let mut r = Registry::builtin();
        let n = r.entries().len();
        r.add_json(doc("mine", false).as_bytes(), "a").unwrap();
        assert_eq!(r.entries().len(), n + 1);
        r.add_json(doc("mine", false).as_bytes(), "b").unwrap();
        assert_eq!(r.entries().len(), n + 1);
        r.add_json(doc("only", true).as_bytes(), "c").unwrap();
        assert_eq!(r.entries().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["only"]);
        let Err(Error::UnknownModel { available, .. }) = r.entry("mine") else { panic!() };
        assert_eq!(available, ["only"]);
    }

    #[test]
    fn malformed_documents_are_typed_errors() {
        let mut r = Registry::default();
        for (json, needle) in [
            ("{", "EOF"),
            (r#"{"registry_version": 9, "models": []}"#, "registry_version 9"),
            (r#"{"registry_version": 1, "models": [], "extra": 1}"#, "unknown field"),
            (
                r#"{"registry_version": 1, "models": [{"name": "Bad Name", "family": "mdx", "stems": ["a"],
                  "license": "MIT", "files": []}]}"#,
                "not a model name",
            ),
            (
                r#"{"registry_version": 1, "models": [{"name": "x", "family": "mdx", "stems": ["a"],
                  "license": "MIT", "files": [{"url": "http://h/../", "size": 1, "sha256": "00"}]}]}"#,
                "unusable file name",
            ),
            (
                r#"{"registry_version": 1, "models": [{"name": "x", "family": "mdx", "stems": ["a"],
                  "license": "MIT", "files": [{"url": "http://h/a", "size": 1, "sha256": "00"}]}]}"#,
                "sha256",
            ),
            (
                r#"{"registry_version": 1, "models": [{"name": "x", "family": "mdx", "stems": ["a"],
                  "license": "MIT", "files": [{"url": "file:///etc/passwd", "size": 1, "sha256": "00"}]}]}"#,
                "not an http(s) URL",
            ),
        ] {
            let e = r.add_json(json.as_bytes(), "t").unwrap_err();
            assert!(matches!(e, Error::Registry { .. }), "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
        assert!(r.entries().is_empty());
    }

    #[test]
    fn file_names_come_from_the_url_or_path() {
        let f = RemoteFile { url: "https://h/a/b/m.onnx?x=1#y".into(), size: 1, sha256: String::new(), path: None };
        assert_eq!(f.file_name(), "m.onnx");
        let f = RemoteFile { path: Some("n.onnx".into()), ..f };
        assert_eq!(f.file_name(), "n.onnx");
    }
}
