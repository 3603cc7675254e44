//! Object storage: originals and outputs, never in the database. Clients move
//! the bytes themselves through presigned URLs: parts of a multipart upload
//! in, previews and downloads out. Two backends:
//!
//! - [`Store::Local`]: files under a folder; the API signs URLs to itself
//!   (HMAC-SHA256, with an expiry) and serves them under `/storage/o/…`.
//! - [`Store::S3`]: any S3-compatible server through `aws-sdk-s3`. The SDK
//!   presigns UploadPart and GetObject; the server calls
//!   CreateMultipartUpload and CompleteMultipartUpload itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use splitsound_core::PendingFile;
use std::io::Write;

use crate::config::S3Config;
use crate::error::StartupError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such object")]
    NotFound,
    /// The client's fault: a part missing, an ETag that does not match, a part too small.
    #[error("{0}")]
    Rejected(String),
    /// The store did not answer or failed; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    /// When it was last written.
    pub modified: std::time::SystemTime,
}

/// A part the client says it uploaded.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct PartEtag {
    pub part_number: i32,
    pub etag: String,
}

/// How a presigned GET presents the object.
#[derive(Debug, Clone)]
pub struct GetOptions {
    pub content_type: String,
    /// `inline` (play in the page) or `attachment` (save as `filename`).
    pub attachment: bool,
    pub filename: String,
}

impl GetOptions {
    pub fn content_disposition(&self) -> String {
        let kind = if self.attachment { "attachment" } else { "inline" };
        // The plain filename for old clients, the RFC 5987 one for the rest.
        let ascii: String = self
            .filename
            .chars()
            .map(|c| if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' { c } else { '_' })
            .collect();
        let encoded = percent_encoding::utf8_percent_encode(&self.filename, ENCODE_SET);
        format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    }
}

/// Everything but RFC 3986's unreserved characters.
const ENCODE_SET: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl Store {
    pub async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        match self {
            Store::Local(s) => s.create_multipart(key).await,
            Store::S3(s) => s.create_multipart(key, content_type).await,
        }
    }
    pub async fn presign_part(&self, key: &str, upload: &str, part: i32, ttl: Duration) -> StoreResult<String> {
        match self {
            Store::Local(s) => Ok(s.presign_part(key, upload, part, ttl)),
            Store::S3(s) => s.presign_part(key, upload, part, ttl).await,
        }
    }
    pub async fn complete_multipart(&self, key: &str, upload: &str, parts: &[PartEtag]) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.complete_multipart(key, upload, parts).await,
            Store::S3(s) => s.complete_multipart(key, upload, parts).await,
        }
    }
    pub async fn abort_multipart(&self, key: &str, upload: &str) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.abort_multipart(upload).await,
            Store::S3(s) => s.abort_multipart(key, upload).await,
        }
    }
    /// The object's size, `None` if there is none.
    pub async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        match self {
            Store::Local(s) => s.size(key).await,
            Store::S3(s) => s.size(key).await,
        }
    }
    pub async fn download(&self, key: &str, dest: &Path) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.download(key, dest).await,
            Store::S3(s) => s.download(key, dest).await,
        }
    }
    pub async fn upload_file(&self, key: &str, src: &Path, content_type: &str) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.upload_file(key, src).await,
            Store::S3(s) => s.upload_file(key, src, content_type).await,
        }
    }
    /// Deletes the object; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.delete(key).await,
            Store::S3(s) => s.delete(key).await,
        }
    }
    pub async fn presign_get(&self, key: &str, ttl: Duration, opts: &GetOptions) -> StoreResult<String> {
        match self {
            Store::Local(s) => Ok(s.presign_get(key, ttl, opts)),
            Store::S3(s) => s.presign_get(key, ttl, opts).await,
        }
    }
    /// The keys of the objects under `prefix` (all of them for `""`), sorted.
    pub async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Ok(self.list_objects(prefix).await?.into_iter().map(|o| o.key).collect())
    }
    /// The objects under `prefix` with when each was last written, sorted by key.
    pub async fn list_objects(&self, prefix: &str) -> StoreResult<Vec<StoredObject>> {
        let mut objects = match self {
            Store::Local(s) => s.list(prefix).await?,
            Store::S3(s) => s.list(prefix).await?,
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }
    /// Deletes temporary files of writes that never finished (a process
    /// killed mid-write) last touched before `cutoff`; S3's writes leave none.
    pub async fn sweep_partials(&self, cutoff: std::time::SystemTime) -> StoreResult<usize> {
        match self {
            Store::Local(s) => s.sweep_partials(cutoff).await,
            Store::S3(_) => Ok(0),
        }
    }
    /// Whether the store answers (for `/health`).
    pub async fn check(&self) -> StoreResult<()> {
        match self {
            Store::Local(s) => s.check().await,
            Store::S3(s) => s.check().await,
        }
    }
}

/// The last answer of a probe, reused while it is fresh, so that a busy
/// `/health` does not write a file (or call S3) on every request. Callers
/// that arrive while a probe runs wait for its answer instead of starting another.
#[derive(Debug, Default)]
pub struct CachedCheck {
    last: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

impl CachedCheck {
    pub async fn get<F, Fut>(&self, max_age: Duration, probe: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = StoreResult<()>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < max_age
        {
            return answer.clone();
        }
        let answer = probe().await.map_err(|e| e.to_string());
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }
}

fn check_key(key: &str) -> StoreResult<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/+".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::Rejected(format!("invalid object key {key:?}"))) }
}

/// Object keys carry only `[A-Za-z0-9._-]` from a user's file name.
pub fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "file".into() } else { s.chars().take(100).collect() }
}

/// The longest display name kept, in characters (the extension is kept whole).
const DISPLAY_NAME_CHARS: usize = 120;

/// A user's file name made safe to show and to offer as a download name,
/// once, when the upload starts: only its last path component (`/` and `\`
/// both separate), without control characters, bidirectional overrides or
/// invisible format characters, with the characters Windows forbids in file
/// names replaced, whitespace collapsed, no leading dots, no trailing dots
/// or spaces, and at most [`DISPLAY_NAME_CHARS`] characters; `upload` when
/// nothing is left.
pub fn display_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(last.len());
    for c in last.chars() {
        // Controls, and the format and filler characters that render as nothing
        // (or reorder what follows: the bidirectional ones).
        let invisible = c.is_control()
            || matches!(
                c,
                '\u{00AD}'
                    | '\u{061C}'
                    | '\u{115F}'
                    | '\u{1160}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}'
                    | '\u{3164}'
                    | '\u{FEFF}'
                    | '\u{FFA0}'
                    | '\u{FFF9}'..='\u{FFFB}'
                    | '\u{E0000}'..='\u{E007F}'
            );
        if invisible {
            continue;
        }
        let c = if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c };
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']);
    let name = if trimmed.chars().count() <= DISPLAY_NAME_CHARS {
        trimmed.to_string()
    } else {
        // Keep a short extension whole and cut the stem.
        let (stem, ext) = match trimmed.rsplit_once('.') {
            Some((stem, ext)) if !ext.is_empty() && ext.chars().count() <= 10 && !stem.is_empty() => (stem, Some(ext)),
            _ => (trimmed, None),
        };
        let keep = DISPLAY_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
        let stem: String = stem.chars().take(keep).collect();
        let stem = stem.trim_end_matches(['.', ' ']);
        match ext {
            Some(e) => format!("{stem}.{e}"),
            None => stem.to_string(),
        }
    };
    if name.is_empty() {
        return "upload".into();
    }
    // Windows' device names (CON, NUL, COM1, …) cannot be saved as files there.
    let stem = name.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    if reserved { format!("_{name}") } else { name }
}

/// `NotFound` as `None`: for deletes and lookups, where a missing object is an answer.
fn found<T>(r: StoreResult<T>) -> StoreResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound { StoreError::NotFound } else { StoreError::Unavailable(e.to_string()) }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------
// Local disk

/// Objects as files under `root/objects`, parts under `root/multipart`
/// (`root` is the server's `data_dir`).
#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    base_url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("root", &self.root).field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// Why a signed local URL was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Invalid,
    Expired,
}

impl LocalStore {
    /// `base_url` is the API's public address; `secret` signs the URLs.
    pub fn new(root: PathBuf, base_url: &str, secret: Vec<u8>) -> Result<LocalStore, StartupError> {
        move_nested_layout(&root)?;
        std::fs::create_dir_all(root.join("objects"))?;
        std::fs::create_dir_all(root.join("multipart"))?;
        Ok(LocalStore { root, base_url: base_url.trim_end_matches('/').to_string(), secret })
    }

    fn object_path(&self, key: &str) -> StoreResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join("objects").join(key))
    }

    fn upload_dir(&self, upload: &str) -> StoreResult<PathBuf> {
        if upload.is_empty() || !upload.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::Rejected("invalid upload id".into()));
        }
        Ok(self.root.join("multipart").join(upload))
    }

    fn sign(&self, method: &str, path: &str, query: &str) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("{method}\n{path}\n{query}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn signed_url(&self, method: &str, key: &str, params: &[(&str, String)], ttl: Duration) -> String {
        let path = format!("/storage/o/{key}");
        let mut query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, ENCODE_SET)))
            .collect();
        query.push(format!("X-Expires={}", unix_now() + ttl.as_secs()));
        let query = query.join("&");
        let sig = self.sign(method, &path, &query);
        format!("{}{path}?{query}&X-Signature={sig}", self.base_url)
    }

    /// Checks a request to `path?query` signed by [`LocalStore::signed_url`]:
    /// the signature is the last parameter and covers everything before it.
    pub fn verify(&self, method: &str, path: &str, query: &str) -> Result<(), SignatureError> {
        let (signed, sig) = query.rsplit_once("&X-Signature=").ok_or(SignatureError::Missing)?;
        let sig = hex::decode(sig).map_err(|_| SignatureError::Invalid)?;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("{method}\n{path}\n{signed}").as_bytes());
        mac.verify_slice(&sig).map_err(|_| SignatureError::Invalid)?;
        let expires = signed
            .split('&')
            .find_map(|kv| kv.strip_prefix("X-Expires="))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(SignatureError::Invalid)?;
        if unix_now() > expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        check_key(key)?;
        let id = crate::db::new_id();
        tokio::fs::create_dir_all(self.upload_dir(&id)?).await.map_err(io_err)?;
        Ok(id)
    }

    fn presign_part(&self, key: &str, upload: &str, part: i32, ttl: Duration) -> String {
        self.signed_url("PUT", key, &[("X-Upload", upload.to_string()), ("X-Part", part.to_string())], ttl)
    }

    /// Stores one part (the handler of a presigned PUT); returns its ETag.
    pub async fn put_part(
        &self,
        upload: &str,
        part: i32,
        bytes: impl AsRef<[u8]> + Send + 'static,
    ) -> StoreResult<String> {
        let dir = self.upload_dir(upload)?;
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(StoreError::NotFound);
        }
        if !(1..=10000).contains(&part) {
            return Err(StoreError::Rejected(format!("part number {part} is outside 1..=10000")));
        }
        let etag = hex::encode(&Sha256::digest(bytes.as_ref())[..16]);
        write_atomic(dir.join(format!("{part}.part")), move |f| f.write_all(bytes.as_ref())).await?;
        let tag = etag.clone();
        write_atomic(dir.join(format!("{part}.etag")), move |f| f.write_all(tag.as_bytes())).await?;
        Ok(format!("\"{etag}\""))
    }

    async fn complete_multipart(&self, key: &str, upload: &str, parts: &[PartEtag]) -> StoreResult<()> {
        let dir = self.upload_dir(upload)?;
        let dest = self.object_path(key)?;
        if parts.is_empty() || parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
            return Err(StoreError::Rejected("parts must be listed once each, in ascending order".into()));
        }
        // As S3 answers NoSuchUpload: the upload was completed (or aborted) already.
        if !tokio::fs::try_exists(&dir).await.map_err(io_err)? {
            return Err(StoreError::NotFound);
        }
        let mut paths = Vec::with_capacity(parts.len());
        for p in parts {
            let stored = match tokio::fs::read_to_string(dir.join(format!("{}.etag", p.part_number))).await {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Rejected(format!("part {} was not uploaded", p.part_number)));
                }
                Err(e) => return Err(io_err(e)),
            };
            if stored != p.etag.trim_matches('"') {
                return Err(StoreError::Rejected(format!("part {}: ETag does not match", p.part_number)));
            }
            paths.push(dir.join(format!("{}.part", p.part_number)));
        }
        write_atomic(dest, move |out| {
            for path in &paths {
                std::io::copy(&mut std::fs::File::open(path)?, out)?;
            }
            Ok(())
        })
        .await?;
        remove_upload_dir(&dir).await;
        Ok(())
    }

    async fn abort_multipart(&self, upload: &str) -> StoreResult<()> {
        found(tokio::fs::remove_dir_all(self.upload_dir(upload)?).await.map_err(io_err)).map(drop)
    }

    async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        Ok(found(tokio::fs::metadata(self.object_path(key)?).await.map_err(io_err))?.map(|m| m.len()))
    }

    async fn download(&self, key: &str, dest: &Path) -> StoreResult<()> {
        tokio::fs::copy(self.object_path(key)?, dest).await.map_err(io_err)?;
        Ok(())
    }

    async fn upload_file(&self, key: &str, src: &Path) -> StoreResult<()> {
        let src = src.to_path_buf();
        write_atomic(self.object_path(key)?, move |out| std::io::copy(&mut std::fs::File::open(&src)?, out).map(drop))
            .await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        found(tokio::fs::remove_file(self.object_path(key)?).await.map_err(io_err)).map(drop)
    }

    async fn sweep_partials(&self, cutoff: std::time::SystemTime) -> StoreResult<usize> {
        let root = self.root.join("objects");
        let parts = self.root.join("multipart");
        blocking(move || {
            let mut deleted = 0;
            // Multipart folders a process was killed while removing (remove_upload_dir).
            for e in std::fs::read_dir(&parts)? {
                let e = e?;
                if e.path().extension().is_some_and(|x| x == "removing") {
                    std::fs::remove_dir_all(e.path())?;
                    deleted += 1;
                }
            }
            for_each_file(&root, |e, partial| {
                if partial && e.metadata()?.modified()? < cutoff {
                    std::fs::remove_file(e.path())?;
                    deleted += 1;
                }
                Ok(())
            })?;
            Ok(deleted)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<StoredObject>> {
        let root = self.root.join("objects");
        let prefix = prefix.to_string();
        blocking(move || {
            let mut objects = Vec::new();
            for_each_file(&root, |e, partial| {
                let path = e.path();
                if !partial && let Ok(rel) = path.strip_prefix(&root) {
                    let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                    if key.starts_with(&prefix) {
                        match e.metadata().and_then(|m| m.modified()) {
                            Ok(modified) => objects.push(StoredObject { key, modified }),
                            // Deleted since the directory was read: not there.
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(())
            })?;
            Ok(objects)
        })
        .await
    }

    fn presign_get(&self, key: &str, ttl: Duration, opts: &GetOptions) -> String {
        self.signed_url(
            "GET",
            key,
            &[("X-Content-Type", opts.content_type.clone()), ("X-Disposition", opts.content_disposition())],
            ttl,
        )
    }

    /// The file behind a verified GET.
    pub fn open_path(&self, key: &str) -> StoreResult<PathBuf> {
        self.object_path(key)
    }

    async fn check(&self) -> StoreResult<()> {
        // Beside the objects, not among them: a listing must show objects only.
        let probe = self.root.join(".health");
        write_atomic(probe, |f| f.write_all(b"ok")).await
    }
}

/// Removes a multipart upload's folder all at once: renamed away first, so a
/// process killed half-way leaves either the whole folder or none of it under
/// its name (a half-deleted one would make the upload neither completable nor
/// known to be done).
async fn remove_upload_dir(dir: &Path) {
    let tomb = dir.with_extension("removing");
    if tokio::fs::rename(dir, &tomb).await.is_ok() {
        let _ = tokio::fs::remove_dir_all(&tomb).await;
    }
}

/// Earlier versions kept objects under `<data_dir>/objects/objects` and parts
/// under `<data_dir>/objects/multipart`; this moves them to where they belong.
fn move_nested_layout(root: &Path) -> std::io::Result<()> {
    let old = root.join("objects");
    for (from, to) in [(old.join("objects"), old.clone()), (old.join("multipart"), root.join("multipart"))] {
        if !from.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&to)?;
        for e in std::fs::read_dir(&from)? {
            let e = e?;
            let dest = to.join(e.file_name());
            if dest.exists() {
                return Err(std::io::Error::other(format!(
                    "cannot move {} to {}: it exists",
                    e.path().display(),
                    dest.display()
                )));
            }
            std::fs::rename(e.path(), dest)?;
        }
        std::fs::remove_dir(&from)?;
    }
    let _ = std::fs::remove_file(old.join(".health"));
    Ok(())
}

/// Calls `visit` with every file under `root`, at any depth, and whether it is
/// the temporary file of an unfinished write ([`PendingFile::is_temp_name`]).
fn for_each_file(
    root: &Path,
    mut visit: impl FnMut(&std::fs::DirEntry, bool) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                dirs.push(e.path());
            } else {
                visit(&e, PendingFile::is_temp_name(&e.file_name().to_string_lossy()))?;
            }
        }
    }
    Ok(())
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Unavailable(e.to_string()))?.map_err(io_err)
}

/// Writes `dest` the way every splitsound output is written (core's
/// [`PendingFile`]: a temporary file beside it, synced, then renamed), on a
/// blocking thread; `fill` writes the content.
async fn write_atomic<F>(dest: PathBuf, fill: F) -> StoreResult<()>
where
    F: FnOnce(&mut std::fs::File) -> std::io::Result<()> + Send + 'static,
{
    let core_err = |e: splitsound_core::Error| StoreError::Unavailable(e.to_string());
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let (pending, mut f) = PendingFile::create(&dest).map_err(core_err)?;
        fill(&mut f).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        pending.commit().map_err(core_err)?;
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Unavailable(e.to_string()))?
}

// ---------------------------------------------------------------------------
// S3

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

/// Credentials from the configuration, else from the standard variables.
pub fn aws_credentials(key: Option<&str>, secret: Option<&str>) -> Result<Credentials, StartupError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let key = key.map(str::to_string).or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret = secret.map(str::to_string).or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    match (key, secret) {
        (Some(k), Some(s)) => Ok(Credentials::new(k, s, env("AWS_SESSION_TOKEN"), None, "splitsound-config")),
        _ => Err(StartupError::Config(
            "AWS credentials: set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into(),
        )),
    }
}

fn sdk_err<E>(e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> StoreError
where
    E: std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    let status = match &e {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        _ => None,
    };
    let msg = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    match status {
        Some(404) => StoreError::NotFound,
        Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => StoreError::Rejected(msg),
        _ => StoreError::Unavailable(msg),
    }
}

impl S3Store {
    pub async fn new(cfg: &S3Config) -> Result<S3Store, StartupError> {
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(aws_credentials(cfg.access_key_id.as_deref(), cfg.secret_access_key.as_deref())?)
            .force_path_style(cfg.path_style)
            // Checksums only where S3 requires them: a presigned part must not
            // demand a checksum header the browser does not send.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        let store = S3Store { client: aws_sdk_s3::Client::from_conf(b.build()), bucket: cfg.bucket.clone() };
        if cfg.create_bucket && store.client.head_bucket().bucket(&store.bucket).send().await.is_err() {
            store
                .client
                .create_bucket()
                .bucket(&store.bucket)
                .send()
                .await
                .map_err(|e| StartupError::Storage(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
        }
        Ok(store)
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        check_key(key)?;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(sdk_err)?;
        out.upload_id().map(str::to_string).ok_or_else(|| StoreError::Unavailable("no upload id in the answer".into()))
    }

    async fn presign_part(&self, key: &str, upload: &str, part: i32, ttl: Duration) -> StoreResult<String> {
        let cfg = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(part)
            .presigned(cfg)
            .await
            .map_err(sdk_err)?;
        Ok(req.uri().to_string())
    }

    async fn complete_multipart(&self, key: &str, upload: &str, parts: &[PartEtag]) -> StoreResult<()> {
        let parts = parts
            .iter()
            .map(|p| CompletedPart::builder().part_number(p.part_number).e_tag(&p.etag).build())
            .collect::<Vec<_>>();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload: &str) -> StoreResult<()> {
        let r = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload).send().await;
        found(r.map_err(sdk_err)).map(drop)
    }

    async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        let r = self.client.head_object().bucket(&self.bucket).key(key).send().await;
        Ok(found(r.map_err(sdk_err))?.map(|out| out.content_length().unwrap_or(0).max(0) as u64))
    }

    async fn download(&self, key: &str, dest: &Path) -> StoreResult<()> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(sdk_err)?;
        let mut reader = out.body.into_async_read();
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err)?;
        tokio::io::copy(&mut reader, &mut file).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        file.sync_all().await.map_err(io_err)?;
        Ok(())
    }

    async fn upload_file(&self, key: &str, src: &Path, content_type: &str) -> StoreResult<()> {
        check_key(key)?;
        let body = ByteStream::from_path(src).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let r = self.client.delete_object().bucket(&self.bucket).key(key).send().await;
        found(r.map_err(sdk_err)).map(drop)
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<StoredObject>> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let mut req = self.client.list_objects_v2().bucket(&self.bucket);
            if !prefix.is_empty() {
                req = req.prefix(prefix);
            }
            let out = req.set_continuation_token(token).send().await.map_err(sdk_err)?;
            objects.extend(out.contents().iter().filter_map(|o| {
                let modified = o.last_modified().and_then(|t| std::time::SystemTime::try_from(*t).ok());
                Some(StoredObject {
                    key: o.key()?.to_string(),
                    // A listing without a time is treated as written now: kept for the grace period.
                    modified: modified.unwrap_or_else(std::time::SystemTime::now),
                })
            }));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(objects)
    }

    async fn presign_get(&self, key: &str, ttl: Duration, opts: &GetOptions) -> StoreResult<String> {
        let cfg = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(&opts.content_type)
            .response_content_disposition(opts.content_disposition())
            .presigned(cfg)
            .await
            .map_err(sdk_err)?;
        Ok(req.uri().to_string())
    }

    async fn check(&self) -> StoreResult<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(sdk_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_safe() {
        assert_eq!(display_name("song.flac"), "song.flac");
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\Windows\\win.ini"), "win.ini");
        assert_eq!(display_name("a/b/"), "upload");
        assert_eq!(display_name("..."), "upload");
        assert_eq!(display_name(".hidden.wav"), "hidden.wav");
        assert_eq!(display_name("a\0b\r\nc\td.wav"), "abcd.wav");
        assert_eq!(display_name("  two   words  .mp3 "), "two words .mp3");
        // A right-to-left override would show "song\u{202E}vaw.exe" as "songexe.wav".
        assert_eq!(display_name("song\u{202E}vaw.exe"), "songvaw.exe");
        assert_eq!(display_name("x\u{2066}y\u{200B}z\u{FEFF}.wav"), "xyz.wav");
        assert_eq!(display_name("a\u{00AD}b\u{E0041}c\u{3164}d\u{206F}.wav"), "abcd.wav");
        assert_eq!(display_name("con.wav"), "_con.wav");
        assert_eq!(display_name("LPT1"), "_LPT1");
        assert_eq!(display_name("COM0.wav"), "COM0.wav");
        assert_eq!(display_name("console.wav"), "console.wav");
        assert_eq!(display_name("what?<is>:this|\"*.wav"), "what__is__this___.wav");
        assert_eq!(display_name("Ünïcödé 音楽.flac"), "Ünïcödé 音楽.flac");
        let long = format!("{}.flac", "é".repeat(1000));
        let d = display_name(&long);
        assert_eq!(d.chars().count(), DISPLAY_NAME_CHARS);
        assert!(d.ends_with("é.flac"), "{d}");
        let no_ext = "x".repeat(1000);
        assert_eq!(display_name(&no_ext).len(), DISPLAY_NAME_CHARS);
        for name in ["../../etc/passwd", "a\r\nb", "\u{202E}", &long] {
            let d = display_name(name);
            assert!(!d.contains(['/', '\\']) && !d.chars().any(char::is_control), "{d:?}");
        }
    }

    #[tokio::test]
    async fn a_probe_is_reused_while_fresh() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let check = CachedCheck::default();
        let probes = AtomicUsize::new(0);
        let probe = || async {
            probes.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(StoreError::Unavailable("disk full".into()))
        };
        for _ in 0..200 {
            assert_eq!(check.get(Duration::from_secs(60), probe).await, Err("storage unavailable: disk full".into()));
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1, "200 calls, one probe");
        let _ = check.get(Duration::ZERO, probe).await;
        assert_eq!(probes.load(Ordering::SeqCst), 2, "a stale answer is probed again");
    }

    #[test]
    fn the_old_nested_layout_moves() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("objects/objects/user_a/originals/1")).unwrap();
        std::fs::write(root.join("objects/objects/user_a/originals/1/a.wav"), b"a").unwrap();
        std::fs::create_dir_all(root.join("objects/multipart/u1")).unwrap();
        std::fs::write(root.join("objects/multipart/u1/1"), b"p").unwrap();
        std::fs::write(root.join("objects/.health"), b"ok").unwrap();
        move_nested_layout(root).unwrap();
        assert_eq!(std::fs::read(root.join("objects/user_a/originals/1/a.wav")).unwrap(), b"a");
        assert_eq!(std::fs::read(root.join("multipart/u1/1")).unwrap(), b"p");
        assert!(!root.join("objects/objects").exists() && !root.join("objects/multipart").exists());
        assert!(!root.join("objects/.health").exists());
        // Again: nothing to do.
        move_nested_layout(root).unwrap();
        assert!(root.join("objects/user_a/originals/1/a.wav").exists());
    }
}
