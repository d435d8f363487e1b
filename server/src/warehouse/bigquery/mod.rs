//! The production warehouse: Google BigQuery.
//!
//! A publish streams and validates the source through the shared pipeline like every backend.
//! This sink writes the cleaned rows to a local Parquet file, then stages it with a
//! resumable-upload load job into a per-publication staging table that expires on its own. The
//! commit opens a session, replaces the day in the raw table and every materialized view inside
//! one multi-statement transaction, lets the registry flip its manifest, and only then commits
//! the transaction; a failed flip rolls it back. Every job id derives from the publication id, so
//! a retried call finds the job it already started instead of loading twice.
//!
//! Why an upload instead of a GCS staging bucket: one credential scope (BigQuery), no bucket to
//! govern or clean, and the load job's id is the idempotency key for the upload itself.

mod access;
pub mod api;
mod config;
mod credentials;
mod rows;
mod sql;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use serde_json::json;
use tracing::{info, warn};

pub use config::{BigQueryConfig, Credentials};

use self::api::BigQueryApi;
use self::sql::TableAddress;
use super::parquet_files::writer_properties;
use super::{
    BoxCommit, ConsumerAccess, GarbageScope, PartitionSink, PartitionTarget, ReadPlan,
    ResumedCommit, RowStream, StagedPartition, Warehouse, read_projection,
};
use crate::contract::{Contract, ViewFilter};
use crate::crash_point;
use crate::error::FerryError;
use crate::keyed_lock::KeyedLock;
use crate::warehouse::table_schema;

/// Staging tables younger than this may belong to a publish still in flight.
const GARBAGE_GRACE: Duration = Duration::from_secs(3600);

pub struct BigQueryWarehouse {
    api: Arc<BigQueryApi>,
    /// Local scratch space for the Parquet file a sink writes before uploading it.
    scratch: PathBuf,
    garbage_grace: Duration,
    staging_ready: Arc<AtomicBool>,
    /// BigQuery aborts one of two transactions that change the same table at once, so this
    /// process commits one publication per dataset at a time.
    commit_locks: KeyedLock<String>,
    /// Access syncs edit shared `access` lists under a quota of 5 metadata updates per 10 s per
    /// dataset; running them concurrently in one process buys only 412s and rate limits. Syncs
    /// from other replicas are kept apart by the etags.
    access_sync: tokio::sync::Mutex<()>,
}

impl BigQueryWarehouse {
    /// Builds the client without calling Google, so the server starts even when BigQuery is
    /// unreachable; calls then fail with UNAVAILABLE and say why.
    pub async fn connect(config: BigQueryConfig, data_dir: &Path) -> Result<Self, FerryError> {
        let scratch = data_dir.join("bigquery-staging");
        std::fs::create_dir_all(&scratch)?;
        Ok(Self {
            api: Arc::new(BigQueryApi::connect(config).await?),
            scratch,
            garbage_grace: GARBAGE_GRACE,
            staging_ready: Arc::new(AtomicBool::new(false)),
            commit_locks: KeyedLock::default(),
            access_sync: tokio::sync::Mutex::new(()),
        })
    }

    /// Collects staging tables immediately; for tests.
    pub fn with_garbage_grace(mut self, grace: Duration) -> Self {
        self.garbage_grace = grace;
        self
    }

    pub fn project(&self) -> &str {
        self.api.project()
    }

    fn staging_table(&self, target: &PartitionTarget) -> TableAddress {
        TableAddress::in_dataset(
            self.api.project(),
            &self.api.config.staging_dataset,
            &format!(
                "{}__{}",
                target.contract.name.replace('.', "__"),
                table_safe(&target.publication_id)
            ),
        )
    }

    /// The statements that replace the target's day in the raw table and every materialized
    /// view with what `staging` holds.
    fn replacement(
        &self,
        target: &PartitionTarget,
        staging: &TableAddress,
    ) -> Result<Vec<String>, FerryError> {
        sql::replace_statements(
            self.api.project(),
            &target.contract,
            target.partition_date,
            staging,
        )
    }

    /// Best effort: staging tables expire on their own.
    async fn drop_staging(&self, target: &PartitionTarget) {
        let staging = self.staging_table(target);
        if let Err(e) = self
            .api
            .delete_table(&staging.dataset, &staging.table)
            .await
        {
            warn!(error = %e, table = %staging, "could not drop the staging table; it expires on its own");
        }
    }

    /// A process that died between the replace and the commit left a transaction open in its
    /// session; BigQuery would cancel the next transaction on those tables until the session
    /// ends (24 h idle). The replace job's id says where that session is.
    async fn roll_back_open_transaction(&self, publication: &str) {
        let replace = sql::job_id(publication, "replace");
        let session = match self.api.job(&replace).await {
            Ok(Some(job)) => job["statistics"]["sessionInfo"]["sessionId"]
                .as_str()
                .map(str::to_owned),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, job = %replace, "cannot look up an interrupted publish");
                None
            }
        };
        if let Some(session) = session {
            let rollback = sql::job_id(publication, "rollback");
            match self
                .api
                .run_in_session(&rollback, &session, "ROLLBACK TRANSACTION")
                .await
            {
                Ok(_) => {
                    info!(%publication, job = %rollback, "rolled back the transaction an interrupted publish left open")
                }
                // Already committed, rolled back or expired: nothing is held.
                Err(e) => info!(%publication, error = %e, "no open transaction to roll back"),
            }
        }
    }
}

/// Table ids allow letters, digits and `_`.
fn table_safe(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

async fn ensure_staging_dataset(api: &BigQueryApi, ready: &AtomicBool) -> Result<(), FerryError> {
    if ready.load(Ordering::Relaxed) {
        return Ok(());
    }
    api.ensure_dataset(
        &api.config.staging_dataset,
        "Ferry's per-publication staging tables; each expires on its own.",
        Some(api.config.staging_expiration()),
    )
    .await?;
    ready.store(true, Ordering::Relaxed);
    Ok(())
}

struct BigQueryPartitionSink {
    target: PartitionTarget,
    path: PathBuf,
    /// The file until the first batch arrives; the writer's settings are tuned from that batch.
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
    api: Arc<BigQueryApi>,
    staging: TableAddress,
    staging_ready: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
}

impl BigQueryPartitionSink {
    /// Creates the staging table with an expiry, then loads the file into it.
    async fn stage(&self) -> Result<String, FerryError> {
        let api = &self.api;
        ensure_staging_dataset(api, &self.staging_ready).await?;
        let contract = &self.target.contract;
        let expires = SystemTime::now() + api.config.staging_expiration();
        let table = gcp_bigquery_client::model::table::Table::new(
            api.project(),
            &self.staging.dataset,
            &self.staging.table,
            sql::table_schema(contract, &contract.name),
        )
        .expiration_time(expires)
        .label("ferry-managed", "true");
        api.upsert_table(table).await?;
        let job_id = sql::job_id(&self.target.publication_id, "stage");
        api.run_upload_job(
            &job_id,
            json!({"load": {
                "destinationTable": {
                    "projectId": self.staging.project,
                    "datasetId": self.staging.dataset,
                    "tableId": self.staging.table,
                },
                "sourceFormat": "PARQUET",
                "writeDisposition": "WRITE_TRUNCATE",
                "createDisposition": "CREATE_NEVER",
            }}),
            &self.path,
        )
        .await?;
        Ok(job_id)
    }
}

impl BigQueryPartitionSink {
    fn writer(
        &mut self,
        first_batch: Option<&RecordBatch>,
    ) -> Result<&mut ArrowWriter<File>, FerryError> {
        if let Some(file) = self.file.take() {
            let writer = ArrowWriter::try_new(
                file,
                table_schema(&self.target.contract),
                Some(writer_properties(first_batch)),
            )?;
            self.writer = Some(writer);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| FerryError::Internal("the staging file is already closed".into()))
    }
}

impl PartitionSink for BigQueryPartitionSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FerryError> {
        self.writer(Some(batch))?.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<StagedPartition, FerryError> {
        // A day without rows still loads: an empty file with a valid footer.
        self.writer(None)?;
        if let Some(writer) = self.writer.take() {
            writer.close()?;
        }
        // The sink runs on a blocking thread, where waiting on the runtime is allowed.
        let staged = self.runtime.block_on(self.stage());
        let _ = std::fs::remove_file(&self.path);
        let job_id = staged?;
        Ok(StagedPartition {
            target: self.target,
            rows: self.rows,
            // BigQuery fills the views inside the commit's transaction.
            view_rows: Vec::new(),
            job_ids: vec![job_id],
        })
    }

    fn abort(mut self: Box<Self>) {
        drop(self.file.take());
        drop(self.writer.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

#[async_trait]
impl Warehouse for BigQueryWarehouse {
    fn kind(&self) -> &'static str {
        "bigquery"
    }

    fn check_names(&self, contract: &Contract) -> Result<(), FerryError> {
        let config = &self.api.config;
        let namespace = contract.namespace();
        if namespace == config.staging_dataset
            || (!config.consumer_dataset_prefix.is_empty()
                && namespace.starts_with(&config.consumer_dataset_prefix))
        {
            return Err(FerryError::InvalidContract(format!(
                "namespace {namespace:?} is reserved on this warehouse for Ferry's staging and \
                 consumer datasets"
            )));
        }
        Ok(())
    }

    async fn prepare_dataset(&self, contract: &Contract) -> Result<(), FerryError> {
        ensure_staging_dataset(&self.api, &self.staging_ready).await?;
        let mut datasets: Vec<&str> = std::iter::once(contract.name.as_str())
            .chain(contract.views.iter().map(|v| v.name.as_str()))
            .filter_map(|name| name.split_once('.').map(|(dataset, _)| dataset))
            .collect();
        datasets.dedup();
        for dataset in datasets {
            self.api
                .ensure_dataset(dataset, "Published by Ferry.", None)
                .await?;
        }
        for table in sql::contract_tables(self.api.project(), contract)? {
            self.api.upsert_table(table).await?;
        }
        info!(dataset = %contract.name, project = self.api.project(), "BigQuery tables and views are in place");
        Ok(())
    }

    fn open_partition(
        &self,
        target: PartitionTarget,
    ) -> Result<Box<dyn PartitionSink>, FerryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            FerryError::Internal("the BigQuery sink must be opened on the runtime".into())
        })?;
        let path = self
            .scratch
            .join(format!("{}.parquet", table_safe(&target.publication_id)));
        let file = File::create(&path)?;
        Ok(Box::new(BigQueryPartitionSink {
            staging: self.staging_table(&target),
            target,
            path,
            file: Some(file),
            writer: None,
            rows: 0,
            api: self.api.clone(),
            staging_ready: self.staging_ready.clone(),
            runtime,
        }))
    }

    async fn commit_partition(
        &self,
        staged: &StagedPartition,
        commit_visibility: BoxCommit<'_>,
    ) -> Result<Vec<String>, FerryError> {
        let target = &staged.target;
        let publication = &target.publication_id;
        let staging = self.staging_table(target);
        let statements = self.replacement(target, &staging)?;
        let _serialized = self.commit_locks.lock(target.contract.name.clone()).await;

        let mut job_ids = staged.job_ids.clone();
        let replace = sql::job_id(publication, "replace");
        let session = self
            .api
            .run_in_new_session(&replace, &sql::transaction(&statements, false))
            .await?;
        job_ids.push(replace);
        crash_point::reached("bigquery.after_replace");

        if let Err(error) = commit_visibility.await {
            let rollback = sql::job_id(publication, "rollback");
            if let Err(e) = self
                .api
                .run_in_session(&rollback, &session, "ROLLBACK TRANSACTION")
                .await
            {
                // The session's open transaction dies with the session; nothing was committed.
                warn!(error = %e, job = %rollback, "could not roll back; the open transaction expires with its session");
            }
            return Err(error);
        }

        crash_point::reached("bigquery.after_flip");
        let commit = sql::job_id(publication, "commit");
        match self
            .api
            .run_in_session(&commit, &session, "COMMIT TRANSACTION")
            .await
        {
            Ok(_) => job_ids.push(commit),
            Err(error) => {
                // The registry already serves this publication, so BigQuery must follow it: run
                // the whole replacement again as one self-contained transaction.
                warn!(error = %error, job = %commit, "commit failed after the registry flip; replaying");
                let replay = sql::job_id(publication, "replay");
                self.api
                    .run_script(&replay, &sql::transaction(&statements, true))
                    .await
                    .map_err(|again| {
                        FerryError::RepairNeeded(format!(
                            "the registry made publication {publication} live but BigQuery did not \
                             commit it ({error}); replaying in job {replay} failed too ({again}). \
                             Publish the day again to repair it."
                        ))
                    })?;
                job_ids.push(replay);
            }
        }
        crash_point::reached("bigquery.after_commit");
        self.drop_staging(target).await;
        Ok(job_ids)
    }

    async fn resume_commit(&self, target: &PartitionTarget) -> Result<ResumedCommit, FerryError> {
        let publication = &target.publication_id;
        // The commit (or its replay, or an earlier recovery) may have got through before the
        // process died; then only the ledger is behind.
        for step in ["commit", "replay", "recover"] {
            let job = sql::job_id(publication, step);
            if let Some(done) = self.api.job(&job).await?
                && done["status"]["state"].as_str() == Some("DONE")
                && done["status"]["errorResult"].is_null()
            {
                self.drop_staging(target).await;
                return Ok(ResumedCommit::Committed { job_ids: vec![job] });
            }
        }
        // Its open transaction would make BigQuery cancel the replay, which touches the same
        // tables; end it first.
        self.roll_back_open_transaction(publication).await;
        let staging = self.staging_table(target);
        if !self
            .api
            .table_exists(&staging.dataset, &staging.table)
            .await?
        {
            return Ok(ResumedCommit::StagedDataGone);
        }
        let statements = self.replacement(target, &staging)?;
        let _serialized = self.commit_locks.lock(target.contract.name.clone()).await;
        let recover = sql::job_id(publication, "recover");
        self.api
            .run_script(&recover, &sql::transaction(&statements, true))
            .await?;
        self.drop_staging(target).await;
        Ok(ResumedCommit::Committed {
            job_ids: vec![recover],
        })
    }

    async fn discard_partition(&self, staged: &StagedPartition) {
        self.drop_staging(&staged.target).await;
    }

    async fn release_interrupted(&self, publication_ids: &[String]) {
        for publication in publication_ids {
            self.roll_back_open_transaction(publication).await;
        }
    }

    async fn read(&self, plan: ReadPlan) -> Result<RowStream, FerryError> {
        let (columns, schema) = read_projection(&plan)?;
        if plan.partitions.is_empty() || plan.limit == Some(0) {
            return Ok(RowStream {
                schema,
                batches: futures::stream::empty().boxed(),
            });
        }
        let contract = &plan.contract;
        let from = TableAddress::of(self.api.project(), &plan.table)?;
        let dates: Vec<chrono::NaiveDate> =
            plan.partitions.iter().map(|p| p.partition_date).collect();
        let partition = contract.partition_column();
        let filter = plan.filter.as_ref().and_then(ViewFilter::to_bigquery_sql);
        let mut query = sql::select(
            &columns,
            &from,
            filter.as_deref(),
            Some((&partition, &dates)),
        );
        if let Some(limit) = plan.limit {
            query.push_str(&format!(" LIMIT {limit}"));
        }
        let job_id = format!("ferry_read_{}", uuid::Uuid::now_v7().simple());
        self.api.run_script(&job_id, &query).await?;

        // Pages are fetched as the reader asks for them, so a large read never sits in memory.
        let api = self.api.clone();
        let page_schema = schema.clone();
        let batches = futures::stream::try_unfold(Some(None), move |next| {
            let api = api.clone();
            let job_id = job_id.clone();
            let schema = page_schema.clone();
            async move {
                let Some(page_token) = next else {
                    return Ok(None);
                };
                let page = api.result_page(&job_id, page_token).await?;
                let batch = rows::to_batch(&schema, &page.rows)?;
                let next = page.next_page_token.map(Some);
                Ok(Some((batch, next)))
            }
        })
        .boxed();
        Ok(RowStream { schema, batches })
    }

    async fn sync_access(
        &self,
        contract: &Contract,
        target: &str,
        consumers: &[ConsumerAccess],
    ) -> Result<(), FerryError> {
        let _one_at_a_time = self.access_sync.lock().await;
        self.sync_consumer_views(contract, target, consumers).await
    }

    async fn collect_garbage(
        &self,
        keep: &[String],
        _scope: Option<GarbageScope<'_>>,
    ) -> Result<u64, FerryError> {
        // Staging tables live in one dataset, listed in one call; the scope saves nothing here.
        let live: std::collections::HashSet<String> =
            keep.iter().map(|id| table_safe(id)).collect();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let grace_ms = self.garbage_grace.as_millis() as i64;
        let dataset = &self.api.config.staging_dataset;
        let mut removed = 0;
        for (table, created_ms) in self.api.list_tables(dataset).await? {
            let Some((_, publication)) = table.rsplit_once("__") else {
                continue;
            };
            if live.contains(publication) || now_ms - created_ms < grace_ms {
                continue;
            }
            if self.api.delete_table(dataset, &table).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
