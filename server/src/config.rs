//! Server configuration: built-in defaults, then a TOML file, then `FERRY_*` environment
//! variables (nested keys with `__`, e.g. `FERRY_SOURCES__S3__ENDPOINT`), then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::error::FerryError;
use crate::governance::AuthConfig;
use crate::ingest::RecordLimits;
use crate::ingest::SourcesConfig;
pub use crate::notify::WebhookConfig;
use crate::registry::Registry;
pub use crate::secret::{Secret, SecretUrl};
use crate::service::Limits;
pub use crate::telemetry::LogFormat;
use crate::warehouse::BigQueryConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The gRPC listen address.
    pub listen: SocketAddr,
    /// Where the embedded registry and warehouse keep their files.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to a SQLite file in `data_dir`. Printed with
    /// its password redacted.
    pub registry_url: Option<SecretUrl>,
    pub sources: SourcesConfig,
    pub warehouse: WarehouseConfig,
    /// `json` (default, for collectors) or `pretty` (for humans).
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `ferry_server=debug,info`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// A directory with casbin's `model.conf` and `policy.csv`; unset means the policies built
    /// into the binary (a copy of the repository's `policies/`).
    pub policy_dir: Option<PathBuf>,
    /// Seconds between checks for edited policy files and grants made on other replicas.
    pub policy_refresh_secs: u64,
    pub auth: AuthConfig,
    pub privacy: PrivacyConfig,
    /// TLS on the gRPC port; with `client_ca_file`, mutual TLS. Unset: plaintext, for a mesh or
    /// a load balancer that terminates TLS.
    pub tls: Option<TlsConfig>,
    pub limits: LimitsConfig,
    pub notifications: NotificationsConfig,
    pub scheduler: SchedulerConfig,
}

/// Where Ferry tells people about late days and failed publishes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub webhook: WebhookConfig,
}

/// The server's own recurring work: freshness checks and scheduled feeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Seconds between rounds. Each round checks every SLA and runs the feeds whose next
    /// check has come; 0 turns both off on this replica (another replica may run them).
    pub tick_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { tick_secs: 30 }
    }
}

/// Bounds that keep one caller or one file from taking the server: the defaults protect a
/// 1 GiB container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The longest record a source may hold; a longer one fails the publish with its line.
    pub max_record_bytes: u64,
    /// The most fields a record may have.
    pub max_fields: usize,
    /// The most bytes a Parquet source may take on disk once decompressed (Parquet is read from
    /// a temporary copy, its index being at the end of the file).
    pub max_spooled_bytes: u64,
    /// Publishes running at once on this server; more get RESOURCE_EXHAUSTED.
    pub max_concurrent_publishes: usize,
    /// Publishes running at once for one owner team.
    pub max_concurrent_publishes_per_team: usize,
    /// Distinct keys a `unique` quality rule holds for one publish (about 32 bytes each); a day
    /// with more fails the publish with RESOURCE_EXHAUSTED instead of taking the memory.
    pub max_unique_keys: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let records = RecordLimits::default();
        Self {
            max_record_bytes: records.max_record_bytes,
            max_fields: records.max_fields,
            max_spooled_bytes: records.max_spooled_bytes,
            max_concurrent_publishes: 8,
            max_concurrent_publishes_per_team: 4,
            max_unique_keys: crate::ingest::DEFAULT_MAX_UNIQUE_KEYS,
        }
    }
}

impl LimitsConfig {
    pub fn service_limits(&self) -> Limits {
        Limits {
            records: RecordLimits {
                max_record_bytes: self.max_record_bytes,
                max_fields: self.max_fields,
                max_spooled_bytes: self.max_spooled_bytes,
            },
            max_concurrent_publishes: self.max_concurrent_publishes,
            max_concurrent_publishes_per_team: self.max_concurrent_publishes_per_team,
            max_unique_keys: self.max_unique_keys,
        }
    }
}

/// Where published partitions live.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehouseConfig {
    pub backend: WarehouseBackend,
    /// Used when `backend = "bigquery"`.
    pub bigquery: BigQueryConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseBackend {
    /// Parquet files under `data_dir`, queried with DataFusion: one machine, no cloud account.
    #[default]
    Local,
    /// Google BigQuery, configured under `[warehouse.bigquery]`.
    Bigquery,
}

/// PEM files for TLS. The key is read at start and never logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, callers must present a client certificate signed by this CA (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The HMAC-SHA-256 key for pseudonymized columns (at least 32 bytes). Prefer
    /// `FERRY_PRIVACY__PSEUDONYMIZATION_KEY` or a file mounted from a secret store.
    pub pseudonymization_key: Option<Secret>,
    pub pseudonymization_key_file: Option<PathBuf>,
}

impl PrivacyConfig {
    pub fn key(&self) -> Result<Option<Vec<u8>>, FerryError> {
        match (&self.pseudonymization_key, &self.pseudonymization_key_file) {
            (Some(key), _) => Ok(Some(key.expose().as_bytes().to_vec())),
            (None, Some(path)) => std::fs::read(path).map(Some).map_err(|e| {
                FerryError::Config(format!(
                    "cannot read privacy.pseudonymization_key_file {}: {e}",
                    path.display()
                ))
            }),
            (None, None) => Ok(None),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./ferry-data"),
            registry_url: None,
            sources: SourcesConfig::default(),
            warehouse: WarehouseConfig::default(),
            log_format: LogFormat::default(),
            log_level: "info".into(),
            policy_dir: None,
            policy_refresh_secs: 10,
            auth: AuthConfig::default(),
            privacy: PrivacyConfig::default(),
            tls: None,
            limits: LimitsConfig::default(),
            notifications: NotificationsConfig::default(),
            scheduler: SchedulerConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file` (or `./ferry.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, FerryError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(FerryError::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("ferry.toml")),
        }
        figment
            // FERRY_TEST_CRASH_AT is the test suite's, not a setting (see crash_point).
            .merge(
                Env::prefixed("FERRY_")
                    .ignore(&["TEST_CRASH_AT"])
                    .split("__"),
            )
            .extract()
            .map_err(|e| FerryError::Config(format!("configuration: {e}")))
    }

    pub fn registry_url(&self) -> String {
        self.registry_url.as_ref().map_or_else(
            || Registry::sqlite_url(&self.data_dir),
            |url| url.expose().to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/ferry\"\n[sources.s3]\nendpoint = \"http://127.0.0.1:9000\"\n",
        )
        .expect("write");
        let config = Config::load(Some(&path)).expect("loads");
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.data_dir, PathBuf::from("/srv/ferry"));
        assert_eq!(
            config.sources.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(
            config
                .registry_url()
                .starts_with("sqlite:///srv/ferry/registry.sqlite")
        );
    }

    #[test]
    fn secrets_never_print() {
        let mut config = Config::default();
        config.auth.bootstrap_admin_token = Some(Secret::new("very-secret-bootstrap-token"));
        config.privacy.pseudonymization_key = Some(Secret::new("very-secret-hmac-key"));
        config.registry_url = Some("postgres://ferry:very-secret-password@db:5432/ferry".into());
        config.sources.s3.secret_access_key = Some(Secret::new("very-secret-s3-key"));
        let shown = format!(
            "{config:?}{}",
            serde_json::to_string(&config).expect("serializes")
        );
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(
            shown.contains("postgres://ferry:redacted@db:5432/ferry"),
            "{shown}"
        );
    }

    /// The documented example must stay loadable as the schema evolves.
    #[test]
    fn shipped_example_config_loads() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ferry.toml");
        let config = Config::load(Some(&example)).expect("examples/ferry.toml loads");
        assert_eq!(config.auth.bootstrap_admin_principal, "admin:platform");
        assert_eq!(config.policy_refresh_secs, 10);
        assert_eq!(config.warehouse.backend, WarehouseBackend::Local);
        assert_eq!(config.warehouse.bigquery.project, "acme-data-prod");
        assert_eq!(
            config
                .warehouse
                .bigquery
                .consumer_groups
                .get("team:a")
                .map(String::as_str),
            Some("team-a@acme.example")
        );
        config
            .warehouse
            .bigquery
            .validate()
            .expect("the example's BigQuery section is valid");
    }

    /// The config the Kubernetes manifests ship must load with this schema, and point where
    /// the Deployment mounts the policies and secrets.
    #[test]
    fn deployment_config_loads() {
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/base/ferry.toml");
        let config = Config::load(Some(&shipped)).expect("deploy/kubernetes/base/ferry.toml loads");
        assert_eq!(config.listen.to_string(), "0.0.0.0:50051");
        assert_eq!(
            config.policy_dir.as_deref(),
            Some(Path::new("/etc/ferry/policies"))
        );
        assert_eq!(
            config.auth.bootstrap_admin_token_file.as_deref(),
            Some(Path::new("/var/run/secrets/ferry/admin-token"))
        );
        assert_eq!(
            config.privacy.pseudonymization_key_file.as_deref(),
            Some(Path::new("/var/run/secrets/ferry/hmac-key"))
        );
        assert_eq!(config.warehouse.backend, WarehouseBackend::Bigquery);
        assert_eq!(
            config.warehouse.bigquery.credentials,
            crate::warehouse::BigQueryCredentials::WorkloadIdentity
        );
    }

    #[test]
    fn bigquery_settings_are_checked_before_anything_calls_google() {
        // Through a file, not the environment: tests share one process environment.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "[warehouse]\nbackend = \"bigquery\"\n[warehouse.bigquery]\ncredentials = \"service-account-key\"\n",
        )
        .expect("write");
        let config = Config::load(Some(&path)).expect("loads");
        assert_eq!(config.warehouse.backend, WarehouseBackend::Bigquery);
        let err = config
            .warehouse
            .bigquery
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("warehouse.bigquery.project is required"),
            "{err}"
        );
        let mut config = config;
        config.warehouse.bigquery.project = "acme".into();
        let err = config
            .warehouse
            .bigquery
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs warehouse.bigquery.key_file"), "{err}");
        std::fs::write(&path, "[warehouse.bigquery]\ncredentials = \"magic\"\n").expect("write");
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, "listne = \"127.0.0.1:1\"\n").expect("write");
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
