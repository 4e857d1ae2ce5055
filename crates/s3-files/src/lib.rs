//! S3, through `aws-sdk-s3`: listing a prefix's objects (stage-import's preflight), reading an
//! object's start or all of it (its header checks, the embedded warehouse's loads), writing a
//! file as an object (pg-replicate's extracts for Snowflake). The SDK's
//! HTTP client runs on rustls with ring, the TLS stack every
//! job uses; the SDK retries transient failures itself (standard mode), so nothing here wraps
//! it in the kit's retry loop a second time.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use job_kit::{EnvVar, Kind, Secret};
use tokio::io::AsyncWriteExt;

/// An object below a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The key below the prefix `list` was given.
    pub path: String,
    pub size: u64,
    /// S3's ETag, unquoted.
    pub tag: String,
}

/// The S3 variables, the same in every job that reads or writes S3 (its config struct has the
/// fields of the same names).
pub const VARS: [EnvVar; 5] = [
    EnvVar::new(
        "AWS_ACCESS_KEY_ID",
        Kind::Text,
        "AWS access key for S3 (the stages' files)",
    ),
    EnvVar::new(
        "AWS_SECRET_ACCESS_KEY",
        Kind::Text,
        "AWS secret key for S3 (the stages' files)",
    )
    .secret(),
    EnvVar::new(
        "AWS_SESSION_TOKEN",
        Kind::Text,
        "AWS session token, with temporary keys",
    )
    .secret(),
    EnvVar::new("AWS_REGION", Kind::Text, "Region of the S3 buckets").default("us-east-1"),
    EnvVar::new(
        "S3_ENDPOINT_URL",
        Kind::HttpUrl,
        "An S3-compatible endpoint instead of AWS (addressed path-style)",
    ),
];

#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    /// An S3-compatible endpoint (MinIO, a test server); addressed path-style.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
}

pub struct S3 {
    client: aws_sdk_s3::Client,
    requests: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {message}")]
pub struct S3Error {
    pub bucket: String,
    pub key: String,
    pub message: String,
}

impl Settings {
    /// The settings from [`VARS`]' values; `None` without a key and its secret.
    pub fn from_values(
        region: &str,
        endpoint: Option<&String>,
        access_key_id: Option<&String>,
        secret_access_key: Option<&Secret<String>>,
        session_token: Option<&Secret<String>>,
    ) -> Option<Settings> {
        Some(Settings {
            region: region.to_owned(),
            endpoint: endpoint.cloned(),
            access_key_id: access_key_id?.clone(),
            secret_access_key: secret_access_key?.clone(),
            session_token: session_token.cloned(),
        })
    }
}

impl S3 {
    pub fn new(settings: &Settings) -> S3 {
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose().clone(),
            settings.session_token.as_ref().map(|t| t.expose().clone()),
            None,
            "environment",
        );
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        S3 {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            requests: AtomicU64::new(0),
        }
    }

    /// Requests made so far (for the preflight benchmark).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every object under `bucket/prefix`, page by page; paths relative to `stage_prefix`.
    pub async fn list(
        &self,
        bucket: &str,
        stage_prefix: &str,
        prefix: &str,
    ) -> Result<Vec<Object>, S3Error> {
        let full_prefix = format!("{stage_prefix}{}", prefix.trim_start_matches('/'));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut files = Vec::new();
        while let Some(page) = pages.next().await {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let page = page.map_err(|e| S3Error {
                bucket: bucket.to_owned(),
                key: full_prefix.clone(),
                message: format!("cannot list: {}", describe(&e)),
            })?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if key.ends_with('/') {
                    continue;
                }
                files.push(Object {
                    path: key.strip_prefix(stage_prefix).unwrap_or(key).to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    tag: object
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_owned(),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The first `bytes` of one object (a ranged GET; at most `bytes` are kept even where a
    /// server ignores the range).
    pub async fn start_of(&self, bucket: &str, key: &str, bytes: u64) -> Result<Vec<u8>, S3Error> {
        let fail = failure(bucket, key);
        let range = format!("bytes=0-{}", bytes.saturating_sub(1));
        let mut body = self.get(bucket, key, Some(range)).await?;
        let limit = usize::try_from(bytes).unwrap_or(usize::MAX);
        let mut start = Vec::new();
        while start.len() < limit {
            let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| fail(format!("download broke off: {e}")))?
            else {
                break;
            };
            let room = limit - start.len();
            start.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(start)
    }

    /// One object's body, or the part of it `range` names.
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<String>,
    ) -> Result<aws_sdk_s3::primitives::ByteStream, S3Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let object = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| failure(bucket, key)(format!("cannot fetch: {}", describe(&e))))?;
        Ok(object.body)
    }

    /// Writes the file at `source` as one object (streamed from disk; S3 takes up to 5 GB in
    /// one PUT).
    pub async fn put_file(&self, bucket: &str, key: &str, source: &Path) -> Result<(), S3Error> {
        let fail = failure(bucket, key);
        let body = aws_sdk_s3::primitives::ByteStream::from_path(source)
            .await
            .map_err(|e| fail(format!("cannot read {}: {e}", source.display())))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(format!("cannot write: {}", describe(&e))))?;
        Ok(())
    }

    /// Streams one object into `destination`.
    pub async fn download(
        &self,
        bucket: &str,
        key: &str,
        destination: &Path,
    ) -> Result<(), S3Error> {
        let fail = failure(bucket, key);
        let mut body = self.get(bucket, key, None).await?;
        if let Some(parent) = destination.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut file = tokio::fs::File::create(destination)
            .await
            .map_err(|e| fail(format!("cannot write {}: {e}", destination.display())))?;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| fail(format!("download broke off: {e}")))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| fail(format!("cannot write {}: {e}", destination.display())))?;
        }
        file.flush()
            .await
            .map_err(|e| fail(format!("cannot write {}: {e}", destination.display())))?;
        Ok(())
    }
}

/// An error about one object, with its message.
fn failure<'a>(bucket: &'a str, key: &'a str) -> impl Fn(String) -> S3Error + 'a {
    move |message| S3Error {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message,
    }
}

/// What went wrong, in one line: S3's error code and message when it answered, else the chain of
/// causes (a timeout, a refused connection, a DNS failure). The SDK's own `DisplayErrorContext`
/// ends with its Debug form: the whole response, headers and body, in the job's log.
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(service) = error {
        let answer = service.err();
        return match (answer.code(), answer.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => answer.to_string(),
        };
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        let line = next.to_string();
        // The SDK's layers often repeat their cause's text; say each thing once.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}
