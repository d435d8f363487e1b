//! The one error type of Ferry's domain. The gRPC adapter maps it to `tonic::Status` in one
//! place (`grpc::status`), so domain code never sees transport types.

use crate::ingest::RowError;

#[derive(Debug, thiserror::Error)]
pub enum FerryError {
    #[error("invalid contract: {0}")]
    InvalidContract(String),
    #[error("incompatible contract change: {0}")]
    IncompatibleContract(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("source {uri}: {reason}")]
    SourceNotFound { uri: String, reason: String },
    #[error("source {uri} is unavailable: {reason}")]
    SourceUnavailable { uri: String, reason: String },
    #[error("source checksum mismatch: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    /// The source was read but its rows do not satisfy the contract.
    #[error("{}", rejected_summary(.publication_id, .rejected, .errors))]
    RowsRejected {
        publication_id: String,
        rejected: u64,
        errors: Vec<RowError>,
    },
    /// The source is not a readable CSV at all (bad header, bad encoding).
    #[error("malformed source: {0}")]
    MalformedSource(String),
    #[error("warehouse: {0}")]
    Warehouse(String),
    /// The warehouse could not be reached or refused Ferry's credentials; retrying later may work.
    #[error("warehouse unavailable: {0}")]
    WarehouseUnavailable(String),
    /// A warehouse quota or rate limit held after Ferry's own retries.
    #[error("warehouse quota: {0}")]
    WarehouseQuota(String),
    /// A server limit (concurrent publishes) is reached; retrying later may work.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How many row errors a message lists before summarizing the rest.
pub const LISTED_ROW_ERRORS: usize = 20;

fn rejected_summary(publication_id: &str, rejected: &u64, errors: &[RowError]) -> String {
    let mut text = format!(
        "publication {publication_id} rejected: {rejected} row(s) do not match the contract"
    );
    for error in errors.iter().take(LISTED_ROW_ERRORS) {
        text.push_str(&format!("\n  {error}"));
    }
    if errors.len() > LISTED_ROW_ERRORS || *rejected as usize > errors.len().min(LISTED_ROW_ERRORS)
    {
        text.push_str(&format!(
            "\n  ... see `ferry publications` / GetPublication {publication_id} for the full report"
        ));
    }
    text
}

impl From<sqlx::Error> for FerryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Registry(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for FerryError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Registry(format!("migration failed: {e}"))
    }
}

impl From<datafusion::error::DataFusionError> for FerryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Warehouse(e.to_string())
    }
}

impl From<parquet::errors::ParquetError> for FerryError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Warehouse(format!("parquet: {e}"))
    }
}

impl From<std::io::Error> for FerryError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(format!("I/O: {e}"))
    }
}

pub type Result<T, E = FerryError> = std::result::Result<T, E>;
