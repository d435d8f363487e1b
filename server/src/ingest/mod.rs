//! The publish data path shared by every warehouse: stream the source, hash it, validate every
//! record, and hand clean batches to the warehouse's partition sink.
//!
//! Three stages overlap so a 2-core machine stays busy: an async reader (network/disk, SHA-256),
//! a validating parser, and the sink's encoder. Bounded channels between them keep memory flat
//! whatever the file size.

mod quarantine;
pub mod source;
mod validate;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::contract::Contract;
use crate::error::FerryError;
use crate::warehouse::{PartitionSink, StagedPartition};

pub use quarantine::CsvQuarantine;
pub use source::{Source, SourcesConfig};
pub use validate::{
    BATCH_ROWS, CsvValidator, RejectedRecord, RowError, ValidationProgress, ValidationSummary,
    arrow_type, table_schema,
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
}

impl IngestProgress {
    pub fn rows(&self) -> u64 {
        self.validation.rows.load(Ordering::Relaxed)
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

/// Streams `source` through validation into `sink`.
pub async fn ingest(
    source: &Source,
    contract: Arc<Contract>,
    partition_date: chrono::NaiveDate,
    sink: Box<dyn PartitionSink>,
    quarantine: Option<Box<dyn Quarantine>>,
    progress: Arc<IngestProgress>,
) -> Result<IngestOutcome, FerryError> {
    let opened = source.open().await?;
    progress.total_bytes.store(opened.size, Ordering::Relaxed);

    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Bytes, FerryError>>(CHUNKS_IN_FLIGHT);
    let reader_progress = progress.clone();
    let reader = tokio::spawn(async move {
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut pending = BytesMut::with_capacity(CHUNK_BYTES);
        let mut chunks = opened.chunks;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = chunk_tx
                        .send(Err(FerryError::Internal("source read failed".into())))
                        .await;
                    return Err(e);
                }
            };
            hasher.update(&chunk);
            total += chunk.len() as u64;
            reader_progress.bytes_read.store(total, Ordering::Relaxed);
            pending.extend_from_slice(&chunk);
            if pending.len() >= CHUNK_BYTES
                && chunk_tx.send(Ok(pending.split().freeze())).await.is_err()
            {
                // The parser stopped (its error is reported instead).
                return Ok((hex::encode(hasher.finalize()), total));
            }
        }
        if !pending.is_empty() {
            let _ = chunk_tx.send(Ok(pending.freeze())).await;
        }
        Ok((hex::encode(hasher.finalize()), total))
    });

    let validation_progress = progress.validation.clone();
    let parse = tokio::task::spawn_blocking(move || {
        validate_into_sink(
            &contract,
            partition_date,
            ChannelReader::new(chunk_rx),
            sink,
            quarantine,
            validation_progress,
        )
    });

    let parsed = parse
        .await
        .map_err(|e| FerryError::Internal(format!("validation task failed: {e}")))?;
    let read = reader
        .await
        .map_err(|e| FerryError::Internal(format!("source reader task failed: {e}")))?;
    // A source failure explains a parser failure better than the parser's own error.
    let (sha256, bytes) = read?;
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
) -> Result<(ValidationSummary, Option<StagedPartition>), FerryError> {
    let validator = CsvValidator::new(contract, partition_date, progress);
    let limit = contract.source.max_rejected_rows;
    let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let writer = std::thread::Builder::new()
        .name("ferry-sink".into())
        .spawn(move || -> Result<Box<dyn PartitionSink>, FerryError> {
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

/// A blocking `Read` over the chunks the async reader sends.
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
