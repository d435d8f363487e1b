//! Governance: who is calling (authentication), what they may do (casbin authorization over
//! base policies and run-time grants), how personal data is handled (pseudonymization at publish,
//! masking at read) and what happened (the audit log). Free of transport types.

mod audit;
mod authn;
mod authz;
mod grants;
mod masking;
mod oidc;
mod pseudonymize;
mod tokens;

pub use audit::{AuditEvent, AuditOutcome};
pub use authn::{AuthConfig, Authenticator, Identity, OidcIssuer, TokenStore};
pub use authz::{
    AccessRequest, Action, Authorizer, PolicyCheckReport, Scope, check_policies, write_policy_dir,
};
pub use grants::{Grant, GrantRole, GrantStatus, NewGrant};
pub use masking::{ColumnAccess, MASKED_TEXT, mask_batch, masked_schema};
pub use pseudonymize::Pseudonymizer;
pub use tokens::{IssuedToken, TokenRecord, hash_token, new_token};

use crate::error::FerryError;

/// An authenticated caller and the request it made, as recorded in the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `kind:name`, e.g. `team:catalog`, `admin:platform`, `privacy:dpo`.
    pub principal: String,
    pub request_id: String,
    /// The principal that minted the token in use, when it is a Ferry token.
    pub minted_by: Option<String>,
}

impl Caller {
    pub fn new(principal: impl Into<String>, request_id: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            request_id: request_id.into(),
            minted_by: None,
        }
    }

    /// Whether this caller is `principal` or acts through a token `principal` minted.
    pub fn acts_for(&self, principal: &str) -> bool {
        self.principal == principal || self.minted_by.as_deref() == Some(principal)
    }

    /// Ferry itself, for work no client asked for (retention, bootstrap).
    pub fn system(task: &str) -> Self {
        Self::new(format!("system:{task}"), uuid::Uuid::now_v7().to_string())
    }
}

/// Principals are `kind:name`. They end up in casbin's CSV policies and in BigQuery access
/// entries, so the alphabet is narrow: no commas, quotes or whitespace.
pub fn validate_principal(principal: &str) -> Result<(), FerryError> {
    let valid = principal.split_once(':').is_some_and(|(kind, name)| {
        !kind.is_empty()
            && kind.chars().all(|c| c.is_ascii_lowercase())
            && !name.is_empty()
            && name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(FerryError::invalid_field(
            "principal",
            format!(
                "principal {principal:?} must look like kind:name (e.g. team:catalog), using letters, digits, - _ . @"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_kind_colon_name() {
        for ok in [
            "team:catalog",
            "admin:platform",
            "sa:loader@proj.iam.gserviceaccount.com",
        ] {
            validate_principal(ok).unwrap();
        }
        for bad in [
            "catalog",
            "team:",
            ":x",
            "team:a,b",
            "Team:a",
            "team:a b",
            "team:\"a\"",
        ] {
            assert!(validate_principal(bad).is_err(), "{bad}");
        }
    }
}
