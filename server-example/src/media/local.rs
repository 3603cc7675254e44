//! The local-disk store: objects as files under `<data_dir>/objects`, parts of
//! multipart uploads under `<data_dir>/multipart`, and URLs the API signs to
//! itself (HMAC-SHA256 over method, path and query, with an expiry) and
//! serves under `/storage/o/…`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use splitsound_core::PendingFile;

use super::store::{
    ENCODE_SET, GetOptions, PartEtag, StoreError, StoreResult, StoredObject, check_key, found, io_err, unix_now,
};
use crate::error::StartupError;

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

    pub(super) async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        check_key(key)?;
        let id = crate::db::new_id();
        tokio::fs::create_dir_all(self.upload_dir(&id)?).await.map_err(io_err)?;
        Ok(id)
    }

    pub(super) fn presign_part(&self, key: &str, upload: &str, part: i32, ttl: Duration) -> String {
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

    pub(super) async fn complete_multipart(&self, key: &str, upload: &str, parts: &[PartEtag]) -> StoreResult<()> {
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

    pub(super) async fn abort_multipart(&self, upload: &str) -> StoreResult<()> {
        found(tokio::fs::remove_dir_all(self.upload_dir(upload)?).await.map_err(io_err)).map(drop)
    }

    pub(super) async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        Ok(found(tokio::fs::metadata(self.object_path(key)?).await.map_err(io_err))?.map(|m| m.len()))
    }

    pub(super) async fn download(&self, key: &str, dest: &Path) -> StoreResult<()> {
        tokio::fs::copy(self.object_path(key)?, dest).await.map_err(io_err)?;
        Ok(())
    }

    pub(super) async fn upload_file(&self, key: &str, src: &Path) -> StoreResult<()> {
        let src = src.to_path_buf();
        write_atomic(self.object_path(key)?, move |out| std::io::copy(&mut std::fs::File::open(&src)?, out).map(drop))
            .await
    }

    pub(super) async fn delete(&self, key: &str) -> StoreResult<()> {
        found(tokio::fs::remove_file(self.object_path(key)?).await.map_err(io_err)).map(drop)
    }

    pub(super) async fn sweep_partials(&self, cutoff: std::time::SystemTime) -> StoreResult<usize> {
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

    pub(super) async fn list(&self, prefix: &str) -> StoreResult<Vec<StoredObject>> {
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

    pub(super) fn presign_get(&self, key: &str, ttl: Duration, opts: &GetOptions) -> String {
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

    pub(super) async fn check(&self) -> StoreResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
