//! Publishing one day partition: validate, authorize, then stream, validate and commit.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use opentelemetry::KeyValue;
use tracing::{Instrument, info, info_span, instrument, warn};

use crate::contract::Contract;
use crate::crash_point;
use crate::error::{FerryError, Missing};
use crate::governance::{Action, AuditOutcome};
use crate::ingest::{
    CsvQuarantine, IngestProgress, PublishStage, Quarantine, Source, ValidationSettings, ingest,
};
use crate::notify::Event;
use crate::registry::{Publication, PublicationStatus};
use crate::telemetry::metrics::METRICS;
use crate::warehouse::{GarbageScope, PartitionTarget};

use super::ledger::ledger_entry;
use super::{Caller, Ferry, LONGEST_ERROR, LONGEST_SOURCE_URI, first_line, parse_date, truncated};

pub struct PublishRequest {
    pub dataset: String,
    pub partition_date: String,
    pub source_uri: String,
    pub expected_sha256: String,
}

pub struct PublishOutcome {
    pub publication: Publication,
    /// Identical content was already live; nothing changed.
    pub unchanged: bool,
}

enum Committed {
    Replaced,
    AlreadyLive(String),
}

impl Ferry {
    #[instrument(skip_all, fields(dataset = %request.dataset, partition_date = %request.partition_date))]
    pub async fn publish(
        &self,
        request: PublishRequest,
        caller: &Caller,
        progress: Arc<IngestProgress>,
    ) -> Result<PublishOutcome, FerryError> {
        // Validate.
        let date = parse_date(&request.partition_date, "partition_date")?;
        let expected = request.expected_sha256.trim().to_ascii_lowercase();
        if !expected.is_empty()
            && (expected.len() != 64 || !expected.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(FerryError::invalid_field(
                "expected_sha256",
                "expected_sha256 must be 64 hex characters",
            ));
        }
        if request.source_uri.len() > LONGEST_SOURCE_URI {
            return Err(FerryError::invalid_field(
                "source_uri",
                format!(
                    "source_uri is {} bytes; at most {LONGEST_SOURCE_URI} are accepted",
                    request.source_uri.len()
                ),
            ));
        }
        let source = Source::resolve(&request.source_uri, &self.sources)?;
        let registered = self
            .visible_dataset(
                &request.dataset,
                caller,
                &Missing::Dataset(request.dataset.clone()),
            )
            .await?;
        self.authorize(
            caller,
            Action::Publish,
            &request.dataset,
            &registered.contract.owner,
        )
        .await?;
        self.authorize_source(caller, &registered.contract.owner, &source)
            .await?;
        let _slot = self.publish_slots.try_acquire(&registered.contract.owner)?;
        // A publisher grantee learns how its publish went, not the owner's ledger details.
        let full_ledger = self.may_read_ledger(caller, &registered)?;
        let contract = Arc::new(registered.contract);
        let contract_version = registered.version.to_string();

        // Act.
        let _guard = self
            .partition_locks
            .lock((contract.name.clone(), date))
            .await;
        let cross_process = self.registry.lock_partition(&contract.name, date).await?;
        let started = Instant::now();
        let mut publication = Publication {
            id: uuid::Uuid::now_v7().to_string(),
            dataset: contract.name.clone(),
            partition_date: date,
            source_uri: request.source_uri.clone(),
            sha256: String::new(),
            contract_version,
            status: PublicationStatus::Running,
            rows_accepted: 0,
            rows_rejected: 0,
            bytes: 0,
            duration_ms: 0,
            started_at: Utc::now(),
            finished_at: None,
            error: String::new(),
            row_errors: Vec::new(),
            warehouse_job_ids: Vec::new(),
            published_by: caller.principal.clone(),
            same_as: None,
            quarantine_uri: String::new(),
            quality: Vec::new(),
        };
        self.registry.start_publication(&publication).await?;
        info!(publication = %publication.id, source = %request.source_uri, "publish started");

        let dataset_attr = [KeyValue::new("ferry.dataset", contract.name.clone())];
        METRICS.active_publishes.add(1, &[]);
        let committed_contract = contract.clone();
        let result = self
            .run_publish(
                &source,
                contract,
                &expected,
                &mut publication,
                progress,
                started,
            )
            .await
            // The audit log, the ledger and the caller see the same text: for an internal
            // error, the id under which its cause was logged once.
            .map_err(FerryError::into_reported);
        cross_process.release().await;
        METRICS.active_publishes.add(-1, &[]);
        METRICS
            .bytes_published
            .add(publication.bytes, &dataset_attr);
        METRICS
            .rows_rejected
            .add(publication.rows_rejected, &dataset_attr);
        let outcome = match &result {
            Ok(Committed::Replaced) => "replaced",
            Ok(Committed::AlreadyLive(_)) => "unchanged",
            Err(_) => "failed",
        };
        if matches!(result, Ok(Committed::Replaced)) {
            METRICS
                .rows_published
                .add(publication.rows_accepted, &dataset_attr);
        }
        METRICS.publish_duration.record(
            started.elapsed().as_secs_f64(),
            &[
                dataset_attr[0].clone(),
                KeyValue::new("ferry.outcome", outcome),
            ],
        );
        // A committed publication already carries the times the ledger stored at commit.
        if publication.finished_at.is_none() {
            publication.duration_ms = started.elapsed().as_millis() as u64;
            publication.finished_at = Some(Utc::now());
        }
        let (audit_outcome, audit_detail) = match &result {
            Ok(Committed::Replaced) => (
                AuditOutcome::Allowed,
                format!(
                    "{} {}: replaced",
                    publication.id, publication.partition_date
                ),
            ),
            Ok(Committed::AlreadyLive(live)) => (
                AuditOutcome::Allowed,
                format!(
                    "{} {}: unchanged, same as {live}",
                    publication.id, publication.partition_date
                ),
            ),
            Err(e) => (
                AuditOutcome::Failed,
                format!(
                    "{} {}: {}",
                    publication.id,
                    publication.partition_date,
                    first_line(&e.to_string())
                ),
            ),
        };
        self.audit(
            caller,
            "publish",
            &publication.dataset,
            audit_outcome,
            &audit_detail,
        )
        .await;
        match result {
            Ok(Committed::Replaced) => {
                info!(publication = %publication.id, rows = publication.rows_accepted, "partition replaced");
                self.collect_garbage(Some(GarbageScope {
                    contract: &committed_contract,
                    partition_date: publication.partition_date,
                }))
                .await;
                Ok(PublishOutcome {
                    publication: ledger_entry(publication, full_ledger),
                    unchanged: false,
                })
            }
            Ok(Committed::AlreadyLive(live_id)) => {
                publication.status = PublicationStatus::Succeeded;
                publication.same_as = Some(live_id.clone());
                self.registry.finish_publication(&publication).await?;
                info!(publication = %live_id, "identical content already live; nothing changed");
                let live = self.registry.publication(&live_id).await?.ok_or_else(|| {
                    FerryError::Internal(format!("live publication {live_id} is missing"))
                })?;
                Ok(PublishOutcome {
                    publication: ledger_entry(live, full_ledger),
                    unchanged: true,
                })
            }
            Err(error) => {
                publication.status = PublicationStatus::Failed;
                publication.error = truncated(&error.to_string(), LONGEST_ERROR);
                if let Err(e) = self.registry.finish_publication(&publication).await {
                    warn!(error = %e, "could not record the failed publication");
                }
                if let Err(e) = self.registry.abandon_commit(&publication.id).await {
                    warn!(error = %e, "could not hand a failed commit to recovery");
                }
                warn!(publication = %publication.id, error = %error, "publish failed; previous partition unchanged");
                self.notifier.send(Event::PublishFailed {
                    dataset: publication.dataset.clone(),
                    owner: committed_contract.owner.clone(),
                    partition_date: publication.partition_date,
                    publication_id: publication.id.clone(),
                    reason: error.reason().as_str().to_owned(),
                    message: first_line(&error.to_string()),
                });
                Err(error)
            }
        }
    }

    /// Adds the row count rules' outcomes (against the live previous day) to the quality rules
    /// the stream checked, and refuses the day when an `error` rule failed.
    async fn check_row_counts(
        &self,
        contract: &Contract,
        publication: &mut Publication,
    ) -> Result<(), FerryError> {
        if contract.quality.is_empty() && publication.quality.is_empty() {
            return Ok(());
        }
        let needs_previous = contract
            .quality
            .iter()
            .any(|r| r.row_count_change.is_some());
        let previous = if needs_previous {
            let before = publication.partition_date.pred_opt();
            let days = self
                .registry
                .partitions(&contract.name, None, before)
                .await?;
            days.iter().max_by_key(|p| p.partition_date).map(|p| p.rows)
        } else {
            None
        };
        publication
            .quality
            .extend(crate::ingest::row_count_outcomes(
                contract,
                publication.rows_accepted,
                previous,
            ));
        let failed: Vec<_> = publication
            .quality
            .iter()
            .filter(|o| !o.passed && o.severity == crate::contract::Severity::Error)
            .map(|o| crate::error::FailedRule {
                rule: o.rule.clone(),
                outcome: o.to_string(),
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(FerryError::QualityRulesFailed {
                publication_id: publication.id.clone(),
                failed,
            })
        }
    }

    async fn run_publish(
        &self,
        source: &Source,
        contract: Arc<Contract>,
        expected_sha256: &str,
        publication: &mut Publication,
        progress: Arc<IngestProgress>,
        started: Instant,
    ) -> Result<Committed, FerryError> {
        let target = PartitionTarget {
            contract: contract.clone(),
            partition_date: publication.partition_date,
            publication_id: publication.id.clone(),
        };
        let sink = self.warehouse.open_partition(target)?;
        let quarantine: Option<Box<dyn Quarantine>> = if contract.source.max_rejected_rows > 0 {
            let dir = self
                .quarantine_dir
                .join(&contract.name)
                .join(publication.partition_date.to_string());
            let quarantine = CsvQuarantine::create(&dir, &publication.id)?;
            publication.quarantine_uri = format!("file://{}", quarantine.path().display());
            Some(Box::new(quarantine))
        } else {
            None
        };
        let outcome = ingest(
            source,
            contract.clone(),
            publication.partition_date,
            sink,
            quarantine,
            progress.clone(),
            ValidationSettings {
                pseudonymizer: self
                    .pseudonymizer
                    .as_ref()
                    .map(|keys| keys.for_dataset(&contract.name))
                    .transpose()?,
                limits: self.record_limits,
                max_unique_keys: self.max_unique_keys,
            },
        )
        .await?;
        progress.set_stage(PublishStage::Committing);
        publication.sha256 = outcome.sha256.clone();
        publication.bytes = outcome.bytes;
        publication.rows_accepted = outcome.summary.rows_accepted;
        publication.rows_rejected = outcome.summary.rows_rejected;
        publication.row_errors = outcome.summary.errors;
        publication.quality = outcome.summary.quality;
        let Some(staged) = outcome.staged else {
            return Err(FerryError::RowsRejected {
                publication_id: publication.id.clone(),
                rejected: publication.rows_rejected,
                errors: publication.row_errors.clone(),
            });
        };
        if !expected_sha256.is_empty() && expected_sha256 != outcome.sha256 {
            self.warehouse.discard_partition(&staged).await;
            return Err(FerryError::ChecksumMismatch {
                expected: expected_sha256.to_owned(),
                actual: outcome.sha256,
            });
        }
        if let Err(error) = self.check_row_counts(&contract, publication).await {
            self.warehouse.discard_partition(&staged).await;
            return Err(error);
        }
        let live = self
            .registry
            .partitions(
                &contract.name,
                Some(publication.partition_date),
                Some(publication.partition_date),
            )
            .await?;
        if let Some(current) = live.first()
            && current.sha256 == outcome.sha256
            && current.contract_version == publication.contract_version
        {
            self.warehouse.discard_partition(&staged).await;
            return Ok(Committed::AlreadyLive(current.publication_id.clone()));
        }
        publication.status = PublicationStatus::Succeeded;
        // The committed record is the ledger's final word, so it carries the duration.
        publication.duration_ms = started.elapsed().as_millis() as u64;
        publication.finished_at = Some(Utc::now());
        let registry = self.registry.clone();
        let record = publication.clone();
        let commit = Box::pin(async move { registry.commit_partition(&record).await });
        let commit_started = Instant::now();
        let committed = self
            .warehouse
            .commit_partition(&staged, commit)
            .instrument(info_span!(
                "publish.commit",
                warehouse = self.warehouse.kind()
            ))
            .await;
        self.record_warehouse_call("commit_partition", commit_started);
        let job_ids = committed.inspect_err(|_| {
            publication.status = PublicationStatus::Failed;
        })?;
        publication.warehouse_job_ids = job_ids;
        crash_point::reached("publish.before_confirm");
        // The flip recorded the publication before the warehouse finished; add its jobs now.
        if let Err(e) = self.registry.confirm_commit(publication).await {
            warn!(publication = %publication.id, error = %e, "could not record the warehouse's commit; recovery will");
        }
        Ok(Committed::Replaced)
    }
}
