//! Ferry's use cases, free of transport types. Each one validates its input, authorizes the
//! caller, then acts on the registry and the warehouse.

use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use opentelemetry::KeyValue;
use tracing::{Instrument, info, info_span, instrument, warn};

use crate::telemetry::metrics::METRICS;

mod governance;
mod publish_slots;

use publish_slots::PublishSlots;

pub use governance::{ColumnGovernance, GovernedRows, TokenRequest, issue_token};

use crate::contract::{
    Contract, Evolution, Materialization, ViewFilter, plan_evolution, validate_qualified_name,
};
use crate::crash_point;
use crate::error::{Denial, FerryError, Missing, Precondition};
pub use crate::governance::Caller;
use crate::governance::{Action, AuditOutcome, Authenticator, Authorizer, Pseudonymizer, Scope};
use crate::ingest::{
    CsvQuarantine, IngestProgress, PublishStage, Quarantine, RecordLimits, Source, SourcesConfig,
    ValidationSettings, ingest,
};
use crate::keyed_lock::KeyedLock;
use crate::registry::{
    PartitionEntry, PendingCommit, Publication, PublicationStatus, RegisteredDataset, Registry,
};
use crate::warehouse::{
    GarbageScope, LivePartition, PartitionTarget, ReadPlan, ResumedCommit, Warehouse,
};

pub struct RegisterOutcome {
    pub dataset: RegisteredDataset,
    pub unchanged: bool,
    pub changes: Vec<String>,
}

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

pub struct ReadRequest {
    pub name: String,
    pub from_date: String,
    pub to_date: String,
    pub columns: Vec<String>,
    pub limit: u64,
}

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
    publish_slots: PublishSlots,
}

/// The bounds the service enforces (see `LimitsConfig` for their meaning and defaults).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub records: RecordLimits,
    pub max_concurrent_publishes: usize,
    pub max_concurrent_publishes_per_team: usize,
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
        }
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

    /// Renews this process's publish leases; on a registry shared by replicas, also recovers
    /// the publishes of replicas whose leases ran out.
    pub async fn keep_leases(&self) -> Result<(), FerryError> {
        // A commit the warehouse failed after the flip is handed to recovery; finding none is
        // one read, which a SQLite writer does not wait for.
        let resumed = self.resume_pending_commits().await?;
        // One process owns a SQLite registry: its leases matter to nobody, and a writer on a
        // timer would only contend with the calls' own transactions.
        if !self.registry.is_shared() {
            return Ok(());
        }
        self.registry.renew_leases().await?;
        if self.release_interrupted().await? || resumed {
            self.collect_garbage(None).await;
        }
        Ok(())
    }

    /// Recovers from a previous process that stopped mid-publish.
    pub async fn recover(&self) -> Result<(), FerryError> {
        self.resume_pending_commits().await?;
        self.release_interrupted().await?;
        self.collect_garbage(None).await;
        Ok(())
    }

    /// Brings the warehouse level with the registry for commits whose process died after the
    /// registry's flip: the warehouse commits them after all, or, when their staged data is gone,
    /// the registry goes back to the previous publication. Returns whether there were any.
    async fn resume_pending_commits(&self) -> Result<bool, FerryError> {
        let pending = self.registry.claim_pending_commits().await?;
        for commit in &pending {
            if let Err(e) = self.resume_commit(commit).await {
                // Left pending and unowned: the next lease round (this process's or a replica's)
                // tries again.
                warn!(publication = %commit.id, error = %e, "could not resume an interrupted commit; retrying at the next lease round");
                if let Err(e) = self.registry.abandon_commit(&commit.id).await {
                    warn!(publication = %commit.id, error = %e, "could not release a pending commit");
                }
            }
        }
        Ok(!pending.is_empty())
    }

    async fn resume_commit(&self, commit: &PendingCommit) -> Result<(), FerryError> {
        let mut publication = self
            .registry
            .publication(&commit.id)
            .await?
            .ok_or_else(|| FerryError::Internal(format!("publication {} is gone", commit.id)))?;
        if commit.superseded {
            // A later publish of the day owns the partition; this one's transaction must not
            // hold its tables.
            self.warehouse
                .release_interrupted(std::slice::from_ref(&commit.id))
                .await;
            return self.registry.confirm_commit(&publication).await;
        }
        let dataset = self
            .registry
            .dataset(&commit.dataset)
            .await?
            .ok_or_else(|| {
                FerryError::Internal(format!(
                    "dataset {} of a pending commit is gone",
                    commit.dataset
                ))
            })?;
        let target = PartitionTarget {
            contract: Arc::new(dataset.contract),
            partition_date: commit.partition_date,
            publication_id: commit.id.clone(),
        };
        match self.warehouse.resume_commit(&target).await? {
            ResumedCommit::Committed { job_ids } => {
                publication.warehouse_job_ids.extend(job_ids);
                self.registry.confirm_commit(&publication).await?;
                info!(publication = %commit.id, "completed a commit its process did not finish");
            }
            ResumedCommit::StagedDataGone => {
                self.registry
                    .revert_commit(
                        commit,
                        "the server stopped before the warehouse committed this publish and its \
                         staged data expired; the previous partition is live again",
                    )
                    .await?;
                warn!(publication = %commit.id, "reverted a commit whose staged data expired");
            }
        }
        Ok(())
    }

    /// Marks the publishes of processes that are gone as interrupted and releases what they
    /// left in the warehouse; returns whether there were any.
    async fn release_interrupted(&self) -> Result<bool, FerryError> {
        let interrupted = self.registry.mark_interrupted().await?;
        if interrupted.is_empty() {
            return Ok(false);
        }
        warn!(
            interrupted = interrupted.len(),
            "publications were interrupted: their process stopped; previous partitions are intact"
        );
        self.warehouse.release_interrupted(&interrupted).await;
        Ok(true)
    }

    /// Removes data nothing references any more; with `scope`, only what one commit replaced.
    async fn collect_garbage(&self, scope: Option<GarbageScope<'_>>) {
        let result = async {
            let keep = self.registry.retained_publication_ids().await?;
            self.warehouse.collect_garbage(&keep, scope).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(removed) => info!(removed, "collected superseded partition files"),
            Err(e) => {
                warn!(error = %e, "garbage collection failed; will retry after the next publish")
            }
        }
    }

    #[instrument(skip_all, fields(dataset = %contract.name))]
    pub async fn register_dataset(
        &self,
        contract: Contract,
        caller: &Caller,
    ) -> Result<RegisterOutcome, FerryError> {
        contract.validate()?;
        crate::governance::validate_principal(&contract.owner)
            .map_err(|e| FerryError::InvalidContract(format!("owner: {e}")))?;
        let current = self.registry.dataset(&contract.name).await?;
        let owner = current
            .as_ref()
            .map_or(contract.owner.as_str(), |d| d.contract.owner.as_str());
        self.authorize(caller, Action::Register, &contract.name, owner)
            .await?;
        if owner != contract.owner {
            // Handing a dataset to another team is a platform decision, not the owner's alone.
            self.authorize(caller, Action::Register, &contract.name, "")
                .await?;
        }
        // A name an admin assigned to its owner stays theirs to evolve.
        let assigned = current
            .as_ref()
            .is_some_and(|d| d.contract.owner == contract.owner);
        let any_namespace = assigned || self.authorize_namespace(caller, &contract).await?;
        // Every name check runs before the warehouse is touched: a refused register never
        // creates, patches or expires a table that another contract owns.
        self.registry.check_names(&contract).await?;
        self.warehouse.check_names(&contract)?;
        if contract.needs_pseudonymization() && self.pseudonymizer.is_none() {
            return Err(FerryError::precondition(
                Precondition::PseudonymizationKeyMissing,
                "the contract pseudonymizes columns but this server has no pseudonymization key \
                 (privacy.pseudonymization_key)",
            ));
        }
        let evolution = plan_evolution(
            current.as_ref().map(|d| (&d.contract, d.version)),
            &contract,
        )?;
        match evolution {
            Evolution::Unchanged(_) => Ok(RegisterOutcome {
                dataset: current.ok_or_else(|| {
                    FerryError::Internal("unchanged without a current version".into())
                })?,
                unchanged: true,
                changes: Vec::new(),
            }),
            Evolution::NewVersion { version, changes } => {
                self.warehouse.prepare_dataset(&contract).await?;
                // Grants are narrowed before the new version takes effect: if the register then
                // fails, they were narrowed for nothing, never widened.
                if let Some(previous) = &current {
                    self.rebind_grants(&previous.contract, &contract, caller)
                        .await?;
                }
                let dataset = self
                    .registry
                    .register(
                        &contract,
                        version,
                        &changes,
                        &caller.principal,
                        any_namespace,
                    )
                    .await?;
                info!(version = %version, "registered contract");
                self.audit(
                    caller,
                    "register",
                    &contract.name,
                    AuditOutcome::Allowed,
                    &format!("version {version}"),
                )
                .await;
                Ok(RegisterOutcome {
                    dataset,
                    unchanged: false,
                    changes,
                })
            }
        }
    }

    /// The first team to register in a namespace owns it: nobody else registers a name there,
    /// except a platform admin assigning a name to another team (the same admin-only rule as
    /// handing a dataset over). Returns whether the caller may register in any namespace; the
    /// registry checks the claim again when it records the contract.
    async fn authorize_namespace(
        &self,
        caller: &Caller,
        contract: &Contract,
    ) -> Result<bool, FerryError> {
        let namespace = contract.namespace();
        let admin = self.allows(caller, Action::Register, "*", "")?;
        let owner = self.registry.namespace_owner(namespace).await?;
        if admin || owner.is_none_or(|owner| owner == contract.owner) {
            return Ok(admin);
        }
        self.record_denial(caller, Action::Register, &contract.name, "namespace")
            .await;
        Err(FerryError::denied(
            Denial::NamespaceOwned,
            format!("namespace {namespace} belongs to another team; an admin assigns namespaces"),
        ))
    }

    pub async fn get_dataset(
        &self,
        name: &str,
        caller: &Caller,
    ) -> Result<(RegisteredDataset, Vec<PartitionEntry>), FerryError> {
        validate_qualified_name(name, "dataset").map_err(|e| e.for_field("name"))?;
        let dataset = self
            .visible_dataset(name, caller, &Missing::Dataset(name.to_owned()))
            .await?;
        let partitions = self.registry.partitions(name, None, None).await?;
        Ok((dataset, partitions))
    }

    /// The datasets the caller may describe, filtered in one pass.
    pub async fn list_datasets(
        &self,
        prefix: &str,
        caller: &Caller,
    ) -> Result<Vec<RegisteredDataset>, FerryError> {
        let scope = self.authorizer.scope(&caller.principal, Action::Describe);
        if matches!(scope, Scope::All) {
            return self.registry.list_datasets(prefix).await;
        }
        // Decide on names and owners alone, then load only the contracts the caller may see.
        let visible: Vec<String> = self
            .registry
            .dataset_owners(prefix)
            .await?
            .into_iter()
            .filter(|(name, owner)| scope.contains(name, owner))
            .map(|(name, _)| name)
            .collect();
        self.registry.datasets_named(&visible).await
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
            .await;
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
                Err(error)
            }
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
            },
        )
        .await?;
        progress.set_stage(PublishStage::Committing);
        publication.sha256 = outcome.sha256.clone();
        publication.bytes = outcome.bytes;
        publication.rows_accepted = outcome.summary.rows_accepted;
        publication.rows_rejected = outcome.summary.rows_rejected;
        publication.row_errors = outcome.summary.errors;
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

    pub async fn get_publication(
        &self,
        id: &str,
        caller: &Caller,
    ) -> Result<Publication, FerryError> {
        let not_found = Missing::Publication(id.to_owned());
        let publication = self
            .registry
            .publication(id.trim())
            .await?
            .ok_or_else(|| FerryError::NotFound(not_found.clone()))?;
        let dataset = self
            .visible_dataset(&publication.dataset, caller, &not_found)
            .await?;
        let full = self.may_read_ledger(caller, &dataset)?;
        Ok(ledger_entry(publication, full))
    }

    pub async fn list_publications(
        &self,
        dataset: &str,
        partition_date: &str,
        limit: u32,
        caller: &Caller,
    ) -> Result<Vec<Publication>, FerryError> {
        let date = optional_date(partition_date, "partition_date")?;
        let registered = self
            .visible_dataset(dataset, caller, &Missing::Dataset(dataset.to_owned()))
            .await?;
        let full = self.may_read_ledger(caller, &registered)?;
        let limit = if limit == 0 { 100 } else { limit.min(10_000) };
        let publications = self
            .registry
            .list_publications(dataset, date, limit)
            .await?;
        Ok(publications
            .into_iter()
            .map(|publication| ledger_entry(publication, full))
            .collect())
    }

    /// Whether the caller sees where a dataset's data came from (its owner team and admins).
    fn may_read_ledger(
        &self,
        caller: &Caller,
        dataset: &RegisteredDataset,
    ) -> Result<bool, FerryError> {
        self.allows(
            caller,
            Action::ReadLedger,
            &dataset.contract.name,
            &dataset.contract.owner,
        )
    }

    #[instrument(skip_all, fields(name = %request.name))]
    pub async fn read(
        &self,
        request: ReadRequest,
        caller: &Caller,
    ) -> Result<GovernedRows, FerryError> {
        let from = optional_date(&request.from_date, "from_date")?;
        let to = optional_date(&request.to_date, "to_date")?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(FerryError::invalid_field(
                "from_date",
                format!("from_date {from} is after to_date {to}"),
            ));
        }
        let registered = self.visible_owning_dataset(&request.name, caller).await?;
        let dataset_name = registered.contract.name.clone();
        let contract = Arc::new(registered.contract);
        self.authorize(caller, Action::Read, &request.name, &contract.owner)
            .await?;
        let partitions = self
            .registry
            .partitions(&dataset_name, from, to)
            .await?
            .into_iter()
            .map(|p| LivePartition {
                partition_date: p.partition_date,
                publication_id: p.publication_id,
            })
            .collect();
        let limit = (request.limit > 0).then_some(request.limit);
        let mut plan = ReadPlan {
            contract: contract.clone(),
            table: request.name.clone(),
            partitions,
            columns: request.columns,
            filter: None,
            limit,
        };
        if let Some(view) = contract.view(&request.name)
            && view.materialization == Materialization::OnRead
        {
            // Evaluated over the raw table; the projection defaults to the view's columns.
            plan.table = contract.name.clone();
            plan.filter = Some(ViewFilter::parse(&view.filter, &contract).map_err(|e| {
                FerryError::Internal(format!("stored view {} no longer parses: {e}", view.name))
            })?);
            if plan.columns.is_empty() {
                plan.columns = contract
                    .view_columns(view)
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                plan.columns.push(contract.partition_column());
            } else if let Some(bad) = plan.columns.iter().find(|c| {
                **c != contract.partition_column()
                    && !contract.view_columns(view).iter().any(|v| &v.name == *c)
            }) {
                return Err(FerryError::invalid_field(
                    "columns",
                    format!("{} has no column {bad:?}", view.name),
                ));
            }
        }
        let started = Instant::now();
        let rows = self
            .warehouse
            .read(plan)
            .instrument(info_span!(
                "warehouse.read",
                warehouse = self.warehouse.kind()
            ))
            .await;
        self.record_warehouse_call("read", started);
        self.govern_rows(rows?, &contract, &request.name, caller)
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

/// The first line of a message, for audit details that must stay short.
/// A ledger entry as the caller may see it: in full, or without the source, the quarantine, the
/// error text and the row errors (which name buckets and paths and may quote the file).
fn ledger_entry(publication: Publication, full: bool) -> Publication {
    if full {
        return publication;
    }
    Publication {
        source_uri: String::new(),
        quarantine_uri: String::new(),
        error: String::new(),
        row_errors: Vec::new(),
        ..publication
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

enum Committed {
    Replaced,
    AlreadyLive(String),
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
