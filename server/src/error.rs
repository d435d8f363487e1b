//! The one error type of Ferry's domain, and the stable [`Reason`] each error answers with.
//! The gRPC adapter maps it to `tonic::Status` in one place (`grpc::status`), so domain code
//! never sees transport types; clients decide from the reason and its metadata, never from text.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum FerryError {
    #[error("invalid contract: {0}")]
    InvalidContract(String),
    /// A dataset or view name another contract already uses.
    #[error("{0}")]
    NameTaken(String),
    #[error("incompatible contract change: {0}")]
    IncompatibleContract(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("permission denied: {message}")]
    PermissionDenied { denial: Denial, message: String },
    #[error("{message}")]
    FailedPrecondition {
        precondition: Precondition,
        message: String,
    },
    /// A request field is wrong; `field` is its name in the request message.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(Missing),
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
    /// The rows satisfy the contract's types, but an `error` quality rule failed.
    #[error("{}", quality_summary(.publication_id, .failed))]
    QualityRulesFailed {
        publication_id: String,
        failed: Vec<FailedRule>,
    },
    /// The source is not a readable CSV at all (bad header, bad encoding).
    #[error("malformed source: {message}")]
    MalformedSource {
        /// The 1-based line where reading stopped, when known.
        line: Option<u64>,
        message: String,
    },
    #[error("warehouse: {0}")]
    Warehouse(String),
    /// The registry serves a partition the warehouse could not commit; publishing the day again
    /// repairs it.
    #[error("{0}")]
    RepairNeeded(String),
    /// The warehouse could not be reached or refused Ferry's credentials; retrying later may work.
    #[error("warehouse unavailable: {0}")]
    WarehouseUnavailable(String),
    /// A warehouse quota or rate limit held after Ferry's own retries.
    #[error("warehouse quota: {0}")]
    WarehouseQuota(String),
    /// A server limit (concurrent publishes) is reached; retrying later may work.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The server's own configuration or policy files are wrong (at start, or on a policy
    /// reload); never the caller's request.
    #[error("configuration: {0}")]
    Config(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error("registry: {0}")]
    Database(#[from] sqlx::Error),
    #[error("registry migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
    /// An internal error whose cause the server logged under `error_id`; all a caller sees.
    #[error("internal error (id {error_id}); the server's log has the cause")]
    Reported { error_id: String },
}

/// Why a call was refused although its caller is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The policy does not allow this principal this action.
    Policy,
    /// Another team owns the namespace.
    NamespaceOwned,
    /// The server never reads this source (file roots, internal addresses, redirects).
    SourceNotAllowed,
    /// The dataset's owner team is not bound to this source.
    SourceNotBound,
    /// An approver may not approve a grant they made, received or minted the token for.
    SelfApproval,
}

/// A state the call needs and the server or the object is not in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    PseudonymizationKeyMissing,
    GrantNotPending,
    WarehousePermissionMissing,
}

/// What a NOT_FOUND names: the kind of thing and the name the caller asked for, never more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Dataset(String),
    DatasetOrView(String),
    View(String),
    Publication(String),
    Grant(String),
    Token(String),
    /// A table the warehouse should hold and does not (dropped by hand).
    WarehouseTable(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dataset(name) => write!(f, "dataset {name}"),
            Self::DatasetOrView(name) => write!(f, "dataset or view {name}"),
            Self::View(name) => write!(f, "view {name}"),
            Self::Publication(id) => write!(f, "publication {id}"),
            Self::Grant(id) => write!(f, "grant {id}"),
            Self::Token(id) => write!(f, "token {id}"),
            Self::WarehouseTable(text) => write!(f, "{text}"),
        }
    }
}

/// The stable, machine-readable reason of an error (`google.rpc.ErrorInfo.reason`, domain
/// [`DOMAIN`]). Clients decide from these; the list is in `proto/ferry/v1/ferry.proto`, and a
/// test keeps the two equal. Never rename one: add a new reason instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    InvalidField,
    ContractInvalid,
    NameTaken,
    IncompatibleChange,
    Unauthenticated,
    PolicyDenied,
    NamespaceOwned,
    SourceNotAllowed,
    SourceNotBound,
    GrantSelfApproval,
    PseudonymizationKeyMissing,
    GrantNotPending,
    WarehousePermissionMissing,
    DatasetNotFound,
    DatasetOrViewNotFound,
    ViewNotFound,
    PublicationNotFound,
    GrantNotFound,
    TokenNotFound,
    WarehouseTableMissing,
    SourceNotFound,
    SourceUnavailable,
    ChecksumMismatch,
    PublicationRejected,
    QualityRuleFailed,
    SourceMalformed,
    PartitionRepairNeeded,
    WarehouseUnavailable,
    WarehouseQuotaExceeded,
    PublishLimitReached,
    ConfigurationInvalid,
    Internal,
}

/// `google.rpc.ErrorInfo.domain` of every Ferry error.
pub const DOMAIN: &str = "ferry";

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FerryError {
    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// The same complaint, blamed on request field `field` (a contract-shaped check run on a
    /// request field, such as a dataset name, keeps its message without the contract prefix).
    pub fn for_field(self, field: &'static str) -> Self {
        match self {
            Self::InvalidContract(message) | Self::InvalidField { message, .. } => {
                Self::InvalidField { field, message }
            }
            other => other,
        }
    }

    pub fn denied(denial: Denial, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            denial,
            message: message.into(),
        }
    }

    pub fn precondition(precondition: Precondition, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            precondition,
            message: message.into(),
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidContract(_) => Reason::ContractInvalid,
            Self::NameTaken(_) => Reason::NameTaken,
            Self::IncompatibleContract(_) => Reason::IncompatibleChange,
            Self::Unauthenticated(_) => Reason::Unauthenticated,
            Self::PermissionDenied { denial, .. } => match denial {
                Denial::Policy => Reason::PolicyDenied,
                Denial::NamespaceOwned => Reason::NamespaceOwned,
                Denial::SourceNotAllowed => Reason::SourceNotAllowed,
                Denial::SourceNotBound => Reason::SourceNotBound,
                Denial::SelfApproval => Reason::GrantSelfApproval,
            },
            Self::FailedPrecondition { precondition, .. } => match precondition {
                Precondition::PseudonymizationKeyMissing => Reason::PseudonymizationKeyMissing,
                Precondition::GrantNotPending => Reason::GrantNotPending,
                Precondition::WarehousePermissionMissing => Reason::WarehousePermissionMissing,
            },
            Self::InvalidField { .. } => Reason::InvalidField,
            Self::NotFound(missing) => match missing {
                Missing::Dataset(_) => Reason::DatasetNotFound,
                Missing::DatasetOrView(_) => Reason::DatasetOrViewNotFound,
                Missing::View(_) => Reason::ViewNotFound,
                Missing::Publication(_) => Reason::PublicationNotFound,
                Missing::Grant(_) => Reason::GrantNotFound,
                Missing::Token(_) => Reason::TokenNotFound,
                Missing::WarehouseTable(_) => Reason::WarehouseTableMissing,
            },
            Self::SourceNotFound { .. } => Reason::SourceNotFound,
            Self::SourceUnavailable { .. } => Reason::SourceUnavailable,
            Self::ChecksumMismatch { .. } => Reason::ChecksumMismatch,
            Self::RowsRejected { .. } => Reason::PublicationRejected,
            Self::QualityRulesFailed { .. } => Reason::QualityRuleFailed,
            Self::MalformedSource { .. } => Reason::SourceMalformed,
            Self::RepairNeeded(_) => Reason::PartitionRepairNeeded,
            Self::WarehouseUnavailable(_) => Reason::WarehouseUnavailable,
            Self::WarehouseQuota(_) => Reason::WarehouseQuotaExceeded,
            Self::ResourceExhausted(_) => Reason::PublishLimitReached,
            Self::Config(_) => Reason::ConfigurationInvalid,
            Self::Warehouse(_)
            | Self::Registry(_)
            | Self::Database(_)
            | Self::Migration(_)
            | Self::Query(_)
            | Self::Parquet(_)
            | Self::Io(_)
            | Self::Internal(_)
            | Self::Reported { .. } => Reason::Internal,
        }
    }

    /// What the reason is about, as `google.rpc.ErrorInfo.metadata`: only what the caller named
    /// or may see (no other team's names, no values from a source).
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::InvalidField { field, .. } => vec![("field", (*field).to_owned())],
            Self::NotFound(missing) => match missing {
                Missing::Dataset(name) => vec![("dataset", name.clone())],
                Missing::DatasetOrView(name) | Missing::View(name) => {
                    vec![("name", name.clone())]
                }
                Missing::Publication(id) => vec![("publication_id", id.clone())],
                Missing::Grant(id) => vec![("grant_id", id.clone())],
                Missing::Token(id) => vec![("token_id", id.clone())],
                Missing::WarehouseTable(_) => Vec::new(),
            },
            Self::SourceNotFound { uri, .. } | Self::SourceUnavailable { uri, .. } => {
                vec![("source_uri", uri.clone())]
            }
            Self::ChecksumMismatch { expected, actual } => vec![
                ("expected_sha256", expected.clone()),
                ("actual_sha256", actual.clone()),
            ],
            Self::QualityRulesFailed {
                publication_id,
                failed,
            } => vec![
                ("publication_id", publication_id.clone()),
                ("rules_failed", failed.len().to_string()),
                (
                    "first_rule",
                    failed.first().map(|r| r.rule.clone()).unwrap_or_default(),
                ),
            ],
            Self::RowsRejected {
                publication_id,
                rejected,
                errors,
            } => {
                let mut metadata = vec![
                    ("publication_id", publication_id.clone()),
                    ("rows_rejected", rejected.to_string()),
                ];
                if let Some(first) = errors.first() {
                    metadata.push(("line", first.line.to_string()));
                    metadata.push(("column", first.column.clone()));
                }
                metadata
            }
            Self::MalformedSource {
                line: Some(line), ..
            } => vec![("line", line.to_string())],
            Self::Reported { error_id } => vec![("error_id", error_id.clone())],
            _ => Vec::new(),
        }
    }

    /// What may leave the server: an internal error becomes [`FerryError::Reported`], its cause
    /// (with the whole source chain) logged once under a fresh error id; any other error is
    /// returned as it is. The gRPC status and the ledger both show the result.
    pub fn into_reported(self) -> Self {
        if self.reason() != Reason::Internal || matches!(self, Self::Reported { .. }) {
            return self;
        }
        let error_id = uuid::Uuid::now_v7().to_string();
        let mut chain = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(%error_id, error = %chain, "internal error");
        Self::Reported { error_id }
    }

    /// A source that is not a readable file of its format; `line` where reading stopped.
    pub fn malformed(line: Option<u64>, message: impl Into<String>) -> Self {
        Self::MalformedSource {
            line,
            message: message.into(),
        }
    }
}

/// How many row errors a message lists before summarizing the rest.
pub const LISTED_ROW_ERRORS: usize = 20;

fn quality_summary(publication_id: &str, failed: &[FailedRule]) -> String {
    let mut text = format!(
        "publication {publication_id}: {} quality rule(s) failed; nothing changed",
        failed.len()
    );
    for rule in failed {
        text.push_str(&format!("\n  {}", rule.outcome));
    }
    text
}

/// An `error` quality rule that failed: its name, and its outcome as people read it (counts and
/// lines, never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRule {
    pub rule: String,
    pub outcome: String,
}

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

pub type Result<T, E = FerryError> = std::result::Result<T, E>;

/// A row that does not satisfy the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Text sources: the 1-based physical line where the record starts. Parquet: the 1-based
    /// row in the file.
    pub line: u64,
    pub column: String,
    pub reason: String,
    /// Parquet: the 0-based row group that holds the row.
    pub row_group: Option<u64>,
}

impl RowError {
    /// An error about the record that starts on `line` of a text source.
    pub fn at_line(line: u64, column: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            line,
            column: column.into(),
            reason: reason.into(),
            row_group: None,
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row_group {
            None => write!(f, "line {}", self.line)?,
            Some(group) => write!(f, "row {} (row group {group})", self.line)?,
        }
        if !self.column.is_empty() {
            write!(f, ", column {}", self.column)?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_errors_are_reduced_to_an_id() {
        let reported = FerryError::Registry("password=hunter2".into()).into_reported();
        let FerryError::Reported { error_id } = &reported else {
            panic!("{reported:?}");
        };
        assert!(reported.to_string().contains(error_id.as_str()));
        assert!(!reported.to_string().contains("hunter2"));
        assert_eq!(reported.reason(), Reason::Internal);
        // Reporting twice keeps the first id: one failure, one log line.
        assert_eq!(reported.to_string(), reported.into_reported().to_string());
        let refused = FerryError::NotFound(Missing::Dataset("a.b".into())).into_reported();
        assert_eq!(refused.to_string(), "dataset a.b not found");
    }
}
