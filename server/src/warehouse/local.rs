//! The embedded warehouse: Parquet files per partition under the data directory, queried with
//! DataFusion.
//!
//! Each publication writes new files named after its id
//! (`tables/<table>/<date>/<publication>.parquet`), so nothing a reader may be using is ever
//! overwritten. The partition becomes visible when the registry's manifest row for
//! (dataset, date) points at the new publication: one transaction flips the raw table and every
//! view together. A file is collected only when nothing references it: no manifest row, no
//! publish still running (the caller's `keep` list, from the registry), and no read that
//! planned against it (reads pin their publications until their stream is dropped). There is
//! no grace period to outlive.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;

use super::parquet_files::writer_properties;
use super::{
    BoxCommit, ConsumerAccess, GarbageScope, PartitionSink, PartitionTarget, ReadPlan,
    ResumedCommit, RowStream, StagedPartition, Warehouse, read_projection, table_column_names,
};
use crate::contract::{Contract, ViewFilter};
use crate::error::FerryError;
use crate::warehouse::datafusion_filter::datafusion_filter;
use crate::warehouse::table_schema;

pub struct LocalWarehouse {
    root: PathBuf,
    /// Publications open reads use, with how many reads use each.
    pins: Arc<Mutex<HashMap<String, usize>>>,
}

/// Held by a read's stream: while it lives, garbage collection keeps these publications' files.
struct ReadPins {
    pins: Arc<Mutex<HashMap<String, usize>>>,
    ids: Vec<String>,
}

impl ReadPins {
    fn new(pins: &Arc<Mutex<HashMap<String, usize>>>, ids: Vec<String>) -> Self {
        let mut held = pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &ids {
            *held.entry(id.clone()).or_default() += 1;
        }
        Self {
            pins: pins.clone(),
            ids,
        }
    }
}

impl Drop for ReadPins {
    fn drop(&mut self) {
        let mut held = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            if let Some(count) = held.get_mut(id) {
                *count -= 1;
                if *count == 0 {
                    held.remove(id);
                }
            }
        }
    }
}

impl LocalWarehouse {
    pub fn new(data_dir: &Path) -> Result<Self, FerryError> {
        let root = data_dir.join("tables");
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            pins: Arc::default(),
        })
    }

    fn file(&self, table: &str, date: chrono::NaiveDate, publication_id: &str) -> PathBuf {
        self.root
            .join(table)
            .join(date.format("%Y-%m-%d").to_string())
            .join(format!("{publication_id}.parquet"))
    }
}

/// The Parquet writer is opened on the first batch, so its settings can fit the data.
enum Output {
    Pending(File, SchemaRef),
    Open(Box<ArrowWriter<File>>),
}

impl Output {
    fn writer(
        &mut self,
        first_batch: Option<&RecordBatch>,
    ) -> Result<&mut ArrowWriter<File>, FerryError> {
        if let Output::Pending(file, schema) = self {
            let file = file.try_clone()?;
            let writer =
                ArrowWriter::try_new(file, schema.clone(), Some(writer_properties(first_batch)))?;
            *self = Output::Open(Box::new(writer));
        }
        match self {
            Output::Open(writer) => Ok(writer),
            Output::Pending(..) => Err(FerryError::Internal("parquet writer did not open".into())),
        }
    }
}

/// One output file: the raw table or a materialized view.
struct TableWriter {
    table: String,
    path: PathBuf,
    output: Output,
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<usize>>,
    rows: u64,
}

impl TableWriter {
    fn create(table: &str, path: PathBuf, schema: SchemaRef) -> Result<Self, FerryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(&path)?;
        Ok(Self {
            table: table.to_owned(),
            output: Output::Pending(file, schema),
            path,
            filter: None,
            projection: None,
            rows: 0,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), FerryError> {
        let filtered;
        let mut batch = batch;
        if let Some(filter) = &self.filter {
            let mask = filter.evaluate(batch)?.into_array(batch.num_rows())?;
            filtered = filter_record_batch(batch, mask.as_boolean())
                .map_err(|e| FerryError::Internal(format!("filtering a batch: {e}")))?;
            batch = &filtered;
        }
        let projected;
        if let Some(indices) = &self.projection {
            projected = batch
                .project(indices)
                .map_err(|e| FerryError::Internal(format!("projecting a batch: {e}")))?;
            batch = &projected;
        }
        if batch.num_rows() > 0 {
            self.output.writer(Some(batch))?.write(batch)?;
            self.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn finish(self) -> Result<(String, u64), FerryError> {
        let mut output = self.output;
        // A file that never received a row still gets a valid, empty Parquet footer.
        output.writer(None)?;
        let Output::Open(writer) = output else {
            return Err(FerryError::Internal("parquet writer did not open".into()));
        };
        let file = writer.into_inner()?;
        // Durable before the manifest can point at it.
        file.sync_all()?;
        Ok((self.table, self.rows))
    }
}

struct LocalPartitionSink {
    target: PartitionTarget,
    raw: TableWriter,
    views: Option<ViewWorker>,
    view_paths: Vec<PathBuf>,
}

/// Encodes the materialized views on their own thread, so the raw table and the views use both
/// cores instead of queueing behind one encoder.
struct ViewWorker {
    batches: std::sync::mpsc::SyncSender<RecordBatch>,
    handle: std::thread::JoinHandle<Result<Vec<(String, u64)>, FerryError>>,
}

impl ViewWorker {
    fn start(mut views: Vec<TableWriter>) -> Result<Self, FerryError> {
        let (batches, received) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let parent = tracing::Span::current();
        let handle = std::thread::Builder::new()
            .name("ferry-views".into())
            .spawn(move || {
                let _span = tracing::info_span!(parent: &parent, "publish.refresh_views").entered();
                for batch in received {
                    for view in &mut views {
                        view.write(&batch)?;
                    }
                }
                views.into_iter().map(TableWriter::finish).collect()
            })
            .map_err(|e| FerryError::Internal(format!("cannot start the view encoder: {e}")))?;
        Ok(Self { batches, handle })
    }

    fn write(&self, batch: &RecordBatch) -> Result<(), FerryError> {
        // A send fails only when the worker stopped on an error, which `finish` reports.
        let _ = self.batches.send(batch.clone());
        Ok(())
    }

    fn finish(self) -> Result<Vec<(String, u64)>, FerryError> {
        drop(self.batches);
        self.handle
            .join()
            .map_err(|_| FerryError::Internal("the view encoder panicked".into()))?
    }
}

impl PartitionSink for LocalPartitionSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FerryError> {
        if let Some(views) = &self.views {
            views.write(batch)?;
        }
        self.raw.write(batch)
    }

    fn finish(self: Box<Self>) -> Result<StagedPartition, FerryError> {
        let view_rows = match self.views {
            Some(views) => views.finish()?,
            None => Vec::new(),
        };
        let (_, rows) = self.raw.finish()?;
        Ok(StagedPartition {
            target: self.target,
            rows,
            view_rows,
            job_ids: Vec::new(),
        })
    }

    fn abort(self: Box<Self>) {
        if let Some(views) = self.views {
            let _ = views.finish();
        }
        for path in std::iter::once(&self.raw.path).chain(&self.view_paths) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Compiles a validated filter into a DataFusion physical expression over `schema`.
fn physical_filter(
    filter: &ViewFilter,
    schema: &SchemaRef,
) -> Result<Option<Arc<dyn PhysicalExpr>>, FerryError> {
    let Some(expr) = datafusion_filter(filter)? else {
        return Ok(None);
    };
    let ctx = SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    Ok(Some(ctx.create_physical_expr(expr, &df_schema)?))
}

/// Positions of `names` in `schema`; `missing` explains a name that is not there.
fn indices_of(
    schema: &SchemaRef,
    names: &[String],
    missing: impl Fn(&str) -> FerryError,
) -> Result<Vec<usize>, FerryError> {
    names
        .iter()
        .map(|name| schema.index_of(name).map_err(|_| missing(name)))
        .collect()
}

fn projected(schema: &SchemaRef, indices: &[usize]) -> Result<SchemaRef, FerryError> {
    schema
        .project(indices)
        .map(Arc::new)
        .map_err(|e| FerryError::Internal(format!("projecting a schema: {e}")))
}

#[async_trait]
impl Warehouse for LocalWarehouse {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn prepare_dataset(&self, _contract: &Contract) -> Result<(), FerryError> {
        // Tables are directories created on first publish; nothing to declare up front.
        Ok(())
    }

    fn open_partition(
        &self,
        target: PartitionTarget,
    ) -> Result<Box<dyn PartitionSink>, FerryError> {
        let contract = &target.contract;
        let schema = table_schema(contract);
        let date = target.partition_date;
        let id = &target.publication_id;
        let raw = TableWriter::create(
            &contract.name,
            self.file(&contract.name, date, id),
            schema.clone(),
        )?;
        let mut views = Vec::new();
        for view in contract.materialized_views() {
            let filter = contract.view_filter(view)?;
            let projection =
                indices_of(&schema, &table_column_names(contract, &view.name), |name| {
                    FerryError::Internal(format!("column {name} is not stored"))
                })?;
            let view_schema = projected(&schema, &projection)?;
            let mut writer =
                TableWriter::create(&view.name, self.file(&view.name, date, id), view_schema)?;
            writer.filter = physical_filter(&filter, &schema)?;
            writer.projection = Some(projection);
            views.push(writer);
        }
        let view_paths = views.iter().map(|v| v.path.clone()).collect();
        let views = if views.is_empty() {
            None
        } else {
            Some(ViewWorker::start(views)?)
        };
        Ok(Box::new(LocalPartitionSink {
            target,
            raw,
            views,
            view_paths,
        }))
    }

    async fn commit_partition(
        &self,
        _staged: &StagedPartition,
        commit_visibility: BoxCommit<'_>,
    ) -> Result<Vec<String>, FerryError> {
        // The files are already durable; the manifest flip is the whole commit.
        commit_visibility.await?;
        Ok(Vec::new())
    }

    async fn resume_commit(&self, _target: &PartitionTarget) -> Result<ResumedCommit, FerryError> {
        // The manifest flip is the whole commit, and it happened.
        Ok(ResumedCommit::Committed {
            job_ids: Vec::new(),
        })
    }

    async fn discard_partition(&self, staged: &StagedPartition) {
        let target = &staged.target;
        let tables = std::iter::once(target.contract.name.as_str())
            .chain(staged.view_rows.iter().map(|(v, _)| v.as_str()));
        for table in tables {
            let _ = tokio::fs::remove_file(self.file(
                table,
                target.partition_date,
                &target.publication_id,
            ))
            .await;
        }
    }

    async fn release_interrupted(&self, _publication_ids: &[String]) {
        // Their files are unreferenced now; the next garbage collection removes them.
    }

    async fn read(&self, plan: ReadPlan) -> Result<RowStream, FerryError> {
        let contract = &plan.contract;
        let (columns, out_schema) = read_projection(&plan)?;
        let stored = table_schema(contract);
        let table_schema = projected(
            &stored,
            &indices_of(
                &stored,
                &table_column_names(contract, &plan.table),
                |name| FerryError::Internal(format!("column {name} is not stored")),
            )?,
        )?;
        if plan.partitions.is_empty() || plan.limit == Some(0) {
            return Ok(RowStream {
                schema: out_schema,
                batches: futures::stream::empty().boxed(),
            });
        }
        let pins = ReadPins::new(
            &self.pins,
            plan.partitions
                .iter()
                .map(|p| p.publication_id.clone())
                .collect(),
        );
        let files: Vec<PathBuf> = plan
            .partitions
            .iter()
            .map(|p| self.file(&plan.table, p.partition_date, &p.publication_id))
            .collect();
        // Pinned now; a file already gone was replaced and collected between the plan and the pin.
        if let Some(gone) = files.iter().find(|f| !f.exists()) {
            return Err(FerryError::WarehouseUnavailable(format!(
                "a partition of {} was replaced while this read started ({}); retry",
                plan.table,
                gone.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )));
        }
        let paths: Vec<String> = files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        // One target partition reads files in manifest order, so rows come back in date order
        // and source order without a sort.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        let mut frame = ctx
            .read_parquet(paths, ParquetReadOptions::default().schema(&table_schema))
            .await?;
        if let Some(filter) = &plan.filter
            && let Some(expr) = datafusion_filter(filter)?
        {
            frame = frame.filter(expr)?;
        }
        let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        frame = frame.select_columns(&column_refs)?;
        if let Some(limit) = plan.limit {
            frame = frame.limit(0, Some(limit as usize))?;
        }
        let stream = frame.execute_stream().await?;
        Ok(RowStream {
            schema: out_schema,
            batches: stream
                .map_err(FerryError::from)
                .map(move |batch| {
                    // The stream owns the pins: they go when the reader drops it.
                    let _pinned = &pins;
                    batch
                })
                .boxed(),
        })
    }

    async fn sync_access(
        &self,
        _contract: &Contract,
        _target: &str,
        _consumers: &[ConsumerAccess],
    ) -> Result<(), FerryError> {
        // Nobody reads these files but Ferry, which checks grants on every read.
        Ok(())
    }

    async fn collect_garbage(
        &self,
        keep: &[String],
        scope: Option<GarbageScope<'_>>,
    ) -> Result<u64, FerryError> {
        let mut referenced: HashSet<String> = keep.iter().cloned().collect();
        referenced.extend(
            self.pins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        // After a commit, only the partition it replaced: the raw table's and its views' day.
        let days: Vec<PathBuf> = match scope {
            Some(scope) => std::iter::once(scope.contract.name.as_str())
                .chain(scope.contract.materialized_views().map(|v| v.name.as_str()))
                .map(|table| self.root.join(table).join(scope.partition_date.to_string()))
                .collect(),
            None => Vec::new(),
        };
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let days = if days.is_empty() {
                every_day_directory(&root)?
            } else {
                days
            };
            Ok(collect_unreferenced(&days, &referenced))
        })
        .await
        .map_err(|e| FerryError::Internal(format!("garbage collection task: {e}")))?
    }
}

/// `tables/<table>/<date>` for every table and day.
fn every_day_directory(root: &Path) -> Result<Vec<PathBuf>, FerryError> {
    let mut days = Vec::new();
    for table in std::fs::read_dir(root)? {
        let table = table?.path();
        if table.is_dir() {
            for day in std::fs::read_dir(&table)? {
                let day = day?.path();
                if day.is_dir() {
                    days.push(day);
                }
            }
        }
    }
    Ok(days)
}

/// Removes the files in `days` whose publication nothing references.
fn collect_unreferenced(days: &[PathBuf], referenced: &HashSet<String>) -> u64 {
    let mut removed = 0;
    for day in days {
        let Ok(files) = std::fs::read_dir(day) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !referenced.contains(id) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
