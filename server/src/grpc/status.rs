//! The one place where domain errors become gRPC statuses: the code and the
//! `google.rpc.ErrorInfo` (reason, domain, metadata) follow from the error's [`Reason`], with a
//! `BadRequest` field violation when a request field is wrong. An internal error answers with an
//! opaque id; its cause, with the whole source chain, goes to the log under that id only
//! ([`FerryError::into_reported`]).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{DOMAIN, FerryError, Reason};

/// Longest message sent: the details repeat it in a trailer, and clients cap metadata size.
const LONGEST_MESSAGE: usize = 2048;

pub fn code(reason: Reason) -> Code {
    match reason {
        Reason::InvalidField
        | Reason::ContractInvalid
        | Reason::NameTaken
        | Reason::ChecksumMismatch
        | Reason::PublicationRejected
        | Reason::QualityRuleFailed
        | Reason::SourceMalformed => Code::InvalidArgument,
        Reason::IncompatibleChange
        | Reason::PseudonymizationKeyMissing
        | Reason::GrantNotPending
        | Reason::WarehousePermissionMissing
        | Reason::ConfigurationInvalid => Code::FailedPrecondition,
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::PolicyDenied
        | Reason::NamespaceOwned
        | Reason::SourceNotAllowed
        | Reason::SourceNotBound
        | Reason::GrantSelfApproval => Code::PermissionDenied,
        Reason::DatasetNotFound
        | Reason::DatasetOrViewNotFound
        | Reason::ViewNotFound
        | Reason::PublicationNotFound
        | Reason::GrantNotFound
        | Reason::TokenNotFound
        | Reason::WarehouseTableMissing
        | Reason::SourceNotFound => Code::NotFound,
        Reason::SourceUnavailable | Reason::WarehouseUnavailable => Code::Unavailable,
        Reason::WarehouseQuotaExceeded | Reason::PublishLimitReached => Code::ResourceExhausted,
        Reason::PartitionRepairNeeded => Code::Aborted,
        Reason::Internal => Code::Internal,
    }
}

impl From<FerryError> for Status {
    fn from(error: FerryError) -> Self {
        let error = error.into_reported();
        let reason = error.reason();
        let message = crate::service::truncated(&error.to_string(), LONGEST_MESSAGE);
        let metadata: HashMap<String, String> = error
            .metadata()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut details = ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata);
        if let FerryError::InvalidField { field, .. } = &error {
            details.add_bad_request_violation(*field, message.clone());
        }
        Status::with_error_details(code(reason), message, details)
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn every_reason_is_listed_in_the_proto() {
        let proto = include_str!("../../../proto/ferry/v1/ferry.proto");
        for reason in Reason::VARIANTS {
            assert!(
                proto.contains(&format!("//   {} ", reason.as_str())),
                "{} is not listed in ferry.proto",
                reason.as_str()
            );
        }
    }

    #[test]
    fn internal_errors_answer_an_id_and_never_the_cause() {
        let status = Status::from(FerryError::Registry("password=hunter2 in the URL".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(
            !status.message().contains("hunter2"),
            "{}",
            status.message()
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.domain, DOMAIN);
        assert!(status.message().contains(&info.metadata["error_id"]));
    }

    #[test]
    fn a_wrong_field_is_a_bad_request_violation() {
        let status = Status::from(FerryError::invalid_field(
            "partition_date",
            "\"x\" is not a date",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "INVALID_FIELD"
        );
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "partition_date");
    }
}
