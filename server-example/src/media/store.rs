//! Object storage: originals and outputs, never in the database. Clients move
//! the bytes themselves through presigned URLs: parts of a multipart upload
//! in, previews and downloads out. Two backends:
//!
//! - [`Store::Local`]: files under a folder; the API signs URLs to itself
//!   (HMAC-SHA256, with an expiry) and serves them under `/storage/o/…`.
//! - [`Store::S3`]: any S3-compatible server through `aws-sdk-s3`. The SDK
//!   presigns UploadPart and GetObject; the server calls
//!   CreateMultipartUpload and CompleteMultipartUpload itself.

use std::path::Path;
use std::time::Duration;

pub use super::local::{LocalStore, SignatureError};
pub use super::s3::S3Store;

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
pub(super) const ENCODE_SET: &percent_encoding::AsciiSet =
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

pub(super) fn check_key(key: &str) -> StoreResult<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/+".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::Rejected(format!("invalid object key {key:?}"))) }
}

/// `NotFound` as `None`: for deletes and lookups, where a missing object is an answer.
pub(super) fn found<T>(r: StoreResult<T>) -> StoreResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn io_err(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound { StoreError::NotFound } else { StoreError::Unavailable(e.to_string()) }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
