//! Any S3-compatible store through `aws-sdk-s3`. The SDK presigns
//! UploadPart and GetObject; the server calls CreateMultipartUpload and
//! CompleteMultipartUpload itself.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};

use super::store::{GetOptions, PartEtag, StoreError, StoreResult, StoredObject, check_key, found, io_err};
use crate::error::StartupError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible servers (`http://127.0.0.1:9000`); AWS's own endpoint when absent.
    pub endpoint: Option<String>,
    /// `http://host/bucket/key` instead of `http://bucket.host/key`.
    pub path_style: bool,
    /// Credentials; `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` when absent.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Create the bucket at start if it does not exist (test servers).
    pub create_bucket: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: "splitsound".into(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            create_bucket: false,
        }
    }
}

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

    pub(super) async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
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

    pub(super) async fn presign_part(&self, key: &str, upload: &str, part: i32, ttl: Duration) -> StoreResult<String> {
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

    pub(super) async fn complete_multipart(&self, key: &str, upload: &str, parts: &[PartEtag]) -> StoreResult<()> {
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

    pub(super) async fn abort_multipart(&self, key: &str, upload: &str) -> StoreResult<()> {
        let r = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload).send().await;
        found(r.map_err(sdk_err)).map(drop)
    }

    pub(super) async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        let r = self.client.head_object().bucket(&self.bucket).key(key).send().await;
        Ok(found(r.map_err(sdk_err))?.map(|out| out.content_length().unwrap_or(0).max(0) as u64))
    }

    pub(super) async fn download(&self, key: &str, dest: &Path) -> StoreResult<()> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(sdk_err)?;
        let mut reader = out.body.into_async_read();
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err)?;
        tokio::io::copy(&mut reader, &mut file).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        file.sync_all().await.map_err(io_err)?;
        Ok(())
    }

    pub(super) async fn upload_file(&self, key: &str, src: &Path, content_type: &str) -> StoreResult<()> {
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

    pub(super) async fn delete(&self, key: &str) -> StoreResult<()> {
        let r = self.client.delete_object().bucket(&self.bucket).key(key).send().await;
        found(r.map_err(sdk_err)).map(drop)
    }

    pub(super) async fn list(&self, prefix: &str) -> StoreResult<Vec<StoredObject>> {
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

    pub(super) async fn presign_get(&self, key: &str, ttl: Duration, opts: &GetOptions) -> StoreResult<String> {
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

    pub(super) async fn check(&self) -> StoreResult<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(sdk_err)?;
        Ok(())
    }
}
