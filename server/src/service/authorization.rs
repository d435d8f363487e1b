//! Who the caller is and what they may do: authentication, policy checks, source bindings
//! and the audit trail of both.

use chrono::Utc;
use opentelemetry::KeyValue;

use crate::error::{Denial, FerryError};
use crate::governance::{AccessRequest, Action, AuditEvent, AuditOutcome, Caller};
use crate::ingest::source::Source;
use crate::registry::AuditQuery;
use crate::telemetry::metrics::METRICS;

use super::Ferry;

impl Ferry {
    /// Resolves the `authorization` header to a caller. Failures are audited without the token.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        request_id: &str,
    ) -> Result<Caller, FerryError> {
        match self.authenticator.authenticate(authorization).await {
            Ok(identity) => Ok(Caller {
                minted_by: identity.minted_by,
                ..Caller::new(identity.principal, request_id)
            }),
            Err(error) => {
                // Counted, not audited: anyone can send a bad token, and one audit row per probe
                // would let an anonymous caller fill the registry.
                METRICS
                    .authz_denials
                    .add(1, &[KeyValue::new("ferry.reason", "unauthenticated")]);
                tracing::debug!(request_id, error = %error, "unauthenticated call refused");
                Err(error)
            }
        }
    }

    pub(super) fn allows(
        &self,
        caller: &Caller,
        action: Action,
        object: &str,
        owner: &str,
    ) -> Result<bool, FerryError> {
        self.authorizer.allows(&AccessRequest {
            subject: &caller.principal,
            object,
            owner,
            action,
        })
    }

    /// Default deny: the call proceeds only if the policy allows it. Denials are audited and the
    /// message names only what the caller itself asked for.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        object: &str,
        owner: &str,
    ) -> Result<(), FerryError> {
        if self.allows(caller, action, object, owner)? {
            return Ok(());
        }
        self.record_denial(caller, action, object, "").await;
        let what = if object == "*" {
            String::new()
        } else {
            format!(" {object}")
        };
        Err(FerryError::denied(
            Denial::Policy,
            format!("{} may not {}{what}", caller.principal, action.as_str()),
        ))
    }

    /// A publish reads a source only if the dataset's owner team is bound to it by a policy
    /// line (`p, TEAM, source:PREFIX*, read_source, never`), whoever the caller is: the server's
    /// credentials and file roots serve a team only for what the deployment gave that team.
    pub(super) async fn authorize_source(
        &self,
        caller: &Caller,
        owner: &str,
        source: &Source,
    ) -> Result<(), FerryError> {
        let object = format!("source:{}", source.canonical_uri);
        let bound = self.authorizer.allows(&AccessRequest {
            subject: owner,
            object: &object,
            owner,
            action: Action::ReadSource,
        })?;
        if bound {
            return Ok(());
        }
        self.record_denial(caller, Action::ReadSource, &object, "not bound")
            .await;
        Err(FerryError::denied(
            Denial::SourceNotBound,
            format!(
                "source {:?}: {owner} is not bound to it; a deployment binds a team to sources \
             with a policy line `p, {owner}, source:PREFIX*, read_source, never`",
                source.uri
            ),
        ))
    }

    /// Counts and audits a policy denial.
    pub(super) async fn record_denial(
        &self,
        caller: &Caller,
        action: Action,
        object: &str,
        detail: &str,
    ) {
        METRICS.authz_denials.add(
            1,
            &[
                KeyValue::new("ferry.reason", "policy"),
                KeyValue::new("ferry.action", action.as_str()),
            ],
        );
        self.audit(
            caller,
            action.as_str(),
            object,
            AuditOutcome::Denied,
            detail,
        )
        .await;
    }

    /// Appends to the audit log. A failed write is logged loudly but does not undo the action
    /// it describes, which has already happened.
    pub(super) async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        outcome: AuditOutcome,
        detail: &str,
    ) {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            principal: caller.principal.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            detail: detail.to_owned(),
            request_id: caller.request_id.clone(),
        };
        if let Err(e) = self.registry.append_audit(&event).await {
            tracing::error!(error = %e, action, target, "could not write the audit log");
        }
    }

    pub async fn audit_events(
        &self,
        query: AuditQuery,
        caller: &Caller,
    ) -> Result<Vec<AuditEvent>, FerryError> {
        self.authorize(caller, Action::Audit, "*", "").await?;
        self.registry.audit_events(&query).await
    }
}
