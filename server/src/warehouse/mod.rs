//! Where published partitions live. One trait, one implementation per backend, one
//! conformance suite (`tests/warehouse_conformance.rs`) that every backend must pass.
//!
//! A publish stages a partition through a [`PartitionSink`] (raw table and every materialized
//! view), then commits it. Readers must see the old partition or the new one, never a mix; how a
//! backend achieves that is its own business (the embedded backend flips one registry row, a
//! BigQuery backend runs one multi-statement transaction).

mod bigquery;
mod datafusion_filter;
mod local;
mod parquet_files;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;

use crate::contract::{Column, ColumnType, Contract, ViewFilter};
use crate::error::FerryError;

pub use bigquery::api::BigQueryApi;
pub use bigquery::{BigQueryConfig, BigQueryWarehouse, Credentials as BigQueryCredentials};
pub use local::LocalWarehouse;

/// One partition being published.
#[derive(Debug, Clone)]
pub struct PartitionTarget {
    pub contract: Arc<Contract>,
    pub partition_date: chrono::NaiveDate,
    pub publication_id: String,
}

/// Receives the validated batches of one partition. Runs on a blocking thread.
pub trait PartitionSink: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FerryError>;
    /// Makes the staged data durable; it is still invisible to readers.
    fn finish(self: Box<Self>) -> Result<StagedPartition, FerryError>;
    /// Throws the staged data away.
    fn abort(self: Box<Self>);
}

/// A staged partition, durable and not yet visible.
#[derive(Debug, Clone)]
pub struct StagedPartition {
    pub target: PartitionTarget,
    pub rows: u64,
    /// Rows per materialized view, by view name.
    pub view_rows: Vec<(String, u64)>,
    /// Backend job ids that did the work, for the ledger.
    pub job_ids: Vec<String>,
}

/// A partition as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePartition {
    pub partition_date: chrono::NaiveDate,
    pub publication_id: String,
}

/// What to read: a dataset's raw table or one of its views.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub contract: Arc<Contract>,
    /// The table to read: the dataset itself or a materialized view.
    pub table: String,
    /// The live partitions in range, in date order.
    pub partitions: Vec<LivePartition>,
    pub columns: Vec<String>,
    /// Applied on read (views evaluated on read).
    pub filter: Option<ViewFilter>,
    pub limit: Option<u64>,
}

/// One consumer's reader grant on a table, as the warehouse's own access control should mirror
/// it for consumers who query the warehouse directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAccess {
    /// The principal, such as `team:a`.
    pub grantee: String,
    /// False for revoked, expired or pending grants: their access must be gone.
    pub active: bool,
    /// Personal columns in clear; otherwise they are masked as Ferry's reads mask them.
    pub clear_personal_data: bool,
}

/// Rows with their schema, streamed.
pub struct RowStream {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, FerryError>>,
}

#[async_trait]
pub trait Warehouse: Send + Sync + 'static {
    /// A short name for logs and the ledger.
    fn kind(&self) -> &'static str;

    /// Refuses a contract whose names this warehouse keeps for itself (staging, consumer
    /// datasets). Runs before `prepare_dataset`, with the registry's name checks.
    fn check_names(&self, _contract: &Contract) -> Result<(), FerryError> {
        Ok(())
    }

    /// Creates or updates the tables and views a contract declares.
    async fn prepare_dataset(&self, contract: &Contract) -> Result<(), FerryError>;

    /// Opens a sink that stages one partition of the raw table and its materialized views.
    fn open_partition(&self, target: PartitionTarget)
    -> Result<Box<dyn PartitionSink>, FerryError>;

    /// Makes a staged partition the live one, atomically across the raw table and its views.
    /// `commit_visibility` is the registry's part (flipping the manifest); the backend runs it at
    /// the point where its own data is ready, and fails the commit when it fails.
    async fn commit_partition(
        &self,
        staged: &StagedPartition,
        commit_visibility: BoxCommit<'_>,
    ) -> Result<Vec<String>, FerryError>;

    /// Finishes a commit whose process stopped after the registry's flip and before it recorded
    /// the warehouse's outcome. Idempotent: it may run again after a crash of its own.
    async fn resume_commit(&self, target: &PartitionTarget) -> Result<ResumedCommit, FerryError>;

    /// Throws away a staged partition that will not be committed (identical content, checksum
    /// mismatch). Best effort: garbage collection catches what this misses.
    async fn discard_partition(&self, staged: &StagedPartition);

    /// Releases what publishes a previous process left half-done (an open transaction, staged
    /// data), so they cannot block the next publish of the same table. Best effort: failures
    /// are logged, and garbage collection and expiries catch the rest.
    async fn release_interrupted(&self, publication_ids: &[String]);

    /// Streams rows of a table over live partitions.
    async fn read(&self, plan: ReadPlan) -> Result<RowStream, FerryError>;

    /// Makes the warehouse's own access to `target` (the dataset or one of its views) match
    /// `consumers`: every reader grant ever made on it, active or not.
    async fn sync_access(
        &self,
        contract: &Contract,
        target: &str,
        consumers: &[ConsumerAccess],
    ) -> Result<(), FerryError>;

    /// Removes staged or superseded data of publications not in `keep` (the live ones and those
    /// still running). With `scope`, only what one commit replaced. Returns how many objects were
    /// removed.
    async fn collect_garbage(
        &self,
        keep: &[String],
        scope: Option<GarbageScope<'_>>,
    ) -> Result<u64, FerryError>;
}

/// What [`Warehouse::resume_commit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumedCommit {
    /// The warehouse serves the publication now; these jobs did it.
    Committed { job_ids: Vec<String> },
    /// It never committed and its staged data is gone (expired): the registry must go back.
    StagedDataGone,
}

/// The partition a commit just replaced: the only place its garbage can be.
#[derive(Clone, Copy)]
pub struct GarbageScope<'a> {
    pub contract: &'a Contract,
    pub partition_date: chrono::NaiveDate,
}

/// The registry's half of a commit.
pub type BoxCommit<'a> = futures::future::BoxFuture<'a, Result<(), FerryError>>;

/// The Arrow schema of the stored table: the contract's stored columns, then the partition date.
pub fn table_schema(contract: &Contract) -> SchemaRef {
    let mut fields: Vec<Field> = contract
        .stored_columns()
        .map(|c| Field::new(&c.name, arrow_type(c), !c.required))
        .collect();
    fields.push(Field::new(
        contract.partition_column(),
        DataType::Date32,
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// A column's Arrow type. Decimals that BigQuery NUMERIC holds are 128-bit, wider ones 256-bit.
pub fn arrow_type(column: &Column) -> DataType {
    match column.column_type {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Numeric => {
            let spec = column
                .decimal()
                .unwrap_or(crate::contract::DecimalSpec::NUMERIC);
            // The scale is at most 38, within i8.
            let scale = spec.scale as i8;
            if spec.fits_numeric() {
                DataType::Decimal128(spec.precision, scale)
            } else {
                DataType::Decimal256(spec.precision, scale)
            }
        }
        ColumnType::Bytes => DataType::Binary,
    }
}

/// The columns a table stores, in order: the dataset's stored columns or a view's projection,
/// then the partition column.
pub(crate) fn table_column_names(contract: &Contract, table: &str) -> Vec<String> {
    contract
        .table_columns(table)
        .iter()
        .map(|c| c.name.clone())
        .chain(std::iter::once(contract.partition_column()))
        .collect()
}

/// What a read returns: the columns to select and their Arrow schema. Shared, so every backend
/// answers the same projection with the same errors.
pub(crate) fn read_projection(plan: &ReadPlan) -> Result<(Vec<String>, SchemaRef), FerryError> {
    let contract = &plan.contract;
    if plan.table != contract.name && contract.view(&plan.table).is_none() {
        return Err(FerryError::NotFound(crate::error::Missing::View(
            plan.table.clone(),
        )));
    }
    let table_columns = table_column_names(contract, &plan.table);
    let columns = if plan.columns.is_empty() {
        table_columns
    } else {
        if let Some(missing) = plan.columns.iter().find(|c| !table_columns.contains(c)) {
            return Err(FerryError::invalid_field(
                "columns",
                format!("{} has no column {missing:?}", plan.table),
            ));
        }
        plan.columns.clone()
    };
    let stored = table_schema(contract);
    let indices = columns
        .iter()
        .map(|name| {
            stored
                .index_of(name)
                .map_err(|_| FerryError::Internal(format!("column {name} is not stored")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = stored
        .project(&indices)
        .map_err(|e| FerryError::Internal(format!("projecting a schema: {e}")))?;
    Ok((columns, Arc::new(schema)))
}
