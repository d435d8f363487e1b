//! Source URIs: `file://`, `s3://`, `gs://` and `https://`, each an `object_store` store chosen
//! from the scheme against an allow-list. Ferry has no storage trait of its own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetResultPayload, ObjectStore, ObjectStoreExt, RetryConfig,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::FerryError;

/// How Ferry reaches source stores. Credentials not given here come from the standard
/// environment (`AWS_*`, `GOOGLE_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    pub s3: S3Config,
    pub gcs: GcsConfig,
    /// Allow plain `http://` sources (tests, internal mirrors). Off by default.
    pub allow_http: bool,
    /// When set, `file://` sources must live under this directory.
    pub file_root: Option<std::path::PathBuf>,
    /// Attempts after the first for transient source errors.
    pub max_retries: Option<usize>,
    /// Give up on a source after this many seconds of retrying.
    pub retry_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// A custom endpoint (MinIO, moto, s3s); path-style requests are used with it.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcsConfig {
    /// A custom endpoint such as fake-gcs-server.
    pub base_url: Option<String>,
    pub service_account_path: Option<String>,
}

/// One source object, ready to stream.
pub struct Source {
    pub uri: String,
    store: Arc<dyn ObjectStore>,
    path: Path,
}

/// The opened object and its size.
pub struct SourceStream {
    pub size: u64,
    pub body: SourceBody,
}

pub enum SourceBody {
    /// A local file, read with blocking I/O: object_store's async file stream hands over small
    /// chunks through the blocking pool, and the wake-ups cost more than the parsing.
    File(std::fs::File),
    Stream(BoxStream<'static, Result<Bytes, FerryError>>),
}

impl Source {
    /// Resolves `uri` to a store, refusing schemes outside the allow-list.
    pub fn resolve(uri: &str, config: &SourcesConfig) -> Result<Self, FerryError> {
        let invalid =
            |reason: String| FerryError::InvalidArgument(format!("source URI {uri:?}: {reason}"));
        let url = Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
        let client = client_options(config);
        let retry = retry_config(config);
        let bucket = || {
            url.host_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| invalid("the bucket is missing".into()))
        };
        let object_path = || {
            let path = url.path().trim_start_matches('/');
            if path.is_empty() {
                return Err(invalid("the object path is missing".into()));
            }
            Path::parse(path).map_err(|e| invalid(e.to_string()))
        };
        let unavailable = |e: object_store::Error| FerryError::SourceUnavailable {
            uri: uri.to_owned(),
            reason: e.to_string(),
        };
        let (store, path): (Arc<dyn ObjectStore>, Path) = match url.scheme() {
            "file" => {
                let file = url
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                if let Some(root) = &config.file_root {
                    let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
                    if !canonical.starts_with(root) {
                        return Err(invalid(format!(
                            "local sources must be under {}",
                            root.display()
                        )));
                    }
                }
                let path = Path::from_absolute_path(&file).map_err(|e| invalid(e.to_string()))?;
                (Arc::new(LocalFileSystem::new()), path)
            }
            "s3" => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket()?)
                    .with_client_options(client)
                    .with_retry(retry);
                let s3 = &config.s3;
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let (Some(key), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    builder = builder
                        .with_access_key_id(key)
                        .with_secret_access_key(secret);
                }
                (
                    Arc::new(builder.build().map_err(unavailable)?),
                    object_path()?,
                )
            }
            "gs" => {
                let gcs = &config.gcs;
                let plain_http = gcs
                    .base_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("http://"));
                let mut builder = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket()?)
                    .with_client_options(client.with_allow_http(config.allow_http || plain_http))
                    .with_retry(retry);
                if let Some(path) = &gcs.service_account_path {
                    builder = builder.with_service_account_path(path);
                }
                if let Some(base_url) = &gcs.base_url {
                    builder = builder.with_base_url(base_url);
                }
                (
                    Arc::new(builder.build().map_err(unavailable)?),
                    object_path()?,
                )
            }
            scheme @ ("https" | "http") => {
                if scheme == "http" && !config.allow_http {
                    return Err(invalid(
                        "plain http is not allowed; use https (or set sources.allow_http)".into(),
                    ));
                }
                let origin = url.origin().ascii_serialization();
                let store = HttpBuilder::new()
                    .with_url(origin)
                    .with_client_options(client.with_allow_http(config.allow_http))
                    .with_retry(retry)
                    .build()
                    .map_err(unavailable)?;
                (Arc::new(store), object_path()?)
            }
            other => {
                return Err(invalid(format!(
                    "scheme {other:?} is not allowed; use file://, s3://, gs:// or https://"
                )));
            }
        };
        Ok(Self {
            uri: uri.to_owned(),
            store,
            path,
        })
    }

    /// Opens the object for streaming.
    pub async fn open(&self) -> Result<SourceStream, FerryError> {
        let result = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| self.map_error(e))?;
        let size = result.meta.size;
        let body = match result.payload {
            GetResultPayload::File(file, _) => SourceBody::File(file),
            GetResultPayload::Stream(stream) => {
                let uri = self.uri.clone();
                SourceBody::Stream(
                    stream
                        .map_err(move |e| FerryError::SourceUnavailable {
                            uri: uri.clone(),
                            reason: format!("read failed mid-stream: {e}"),
                        })
                        .boxed(),
                )
            }
        };
        Ok(SourceStream { size, body })
    }

    fn map_error(&self, error: object_store::Error) -> FerryError {
        match error {
            object_store::Error::NotFound { .. } => FerryError::SourceNotFound {
                uri: self.uri.clone(),
                reason: "no such object".into(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => FerryError::SourceUnavailable {
                uri: self.uri.clone(),
                reason: format!("access denied: {error}"),
            },
            other => FerryError::SourceUnavailable {
                uri: self.uri.clone(),
                reason: other.to_string(),
            },
        }
    }
}

fn client_options(config: &SourcesConfig) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_allow_http(config.allow_http)
}

fn retry_config(config: &SourcesConfig) -> RetryConfig {
    RetryConfig {
        max_retries: config.max_retries.unwrap_or(3),
        retry_timeout: Duration::from_secs(config.retry_timeout_secs.unwrap_or(30)),
        backoff: BackoffConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(uri: &str) -> Result<Source, FerryError> {
        Source::resolve(uri, &SourcesConfig::default())
    }

    #[test]
    fn only_allow_listed_schemes_resolve() {
        for bad in ["ftp://host/file.csv", "jdbc:postgres://x", "gopher://x/y"] {
            let err = resolve(bad).err().expect("refused");
            assert!(
                matches!(err, FerryError::InvalidArgument(_)),
                "{bad}: {err}"
            );
        }
        let err = resolve("http://example.com/a.csv").err().expect("refused");
        assert!(
            err.to_string().contains("plain http is not allowed"),
            "{err}"
        );
        assert!(resolve("s3://bucket/key.csv").is_ok());
        assert!(resolve("file:///tmp/a.csv").is_ok());
        assert!(resolve("https://example.com/a.csv").is_ok());
    }

    #[test]
    fn missing_bucket_or_path_is_a_clear_error() {
        let err = resolve("s3://bucket").err().expect("refused");
        assert!(err.to_string().contains("object path is missing"), "{err}");
        let err = resolve("not a uri").err().expect("refused");
        assert!(matches!(err, FerryError::InvalidArgument(_)));
    }

    #[tokio::test]
    async fn a_missing_local_file_is_not_found() {
        let source = resolve("file:///definitely/not/here.csv").expect("resolves");
        let err = source.open().await.err().expect("missing");
        assert!(matches!(err, FerryError::SourceNotFound { .. }), "{err}");
    }
}
