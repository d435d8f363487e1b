//! Source URIs: `file://`, `s3://`, `gs://` and `https://`, each an `object_store` store chosen
//! from the scheme against an allow-list. Ferry has no storage trait of its own.

use std::path::Component;
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

use super::http_guard::{GuardedConnector, is_internal, refusal};
use crate::error::{Denial, FerryError};
use crate::secret::Secret;

/// How Ferry reaches source stores. Credentials not given here come from the standard
/// environment (`AWS_*`, `GOOGLE_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    pub s3: S3Config,
    pub gcs: GcsConfig,
    /// Allow plain `http://` sources (tests, internal mirrors). Off by default.
    pub allow_http: bool,
    /// The directories `file://` sources may be read from. Empty (the default): `file://` is
    /// refused, so a team token can never read the server's own files. Paths are canonicalized
    /// (symlinks, `..`) before the check, and `/proc`, `/sys` and `/dev` are refused even under a
    /// root.
    pub file_roots: Vec<std::path::PathBuf>,
    /// Hosts an `https://` (or allowed `http://`) source may name although they are, or resolve
    /// to, loopback, private or link-local addresses. Empty (the default): only public
    /// addresses, so a source URL cannot reach the metadata server or the cluster's services.
    pub allowed_internal_hosts: Vec<String>,
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
    pub secret_access_key: Option<Secret>,
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
    /// The object actually read, rebuilt from the parsed parts (`file://` + canonical path,
    /// `s3://bucket/key`, `https://host:port/path`): what source bindings are checked against,
    /// so no spelling of a URI can match one prefix and read another object.
    pub canonical_uri: String,
    /// For `file://`, the checked canonical path, verified again once the file is open.
    local: Option<std::path::PathBuf>,
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
        let invalid = |reason: String| {
            FerryError::invalid_field("source_uri", format!("source URI {uri:?}: {reason}"))
        };
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
        let mut local = None;
        let (store, path, canonical_uri): (Arc<dyn ObjectStore>, Path, String) = match url.scheme()
        {
            "file" => {
                let file = url
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                let canonical = local_source_path(&file, &config.file_roots).map_err(|reason| {
                    FerryError::denied(
                        Denial::SourceNotAllowed,
                        format!("source {uri:?}: {reason}"),
                    )
                })?;
                // Open the checked path, not the given one: a symlink cannot redirect the read.
                let path =
                    Path::from_absolute_path(&canonical).map_err(|e| invalid(e.to_string()))?;
                let canonical_uri = format!("file://{}", canonical.display());
                local = Some(canonical);
                (Arc::new(LocalFileSystem::new()), path, canonical_uri)
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
                        .with_secret_access_key(secret.expose());
                }
                let path = object_path()?;
                let canonical_uri = format!("s3://{}/{path}", bucket()?);
                (
                    Arc::new(builder.build().map_err(unavailable)?),
                    path,
                    canonical_uri,
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
                let path = object_path()?;
                let canonical_uri = format!("gs://{}/{path}", bucket()?);
                (
                    Arc::new(builder.build().map_err(unavailable)?),
                    path,
                    canonical_uri,
                )
            }
            scheme @ ("https" | "http") => {
                if scheme == "http" && !config.allow_http {
                    return Err(invalid(
                        "plain http is not allowed; use https (or set sources.allow_http)".into(),
                    ));
                }
                let guard = GuardedConnector {
                    allowed_internal_hosts: Arc::new(config.allowed_internal_hosts.clone()),
                };
                let host = url.host_str().unwrap_or_default();
                let literal_ip = match url.host() {
                    Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                    Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                    _ => None,
                };
                if literal_ip.is_some_and(is_internal) && !guard.allows_internal(host) {
                    return Err(FerryError::denied(
                        Denial::SourceNotAllowed,
                        format!(
                            "source {uri:?}: the host is an internal address (allow it with \
                         sources.allowed_internal_hosts)"
                        ),
                    ));
                }
                let origin = url.origin().ascii_serialization();
                let store = HttpBuilder::new()
                    .with_http_connector(guard)
                    .with_url(origin.as_str())
                    .with_client_options(client.with_allow_http(config.allow_http))
                    .with_retry(retry)
                    .build()
                    .map_err(unavailable)?;
                let path = object_path()?;
                let canonical_uri = format!("{origin}/{path}");
                (Arc::new(store), path, canonical_uri)
            }
            other => {
                return Err(invalid(format!(
                    "scheme {other:?} is not allowed; use file://, s3://, gs:// or https://"
                )));
            }
        };
        Ok(Self {
            uri: uri.to_owned(),
            canonical_uri: ascii_uri(canonical_uri),
            local,
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
            GetResultPayload::File(file, _) => {
                if let Some(expected) = &self.local
                    && !opened_where_checked(&file, expected)
                {
                    return Err(FerryError::denied(
                        Denial::SourceNotAllowed,
                        format!(
                            "source {:?}: the file changed while it was opened",
                            self.uri
                        ),
                    ));
                }
                SourceBody::File(file)
            }
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

    /// What identifies the object's current content without reading it: its entity tag, else
    /// its size and modification time. None when there is no such object (yet).
    pub async fn version(&self) -> Result<Option<String>, FerryError> {
        match self.store.head(&self.path).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_else(|| {
                format!("{}@{}", meta.size, meta.last_modified.to_rfc3339())
            }))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.map_error(e)),
        }
    }

    fn map_error(&self, error: object_store::Error) -> FerryError {
        if let Some(reason) = refusal(&error) {
            return FerryError::denied(
                Denial::SourceNotAllowed,
                format!("source {:?}: {reason}", self.uri),
            );
        }
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

/// Directories no source may ever come from, whatever the configured roots: they expose the
/// server process itself (its environment, memory, devices).
const NEVER_READABLE: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The canonical form of a local source path, if it lies under one of `roots`. A path that does
/// not exist yet is judged by its deepest existing ancestor, so the answer for a missing file
/// outside the roots is the same refusal as for an existing one (no existence oracle).
fn local_source_path(
    file: &std::path::Path,
    roots: &[std::path::PathBuf],
) -> Result<std::path::PathBuf, String> {
    if roots.is_empty() {
        return Err(
            "file:// sources are off on this server (sources.file_roots names none)".into(),
        );
    }
    let refused = || "the path is outside the directories this server reads from".to_owned();
    // The URL parser resolves `.` and `..` segments, so any left here came from percent-encoded
    // separators (`%2F..`): they could only be meant to climb.
    if file
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err(refused());
    }
    let canonical = canonicalize_existing_prefix(file).ok_or_else(refused)?;
    if NEVER_READABLE.iter().any(|dir| canonical.starts_with(dir)) {
        return Err(refused());
    }
    let under_a_root = roots.iter().any(|root| {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        canonical.starts_with(&root)
    });
    if under_a_root {
        Ok(canonical)
    } else {
        Err(refused())
    }
}

/// Canonicalizes the longest existing prefix of `path` and appends the rest, which must be
/// plain names (`None` otherwise, and when not even `/` resolves).
fn canonicalize_existing_prefix(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut result = canonical;
            for part in rest.iter().rev() {
                result.push(part);
            }
            return Some(result);
        }
        let name = existing.file_name()?.to_owned();
        let parent = existing.parent()?.to_path_buf();
        rest.push(name);
        existing = parent;
    }
}

/// Whether the file behind `file` is the one at `expected`: the kernel's own name for the open
/// descriptor, so a symlink swapped in after the check cannot redirect the read.
fn opened_where_checked(file: &std::fs::File, expected: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .is_ok_and(|actual| actual == expected)
}

/// Percent-encodes every non-ASCII byte, so policy matching (byte slicing in casbin's keyMatch)
/// sees ASCII only.
fn ascii_uri(uri: String) -> String {
    if uri.is_ascii() {
        return uri;
    }
    let mut out = String::with_capacity(uri.len() + 16);
    for byte in uri.bytes() {
        if byte.is_ascii() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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

    fn with_roots(roots: &[&std::path::Path]) -> SourcesConfig {
        SourcesConfig {
            file_roots: roots.iter().map(|r| r.to_path_buf()).collect(),
            ..SourcesConfig::default()
        }
    }

    fn denied(uri: &str, config: &SourcesConfig) -> String {
        match Source::resolve(uri, config) {
            Err(FerryError::PermissionDenied { message, .. }) => message,
            Err(other) => panic!("{uri}: expected PermissionDenied, got {other}"),
            Ok(_) => panic!("{uri}: resolved"),
        }
    }

    #[test]
    fn file_sources_are_off_without_roots() {
        for uri in [
            "file:///etc/passwd",
            "file:///proc/self/environ",
            "file:///tmp/a.csv",
        ] {
            let message = denied(uri, &SourcesConfig::default());
            assert!(message.contains("file:// sources are off"), "{message}");
        }
    }

    #[test]
    fn file_sources_stay_under_their_roots() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("in.csv"), "a\n1\n").expect("write");
        std::fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.csv"),
            root.path().join("link.csv"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink("/proc/self", root.path().join("proc")).expect("symlink");
        let config = with_roots(&[root.path()]);
        let inside = format!("file://{}/in.csv", root.path().display());
        assert!(Source::resolve(&inside, &config).is_ok());
        let missing_inside = format!("file://{}/sub/missing.csv", root.path().display());
        assert!(Source::resolve(&missing_inside, &config).is_ok());
        let root_text = root.path().display().to_string();
        for uri in [
            format!("file://{root_text}/link.csv"),
            format!(
                "file://{root_text}/../{}/secret.csv",
                outside.path().file_name().unwrap().to_string_lossy()
            ),
            format!("file://{root_text}/proc/environ"),
            format!("file://{}/secret.csv", outside.path().display()),
            format!("file://{}/missing.csv", outside.path().display()),
            format!("file://{root_text}/nope/../../x.csv"),
            // Percent-encoded separators survive URL parsing as `..` components.
            format!("file://{root_text}/link.csv%2F.."),
            format!("file://{root_text}/proc%2F..%2F..%2Fetc%2Fpasswd"),
            format!("file://{root_text}/missing%2F..%2F..%2F..%2Fetc%2Fpasswd"),
            "file:///etc/passwd".to_owned(),
        ] {
            let message = denied(&uri, &config);
            assert!(
                message.contains("outside the directories"),
                "{uri}: {message}"
            );
        }
        // Even a root of `/` never opens the process's own files.
        let everything = with_roots(&[std::path::Path::new("/")]);
        for uri in [
            "file:///proc/self/environ",
            "file:///sys/kernel/notes",
            "file:///dev/zero",
        ] {
            denied(uri, &everything);
        }
    }

    #[test]
    fn only_allow_listed_schemes_resolve() {
        for bad in ["ftp://host/file.csv", "jdbc:postgres://x", "gopher://x/y"] {
            let err = resolve(bad).err().expect("refused");
            assert!(
                matches!(err, FerryError::InvalidField { .. }),
                "{bad}: {err}"
            );
        }
        let err = resolve("http://example.com/a.csv").err().expect("refused");
        assert!(
            err.to_string().contains("plain http is not allowed"),
            "{err}"
        );
        assert!(resolve("s3://bucket/key.csv").is_ok());
        assert!(matches!(
            resolve("file:///tmp/a.csv"),
            Err(FerryError::PermissionDenied {
                denial: Denial::SourceNotAllowed,
                ..
            })
        ));
        assert!(resolve("https://example.com/a.csv").is_ok());
    }

    #[test]
    fn bindings_see_the_object_actually_read() {
        let canonical = |uri: &str| resolve(uri).expect(uri).canonical_uri;
        assert_eq!(canonical("s3://drops/a/b.csv"), "s3://drops/a/b.csv");
        // Credentials and ports in the authority are not part of the bucket.
        assert_eq!(canonical("s3://user@drops/a.csv"), "s3://drops/a.csv");
        assert_eq!(canonical("gs://drops//a.csv"), "gs://drops/a.csv");
        assert_eq!(
            canonical("https://Example.COM:443/x/../y.csv"),
            "https://example.com/y.csv"
        );
        assert_eq!(
            canonical("https://example.com:8443/y.csv"),
            "https://example.com:8443/y.csv"
        );
        // Policy matching sees ASCII only.
        assert_eq!(
            canonical("s3://drops/d%C3%A9j%C3%A0.csv"),
            "s3://drops/d%C3%A9j%C3%A0.csv"
        );
        assert!(canonical("gs://drops/déjà.csv").is_ascii());
        // `..` is resolved before the check, so it cannot climb out of a bound prefix.
        assert_eq!(
            canonical("s3://drops/team-a/../team-b/x.csv"),
            "s3://drops/team-b/x.csv"
        );
        assert_eq!(
            canonical("gs://drops/team-a/%2e%2e/team-b/./x.csv"),
            "gs://drops/team-b/x.csv"
        );
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("in.csv"), "a\n1\n").expect("write");
        std::fs::create_dir(root.path().join("sub")).expect("mkdir");
        let real = root.path().canonicalize().expect("canonical");
        let uri = format!("file://{}/sub/../in.csv", root.path().display());
        let source = Source::resolve(&uri, &with_roots(&[root.path()])).expect("resolves");
        assert_eq!(
            source.canonical_uri,
            format!("file://{}/in.csv", real.display())
        );
    }

    #[test]
    fn missing_bucket_or_path_is_a_clear_error() {
        let err = resolve("s3://bucket").err().expect("refused");
        assert!(err.to_string().contains("object path is missing"), "{err}");
        let err = resolve("not a uri").err().expect("refused");
        assert!(matches!(err, FerryError::InvalidField { .. }));
    }

    #[tokio::test]
    async fn a_missing_local_file_is_not_found() {
        let root = tempfile::tempdir().expect("tempdir");
        let uri = format!("file://{}/definitely/not/here.csv", root.path().display());
        let source = Source::resolve(&uri, &with_roots(&[root.path()])).expect("resolves");
        let err = source.open().await.err().expect("missing");
        assert!(matches!(err, FerryError::SourceNotFound { .. }), "{err}");
    }
}
