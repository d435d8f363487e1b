//! Exit codes fit for scripts: one per kind of failure, stable across releases.

use tonic::Code;

pub const USAGE: i32 = 2;
pub const INVALID_INPUT: i32 = 3;
pub const NOT_FOUND: i32 = 4;
pub const CONFLICT: i32 = 5;
pub const UNAVAILABLE: i32 = 6;
pub const DENIED: i32 = 7;
pub const FAILURE: i32 = 1;

pub const HELP: &str = "Exit codes: 0 success, 1 internal failure, 2 usage error, 3 invalid input or rejected \
data, 4 not found, 5 incompatible change or precondition, 6 server or source unavailable, 7 not authenticated \
or not authorized.";

pub fn for_code(code: Code) -> i32 {
    match code {
        Code::Ok => 0,
        Code::InvalidArgument | Code::OutOfRange => INVALID_INPUT,
        Code::NotFound => NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => CONFLICT,
        Code::Unavailable | Code::DeadlineExceeded => UNAVAILABLE,
        Code::PermissionDenied | Code::Unauthenticated => DENIED,
        Code::Unimplemented => USAGE,
        _ => FAILURE,
    }
}

/// The server's stable reason for a failed call (`google.rpc.ErrorInfo`, domain `ferry`), which
/// the CLI decides from; None for transport failures and other servers.
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .filter(|info| info.domain == "ferry")
        .map(|info| info.reason)
}

/// How the CLI prints a failed call: the reason (or the code, without one) and the message.
pub fn describe(status: &tonic::Status) -> String {
    match reason(status) {
        Some(reason) => format!("{reason}: {}", status.message()),
        None => format!("{:?}: {}", status.code(), status.message()),
    }
}

/// Picks the exit code for an error chain: the gRPC status if there is one.
pub fn for_error(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return for_code(status.code());
        }
        if cause.downcast_ref::<tonic::transport::Error>().is_some() {
            return UNAVAILABLE;
        }
    }
    FAILURE
}
