//! How Ferry finds and authenticates to BigQuery: `[warehouse.bigquery]` in `ferry.toml`, or
//! `FERRY_WAREHOUSE__BIGQUERY__*`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::FerryError;

/// Where Ferry's access tokens come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Credentials {
    /// `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud user credentials file, or the metadata
    /// server (which is Workload Identity on GKE), in that order.
    #[default]
    ApplicationDefault,
    /// A service-account JSON key at `key_file`.
    ServiceAccountKey,
    /// The GKE metadata server only: refuses to fall back to a key file.
    WorkloadIdentity,
    /// No token at all: only for a local emulator.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BigQueryConfig {
    /// The project that owns the datasets and runs (and pays for) the jobs.
    pub project: String,
    /// Where new datasets are created (`EU`, `US`, `europe-west1`, ...). Jobs run there too.
    pub location: String,
    pub credentials: Credentials,
    /// The service-account key for `credentials = "service-account-key"`.
    pub key_file: Option<PathBuf>,
    /// The API root; set it to point Ferry at an emulator.
    pub endpoint: String,
    /// The dataset holding per-publication staging tables; they expire on their own.
    pub staging_dataset: String,
    /// Staging tables expire this many hours after creation, even if Ferry dies mid-publish.
    pub staging_expiration_hours: u64,
    /// Consumer datasets are named this prefix plus the consumer team (`team:a` → `ferry_consumer_team_3aa`).
    pub consumer_dataset_prefix: String,
    /// The Google group each consumer principal reads as, e.g. `"team:a" = "team-a@acme.com"`.
    /// A mapped consumer gets READER on its consumer dataset; unmapped consumers get the
    /// authorized view only, and an admin grants the dataset to them.
    pub consumer_groups: std::collections::BTreeMap<String, String>,
    /// How many times a call that failed transiently (429, 5xx, `rateLimitExceeded`,
    /// `backendError`) is retried before the error is returned.
    pub max_retries: usize,
}

impl Default for BigQueryConfig {
    fn default() -> Self {
        Self {
            project: String::new(),
            location: "EU".into(),
            credentials: Credentials::default(),
            key_file: None,
            endpoint: "https://bigquery.googleapis.com".into(),
            staging_dataset: "ferry_staging".into(),
            staging_expiration_hours: 24,
            consumer_dataset_prefix: "ferry_consumer_".into(),
            consumer_groups: Default::default(),
            max_retries: 6,
        }
    }
}

impl BigQueryConfig {
    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), FerryError> {
        let invalid = |msg: String| Err(FerryError::Config(msg));
        if self.project.trim().is_empty() {
            return invalid(
                "warehouse.bigquery.project is required with warehouse.backend = \"bigquery\" \
                 (or FERRY_WAREHOUSE__BIGQUERY__PROJECT)"
                    .into(),
            );
        }
        if self.credentials == Credentials::ServiceAccountKey && self.key_file.is_none() {
            return invalid(
                "warehouse.bigquery.credentials = \"service-account-key\" needs warehouse.bigquery.key_file"
                    .into(),
            );
        }
        if let Some(path) = &self.key_file
            && !path.is_file()
        {
            return invalid(format!(
                "warehouse.bigquery.key_file {} is not a readable file",
                path.display()
            ));
        }
        for (key, value) in [
            ("staging_dataset", &self.staging_dataset),
            ("consumer_dataset_prefix", &self.consumer_dataset_prefix),
        ] {
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return invalid(format!(
                    "warehouse.bigquery.{key} {value:?} must be letters, digits and _"
                ));
            }
        }
        Ok(())
    }

    pub fn staging_expiration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(3600 * self.staging_expiration_hours.max(1))
    }

    /// The REST root all v2 paths hang off.
    pub fn v2_base_url(&self) -> String {
        format!("{}/bigquery/v2", self.endpoint.trim_end_matches('/'))
    }

    pub fn upload_base_url(&self) -> String {
        format!("{}/upload/bigquery/v2", self.endpoint.trim_end_matches('/'))
    }
}
