//! Where published partitions live. One trait, one implementation per backend, one
//! conformance suite (`tests/warehouse_conformance.rs`) that every backend must pass.
//!
//! A publish stages a partition through a [`PartitionSink`] (raw table and every materialized
//! view), then commits it. Readers must see the old partition or the new one, never a mix; how a
//! backend achieves that is its own business (the embedded backend flips one registry row, a
//! BigQuery backend runs one multi-statement transaction).

mod local;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;

use crate::contract::{Contract, ViewFilter};
use crate::error::FerryError;

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

/// Rows with their schema, streamed.
pub struct RowStream {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch, FerryError>>,
}

#[async_trait]
pub trait Warehouse: Send + Sync + 'static {
    /// A short name for logs and the ledger.
    fn kind(&self) -> &'static str;

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

    /// Throws away a staged partition that will not be committed (identical content, checksum
    /// mismatch). Best effort: garbage collection catches what this misses.
    async fn discard_partition(&self, staged: &StagedPartition);

    /// Streams rows of a table over live partitions.
    async fn read(&self, plan: ReadPlan) -> Result<RowStream, FerryError>;

    /// Removes staged or superseded data that no live partition references. Returns how many
    /// objects were removed.
    async fn collect_garbage(&self, live_publication_ids: &[String]) -> Result<u64, FerryError>;
}

/// The registry's half of a commit.
pub type BoxCommit<'a> = futures::future::BoxFuture<'a, Result<(), FerryError>>;
