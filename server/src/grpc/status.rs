//! The one place where domain errors become gRPC statuses.

use tonic::{Code, Status};

use crate::error::FerryError;

impl From<FerryError> for Status {
    fn from(error: FerryError) -> Self {
        let code = match &error {
            FerryError::InvalidContract(_)
            | FerryError::InvalidArgument(_)
            | FerryError::MalformedSource(_)
            | FerryError::RowsRejected { .. }
            | FerryError::ChecksumMismatch { .. } => Code::InvalidArgument,
            FerryError::IncompatibleContract(_) | FerryError::FailedPrecondition(_) => {
                Code::FailedPrecondition
            }
            FerryError::Unauthenticated(_) => Code::Unauthenticated,
            FerryError::PermissionDenied(_) => Code::PermissionDenied,
            FerryError::NotFound(_) | FerryError::SourceNotFound { .. } => Code::NotFound,
            FerryError::SourceUnavailable { .. } | FerryError::WarehouseUnavailable(_) => {
                Code::Unavailable
            }
            FerryError::WarehouseQuota(_) | FerryError::ResourceExhausted(_) => {
                Code::ResourceExhausted
            }
            FerryError::Warehouse(_) | FerryError::Registry(_) | FerryError::Internal(_) => {
                Code::Internal
            }
        };
        if code == Code::Internal {
            tracing::error!(error = %error, "internal error");
        }
        Status::new(code, error.to_string())
    }
}
