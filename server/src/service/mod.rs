//! Ferry's use cases, free of transport types. Each one validates its input, authorizes the
//! caller, then acts on the registry and the warehouse.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use opentelemetry::KeyValue;

use crate::clock::{Clock, SystemClock};
use crate::error::{FerryError, Missing};
pub use crate::governance::Caller;
use crate::governance::{Action, Authenticator, Authorizer, Pseudonymizer};
use crate::ingest::{RecordLimits, SourcesConfig};
use crate::keyed_lock::KeyedLock;
use crate::notify::Notifier;
use crate::registry::{RegisteredDataset, Registry};
use crate::telemetry::metrics::METRICS;
use crate::warehouse::Warehouse;

// One use case a file; each adds its methods to `Ferry`.
mod authorization;
mod datasets;
mod feeds;
mod freshness;
mod grants;
mod ledger;
mod masking;
mod policies;
mod publish;
mod publish_slots;
mod read;
mod recovery;
mod retention;
mod tokens;

pub use datasets::RegisterOutcome;
pub use feeds::{FeedRound, FeedStatus};
pub use freshness::LateDay;
pub use masking::{ColumnGovernance, GovernedRows};
pub use publish::{PublishOutcome, PublishRequest};
use publish_slots::PublishSlots;
pub use read::ReadRequest;
pub use tokens::{TokenRequest, issue_token};

/// The answer to "which Ferry is this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: &'static str,
    pub api_versions: Vec<&'static str>,
    pub registry: &'static str,
    pub warehouse: &'static str,
    pub source_schemes: Vec<&'static str>,
}

pub struct Ferry {
    registry: Registry,
    warehouse: Arc<dyn Warehouse>,
    sources: SourcesConfig,
    /// Where tolerated bad rows are kept, per dataset and day.
    quarantine_dir: std::path::PathBuf,
    /// One publish at a time per (dataset, day); different partitions run in parallel.
    partition_locks: KeyedLock<(String, NaiveDate)>,
    authenticator: Authenticator,
    authorizer: Authorizer,
    pseudonymizer: Option<Pseudonymizer>,
    record_limits: RecordLimits,
    max_unique_keys: usize,
    publish_slots: PublishSlots,
    /// What deadlines and schedules read the time from.
    clock: Arc<dyn Clock>,
    notifier: Notifier,
}

/// The bounds the service enforces (see `LimitsConfig` for their meaning and defaults).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub records: RecordLimits,
    pub max_concurrent_publishes: usize,
    pub max_concurrent_publishes_per_team: usize,
    pub max_unique_keys: usize,
}

/// Who may call and how personal data is treated.
pub struct Governance {
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    pub pseudonymizer: Option<Pseudonymizer>,
}

pub fn parse_date(text: &str, what: &'static str) -> Result<NaiveDate, FerryError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        FerryError::invalid_field(what, format!("{what} {text:?} is not a date (YYYY-MM-DD)"))
    })
}

fn optional_date(text: &str, what: &'static str) -> Result<Option<NaiveDate>, FerryError> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse_date(text, what).map(Some)
    }
}

impl Ferry {
    pub fn new(
        registry: Registry,
        warehouse: Arc<dyn Warehouse>,
        sources: SourcesConfig,
        quarantine_dir: std::path::PathBuf,
        governance: Governance,
        limits: Limits,
    ) -> Self {
        Self {
            record_limits: limits.records,
            max_unique_keys: limits.max_unique_keys,
            publish_slots: PublishSlots::new(
                limits.max_concurrent_publishes,
                limits.max_concurrent_publishes_per_team,
            ),
            registry,
            warehouse,
            sources,
            quarantine_dir,
            partition_locks: KeyedLock::default(),
            authenticator: governance.authenticator,
            authorizer: governance.authorizer,
            pseudonymizer: governance.pseudonymizer,
            clock: Arc::new(SystemClock),
            notifier: Notifier::default(),
        }
    }

    /// Reads the time from `clock` instead of the system's (tests move a `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Tells `notifier` about late days and failed publishes.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What this server is and serves. Any authenticated caller may ask: it names no dataset.
    pub fn server_info(&self, _caller: &Caller) -> ServerInfo {
        let mut source_schemes = vec!["file", "s3", "gs", "https"];
        if self.sources.allow_http {
            source_schemes.push("http");
        }
        ServerInfo {
            version: env!("CARGO_PKG_VERSION"),
            api_versions: vec!["ferry.v1"],
            registry: self.registry.kind(),
            warehouse: self.warehouse.kind(),
            source_schemes,
        }
    }

    /// The dataset `name`, if the caller may see it. A dataset the caller may not describe
    /// answers exactly as a missing one (`not_found`), so no call can probe which names exist;
    /// the refusal is still audited.
    async fn visible_dataset(
        &self,
        name: &str,
        caller: &Caller,
        not_found: &Missing,
    ) -> Result<RegisteredDataset, FerryError> {
        self.visible_as(name, name, caller, not_found).await
    }

    /// `visible_dataset` for `dataset`, reached through `requested` (the dataset itself or one of
    /// its views), which is what a refusal is audited under.
    async fn visible_as(
        &self,
        dataset: &str,
        requested: &str,
        caller: &Caller,
        not_found: &Missing,
    ) -> Result<RegisteredDataset, FerryError> {
        let hidden = || FerryError::NotFound(not_found.to_owned());
        let registered = self.registry.dataset(dataset).await?.ok_or_else(hidden)?;
        if self.allows(
            caller,
            Action::Describe,
            dataset,
            &registered.contract.owner,
        )? {
            return Ok(registered);
        }
        self.record_denial(caller, Action::Describe, requested, "hidden")
            .await;
        Err(hidden())
    }

    /// The dataset that holds the table or view `name`, if the caller may see it; otherwise the
    /// same answer as for a name that does not exist.
    async fn visible_owning_dataset(
        &self,
        name: &str,
        caller: &Caller,
    ) -> Result<RegisteredDataset, FerryError> {
        let not_found = Missing::DatasetOrView(name.to_owned());
        let dataset_name = self
            .registry
            .owning_dataset(name)
            .await?
            .ok_or_else(|| FerryError::NotFound(not_found.clone()))?;
        self.visible_as(&dataset_name, name, caller, &not_found)
            .await
    }

    fn record_warehouse_call(&self, operation: &'static str, started: Instant) {
        METRICS.warehouse_duration.record(
            started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("ferry.warehouse", self.warehouse.kind()),
                KeyValue::new("ferry.operation", operation),
            ],
        );
    }
}

/// The first line of `text`, cut to `LONGEST_DETAIL` characters: what an audit row keeps.
fn first_line(text: &str) -> String {
    truncated(text.lines().next().unwrap_or_default(), LONGEST_DETAIL)
}

/// Ledger and audit texts are bounded: an error may quote a long URI or a long driver message,
/// and the registry is no place for megabytes of either.
const LONGEST_DETAIL: usize = 500;
const LONGEST_ERROR: usize = 4000;
/// A source URI longer than this is refused before anything is stored.
const LONGEST_SOURCE_URI: usize = 2048;

pub(crate) fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… ({} more bytes)", &text[..cut], text.len() - cut),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        let cut = truncated(&"é".repeat(20), 5);
        assert_eq!(cut, format!("{}… (30 more bytes)", "é".repeat(5)));
        assert_eq!(first_line("one\ntwo"), "one");
    }
}
