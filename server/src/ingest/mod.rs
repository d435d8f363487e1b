//! The publish data path shared by every warehouse: stream the source, hash it, validate every
//! record, and hand clean batches to the warehouse's partition sink.
//!
//! Three stages overlap so a 2-core machine stays busy: an async reader (network/disk, SHA-256),
//! a validating parser, and the sink's encoder. Bounded channels between them keep memory flat
//! whatever the file size.

mod decompress;
mod http_guard;
pub mod infer;
mod ndjson;
mod parquet;
mod quality;
mod quarantine;
pub mod source;
mod text;
mod validate;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::contract::Contract;
use crate::error::FerryError;
use crate::governance::Pseudonymizer;
use crate::warehouse::{PartitionSink, StagedPartition};

pub use crate::error::RowError;
pub use crate::warehouse::{arrow_type, table_schema};
pub use quality::{DEFAULT_MAX_UNIQUE_KEYS, row_count_outcomes};
pub use quarantine::CsvQuarantine;
pub use source::{Source, SourceBody, SourcesConfig};
pub use validate::{
    BATCH_ROWS, RecordLimits, RejectedRecord, RowValidator, ValidationProgress, ValidationSummary,
};

/// Source bytes are regrouped into chunks of this size before crossing to the parser thread.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between reader and parser.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Batches in flight between parser and sink.
const BATCHES_IN_FLIGHT: usize = 2;

/// Live counters of one publish, read by whoever reports progress.
#[derive(Debug, Default)]
pub struct IngestProgress {
    pub bytes_read: AtomicU64,
    pub total_bytes: AtomicU64,
    pub validation: Arc<ValidationProgress>,
    stage: std::sync::atomic::AtomicU8,
}

/// Where a publish is, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PublishStage {
    Opening = 0,
    Validating = 1,
    Committing = 2,
}

impl PublishStage {
    pub fn name(self) -> &'static str {
        match self {
            Self::Opening => "opening source",
            Self::Validating => "validating",
            Self::Committing => "committing",
        }
    }
}

impl IngestProgress {
    pub fn rows(&self) -> u64 {
        self.validation.rows.load(Ordering::Relaxed)
    }

    pub fn stage(&self) -> PublishStage {
        match self.stage.load(Ordering::Relaxed) {
            0 => PublishStage::Opening,
            1 => PublishStage::Validating,
            _ => PublishStage::Committing,
        }
    }

    pub fn set_stage(&self, stage: PublishStage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }
}

/// What reading and validating the source produced.
pub struct IngestOutcome {
    pub sha256: String,
    pub bytes: u64,
    pub summary: ValidationSummary,
    /// The staged partition when the rows were acceptable; `None` when too many were rejected.
    pub staged: Option<StagedPartition>,
}

/// Where rejected rows go when the contract tolerates some.
pub trait Quarantine: Send {
    fn put(&mut self, record: RejectedRecord<'_>) -> Result<(), FerryError>;
    fn finish(self: Box<Self>) -> Result<(), FerryError>;
}

/// How records are checked beyond the contract: pseudonymization and the record bounds.
#[derive(Clone)]
pub struct ValidationSettings {
    pub pseudonymizer: Option<Pseudonymizer>,
    pub limits: RecordLimits,
    /// Distinct keys a `unique` quality rule may hold.
    pub max_unique_keys: usize,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            pseudonymizer: None,
            limits: RecordLimits::default(),
            max_unique_keys: DEFAULT_MAX_UNIQUE_KEYS,
        }
    }
}

/// Streams `source` through validation into `sink`.
pub async fn ingest(
    source: &Source,
    contract: Arc<Contract>,
    partition_date: chrono::NaiveDate,
    sink: Box<dyn PartitionSink>,
    quarantine: Option<Box<dyn Quarantine>>,
    progress: Arc<IngestProgress>,
    validation: ValidationSettings,
) -> Result<IngestOutcome, FerryError> {
    let opened = source
        .open()
        .instrument(tracing::info_span!("publish.fetch_source"))
        .await?;
    progress.total_bytes.store(opened.size, Ordering::Relaxed);
    progress.set_stage(PublishStage::Validating);

    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Bytes, FerryError>>(CHUNKS_IN_FLIGHT);
    let mut chunker = Chunker::new(chunk_tx, progress.clone());
    let reader = match opened.body {
        SourceBody::File(mut file) => tokio::task::spawn_blocking(move || {
            loop {
                let mut buffer = BytesMut::zeroed(CHUNK_BYTES);
                let n = match read_full(&mut file, &mut buffer) {
                    Ok(n) => n,
                    Err(e) => return Err(chunker.fail(e.to_string())),
                };
                if n == 0 {
                    return Ok(chunker.finish());
                }
                buffer.truncate(n);
                if !chunker.send_blocking(buffer.freeze()) {
                    return Ok(chunker.finish());
                }
            }
        }),
        SourceBody::Stream(mut chunks) => tokio::spawn(async move {
            let mut pending = BytesMut::with_capacity(CHUNK_BYTES);
            while let Some(chunk) = chunks.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        chunker.fail(e.to_string());
                        return Err(e);
                    }
                };
                pending.extend_from_slice(&chunk);
                if pending.len() >= CHUNK_BYTES && !chunker.send(pending.split().freeze()).await {
                    break;
                }
            }
            if !pending.is_empty() {
                chunker.send(pending.freeze()).await;
            }
            Ok(chunker.finish())
        }),
    };

    let validation_progress = progress.validation.clone();
    let parent = tracing::Span::current();
    let parse = tokio::task::spawn_blocking(move || {
        let _span = tracing::info_span!(parent: &parent, "publish.validate").entered();
        validate_into_sink(
            &contract,
            partition_date,
            ChannelReader::new(chunk_rx),
            sink,
            quarantine,
            validation_progress,
            validation,
        )
    });

    let parsed = parse
        .await
        .map_err(|e| FerryError::Internal(format!("validation task failed: {e}")))?;
    let read = reader
        .await
        .map_err(|e| FerryError::Internal(format!("source reader task failed: {e}")))?;
    // A source failure explains a parser failure better than the parser's own error.
    let (sha256, bytes) = read.map_err(|e| match e {
        // The reader saw a local I/O failure; the parser only saw its echo.
        FerryError::Internal(reason) => FerryError::SourceUnavailable {
            uri: source.uri.clone(),
            reason,
        },
        other => other,
    })?;
    let (summary, staged) = parsed?;
    Ok(IngestOutcome {
        sha256,
        bytes,
        summary,
        staged,
    })
}

fn validate_into_sink(
    contract: &Contract,
    partition_date: chrono::NaiveDate,
    input: ChannelReader,
    mut sink: Box<dyn PartitionSink>,
    mut quarantine: Option<Box<dyn Quarantine>>,
    progress: Arc<ValidationProgress>,
    validation: ValidationSettings,
) -> Result<(ValidationSummary, Option<StagedPartition>), FerryError> {
    let validator = RowValidator::new(contract, partition_date, progress, validation.pseudonymizer)
        .with_limits(validation.limits)
        .with_quality(validation.max_unique_keys)?;
    let cannot_start =
        |e: io::Error| FerryError::malformed(None, format!("cannot start reading the source: {e}"));
    let (input, compression) =
        decompress::decoded(input, contract.source.compression).map_err(cannot_start)?;
    // Decompression is a stage of its own: on two cores it overlaps with parsing.
    let input: Box<dyn Read + Send> = match compression {
        crate::contract::Compression::None | crate::contract::Compression::Auto => input,
        _ => Box::new(decompress::on_own_thread(input).map_err(cannot_start)?),
    };
    let limit = contract.source.max_rejected_rows;
    let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let parent = tracing::Span::current();
    let writer = std::thread::Builder::new()
        .name("ferry-sink".into())
        .spawn(move || -> Result<Box<dyn PartitionSink>, FerryError> {
            let _span = tracing::info_span!(parent: &parent, "publish.stage").entered();
            for batch in batch_rx {
                sink.write(&batch)?;
            }
            Ok(sink)
        })
        .map_err(|e| FerryError::Internal(format!("cannot start the sink thread: {e}")))?;

    let rejected = std::cell::Cell::new(0u64);
    let result = validator.run(
        input,
        |batch| {
            if rejected.get() > limit {
                return Ok(());
            }
            batch_tx
                .send(batch)
                .map_err(|_| FerryError::Internal("the partition sink stopped".into()))
        },
        |record| {
            rejected.set(rejected.get() + 1);
            match quarantine.as_mut() {
                Some(q) if rejected.get() <= limit => q.put(record),
                _ => Ok(()),
            }
        },
    );
    drop(batch_tx);
    let sink_result = writer
        .join()
        .map_err(|_| FerryError::Internal("the partition sink panicked".into()))?;
    let summary = match (result, sink_result) {
        (Ok(summary), Ok(sink)) => {
            if summary.rows_rejected > limit {
                sink.abort();
                return Ok((summary, None));
            }
            if let Some(q) = quarantine {
                q.finish()?;
            }
            return Ok((summary, Some(sink.finish()?)));
        }
        (Err(e), Ok(sink)) => {
            sink.abort();
            e
        }
        // The sink's own error is the cause when it stopped first.
        (_, Err(e)) => e,
    };
    Err(summary)
}

/// Hashes and counts source bytes on their way to the parser.
struct Chunker {
    tx: mpsc::Sender<Result<Bytes, FerryError>>,
    hasher: Sha256,
    total: u64,
    progress: Arc<IngestProgress>,
}

impl Chunker {
    fn new(tx: mpsc::Sender<Result<Bytes, FerryError>>, progress: Arc<IngestProgress>) -> Self {
        Self {
            tx,
            hasher: Sha256::new(),
            total: 0,
            progress,
        }
    }

    fn account(&mut self, chunk: &Bytes) {
        self.hasher.update(chunk);
        self.total += chunk.len() as u64;
        self.progress
            .bytes_read
            .store(self.total, Ordering::Relaxed);
    }

    /// Returns false when the parser has stopped (its error is reported instead).
    async fn send(&mut self, chunk: Bytes) -> bool {
        self.account(&chunk);
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    fn send_blocking(&mut self, chunk: Bytes) -> bool {
        self.account(&chunk);
        self.tx.blocking_send(Ok(chunk)).is_ok()
    }

    /// Tells the parser the source broke, so it stops instead of seeing a short file.
    fn fail(&self, reason: String) -> FerryError {
        let _ = self
            .tx
            .try_send(Err(FerryError::Internal("source read failed".into())));
        FerryError::Internal(reason)
    }

    fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.total)
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A blocking `Read` over the chunks the reader sends.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, FerryError>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Result<Bytes, FerryError>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
