//! Ferry's governance use cases: authenticating callers, authorizing and auditing every call,
//! masking reads, and managing grants, tokens, policies and retention.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use opentelemetry::KeyValue;
use tracing::{info, warn};

use crate::contract::{Classification, Contract, PiiHandling, validate_qualified_name};
use crate::error::{Denial, FerryError, Missing, Precondition};
use crate::governance::{
    AccessRequest, Action, AuditEvent, AuditOutcome, Caller, ColumnAccess, Grant, GrantRole,
    GrantStatus, IssuedToken, NewGrant, TokenRecord, hash_token, mask_batch, masked_schema,
    new_token, validate_principal,
};
use crate::ingest::source::Source;
use crate::registry::{AuditQuery, Registry};
use crate::telemetry::metrics::METRICS;
use crate::warehouse::{ConsumerAccess, RowStream};

use super::Ferry;

/// How one returned column is governed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnGovernance {
    pub classification: Classification,
    pub masked: bool,
}

/// Rows as the caller may see them, with how each column was treated.
pub struct GovernedRows {
    pub rows: RowStream,
    pub columns: Vec<ColumnGovernance>,
}

pub struct TokenRequest {
    pub principal: String,
    pub description: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issues a token and audits it. Without an authorization check: `ferry-server token create`
/// runs it with the registry's own credentials, and `CreateToken` authorizes first.
pub async fn issue_token(
    registry: &Registry,
    request: TokenRequest,
    caller: &Caller,
) -> Result<IssuedToken, FerryError> {
    validate_principal(&request.principal)?;
    let secret = new_token();
    let record = TokenRecord {
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        principal: request.principal,
        description: request.description,
        created_by: caller.principal.clone(),
        created_at: Utc::now(),
        expires_at: request.expires_at,
        revoked_at: None,
    };
    registry.insert_token(&record, &hash_token(&secret)).await?;
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: Utc::now(),
        principal: caller.principal.clone(),
        action: "token.create".into(),
        target: record.principal.clone(),
        outcome: AuditOutcome::Allowed,
        detail: record.id.clone(),
        request_id: caller.request_id.clone(),
    };
    registry.append_audit(&event).await?;
    Ok(IssuedToken { record, secret })
}

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

    /// Keeps grants bound to what they grant when a new contract version lands: a grant on a
    /// view the version drops ends (a later view of that name starts with no grants), and a
    /// reader grant on a table with a column whose classification was loosened goes back to a
    /// privacy officer, since it would now read that column in clear.
    pub(super) async fn rebind_grants(
        &self,
        previous: &Contract,
        contract: &Contract,
        caller: &Caller,
    ) -> Result<(), FerryError> {
        // Declassified: every reader of the column would now see it in clear.
        let loosened: Vec<&str> = previous
            .columns
            .iter()
            .filter(|old| {
                old.classification >= Classification::Personal
                    && contract
                        .column(&old.name)
                        .is_some_and(|new| new.classification < old.classification)
            })
            .map(|c| c.name.as_str())
            .collect();
        // Still personal, but now kept in clear where it was dropped or pseudonymized: clear
        // grants, approved for what was stored then, would read it.
        let unprotected: Vec<&str> = previous
            .columns
            .iter()
            .filter(|old| {
                old.pii_handling != PiiHandling::Keep
                    && contract.column(&old.name).is_some_and(|new| {
                        new.pii_handling == PiiHandling::Keep
                            && new.classification >= Classification::Personal
                    })
            })
            .map(|c| c.name.as_str())
            .collect();
        let removed_views: Vec<&str> = previous
            .views
            .iter()
            .map(|v| v.name.as_str())
            .filter(|name| contract.view(name).is_none())
            .collect();
        if loosened.is_empty() && unprotected.is_empty() && removed_views.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut touched = Vec::new();
        for grant in self.registry.list_grants(&contract.name).await? {
            if grant.revoked_at.is_some() {
                continue;
            }
            if removed_views.contains(&grant.target.as_str()) {
                self.registry
                    .revoke_grant(&grant.id, &caller.principal)
                    .await?;
                self.audit(
                    caller,
                    "revoke",
                    &grant.target,
                    AuditOutcome::Allowed,
                    &format!("{} from {}: the view was removed", grant.id, grant.grantee),
                )
                .await;
                touched.push(grant.target.clone());
            } else if let Some(reason) = (grant.role == GrantRole::Reader
                && grant.status(now) == GrantStatus::Active)
                .then(|| {
                    let columns = contract.table_columns(&grant.target);
                    let reads =
                        |names: &[&str]| columns.iter().any(|c| names.contains(&c.name.as_str()));
                    if reads(&loosened) {
                        Some(format!(
                            "column(s) {} were declassified",
                            loosened.join(", ")
                        ))
                    } else if grant.clear_personal_data && reads(&unprotected) {
                        Some(format!(
                            "column(s) {} are now stored in clear",
                            unprotected.join(", ")
                        ))
                    } else {
                        None
                    }
                })
                .flatten()
            {
                self.registry.require_reapproval(&grant.id, &reason).await?;
                self.audit(
                    caller,
                    "grant.pending",
                    &grant.target,
                    AuditOutcome::Allowed,
                    &format!(
                        "{} for {}: needs a privacy officer again: {reason}",
                        grant.id, grant.grantee
                    ),
                )
                .await;
                touched.push(grant.target.clone());
            }
        }
        if !touched.is_empty() {
            self.reload_policies_from_registry().await?;
            touched.dedup();
            for target in &touched {
                self.sync_warehouse_access(contract, target, caller).await;
            }
        }
        Ok(())
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

    /// Masks the personal and sensitive columns the caller may not see in clear.
    pub(super) fn govern_rows(
        &self,
        rows: RowStream,
        contract: &Contract,
        table: &str,
        caller: &Caller,
    ) -> Result<GovernedRows, FerryError> {
        let personal = self.allows(caller, Action::ReadPersonal, table, &contract.owner)?;
        let sensitive = self.allows(caller, Action::ReadSensitive, table, &contract.owner)?;
        let columns: Vec<ColumnGovernance> = rows
            .schema
            .fields()
            .iter()
            .map(|field| {
                let column = contract.column(field.name());
                let classification = column.map_or(Classification::Public, |c| c.classification);
                // Pseudonyms are already not in clear; only kept values can be masked.
                let kept = column.is_some_and(|c| c.pii_handling == PiiHandling::Keep);
                let masked = kept
                    && match classification {
                        Classification::Personal => !personal,
                        Classification::Sensitive => !sensitive,
                        _ => false,
                    };
                ColumnGovernance {
                    classification,
                    masked,
                }
            })
            .collect();
        if !columns.iter().any(|c| c.masked) {
            return Ok(GovernedRows { rows, columns });
        }
        let access: Arc<[ColumnAccess]> = columns
            .iter()
            .map(|c| {
                if c.masked {
                    ColumnAccess::Masked
                } else {
                    ColumnAccess::Clear
                }
            })
            .collect();
        let schema = masked_schema(&rows.schema, &access);
        let batch_schema = schema.clone();
        let batches = rows
            .batches
            .map(move |batch| batch.and_then(|b| mask_batch(&b, &batch_schema, &access)))
            .boxed();
        Ok(GovernedRows {
            rows: RowStream { schema, batches },
            columns,
        })
    }

    async fn reload_policies_from_registry(&self) -> Result<usize, FerryError> {
        let grants = self.registry.unrevoked_grants().await?;
        self.authorizer.reload(&grants).await?;
        Ok(grants.len())
    }

    /// Admin: re-reads the policy files and every grant now.
    pub async fn reload_policies(&self, caller: &Caller) -> Result<usize, FerryError> {
        self.authorize(caller, Action::Token, "*", "").await?;
        let loaded = self.reload_policies_from_registry().await?;
        self.audit(
            caller,
            "policy.reload",
            "",
            AuditOutcome::Allowed,
            &format!("{loaded} grants"),
        )
        .await;
        Ok(loaded)
    }

    /// Reloads when the policy files or the grants changed since `last`; returns the new
    /// fingerprint. Run periodically, it keeps replicas in step and picks up edited files.
    pub async fn refresh_policies(&self, last: &str) -> Result<String, FerryError> {
        let fingerprint = format!(
            "{}#{}",
            self.authorizer.files_fingerprint(),
            self.registry.grants_fingerprint().await?
        );
        if fingerprint != last {
            let loaded = self.reload_policies_from_registry().await?;
            if !last.is_empty() {
                info!(grants = loaded, "policies reloaded");
            }
        }
        Ok(fingerprint)
    }

    pub async fn grant_access(
        &self,
        request: NewGrant,
        caller: &Caller,
    ) -> Result<Grant, FerryError> {
        // Validate.
        validate_qualified_name(&request.target, "target").map_err(|e| e.for_field("target"))?;
        validate_principal(&request.grantee).map_err(|e| e.for_field("grantee"))?;
        let now = Utc::now();
        if request.expires_at.is_some_and(|t| t <= now) {
            return Err(FerryError::invalid_field(
                "expires_at",
                "expires_at is in the past",
            ));
        }
        let dataset = self.visible_owning_dataset(&request.target, caller).await?;
        let dataset_name = dataset.contract.name.clone();
        // Authorize.
        self.authorize(
            caller,
            Action::Grant,
            &dataset_name,
            &dataset.contract.owner,
        )
        .await?;
        if request.role == GrantRole::Publisher && request.target != dataset_name {
            return Err(FerryError::invalid_field(
                "role",
                format!("publishers publish to a dataset, not a view: grant on {dataset_name}"),
            ));
        }
        if request.clear_personal_data {
            if !dataset.contract.has_personal_data_in_clear(&request.target) {
                return Err(FerryError::invalid_field(
                    "clear_personal_data",
                    format!(
                        "{} holds no personal data in clear; grant without clear_personal_data",
                        request.target
                    ),
                ));
            }
            let mut missing = Vec::new();
            if request.purpose.trim().is_empty() {
                missing.push(("purpose", "a purpose"));
            }
            if request.legal_basis.is_none() {
                missing.push(("legal_basis", "a legal basis"));
            }
            if request.expires_at.is_none() {
                missing.push(("expires_at", "an expiry"));
            }
            if let Some((field, _)) = missing.first() {
                let needs: Vec<&str> = missing.iter().map(|(_, what)| *what).collect();
                return Err(FerryError::invalid_field(
                    field,
                    format!(
                        "a grant on personal data in clear needs {}",
                        needs.join(", ")
                    ),
                ));
            }
        }
        // Act.
        let grant = Grant {
            id: format!("grt_{}", uuid::Uuid::now_v7().simple()),
            dataset: dataset_name,
            target: request.target,
            grantee: request.grantee,
            role: request.role,
            purpose: request.purpose.trim().to_owned(),
            legal_basis: request.legal_basis,
            clear_personal_data: request.clear_personal_data,
            expires_at: request.expires_at,
            granted_by: caller.principal.clone(),
            created_at: now,
            approved_by: None,
            approved_at: None,
            revoked_by: None,
            revoked_at: None,
            review_reason: String::new(),
        };
        self.registry.insert_grant(&grant).await?;
        self.reload_policies_from_registry().await?;
        self.sync_warehouse_access(&dataset.contract, &grant.target, caller)
            .await;
        self.audit(
            caller,
            "grant",
            &grant.target,
            AuditOutcome::Allowed,
            &format!(
                "{} {} to {} ({})",
                grant.id,
                grant.role.as_str(),
                grant.grantee,
                grant.status(now).as_str()
            ),
        )
        .await;
        Ok(grant)
    }

    /// Mirrors the reader grants on `target` into the warehouse's own access control, for
    /// consumers who query the warehouse directly. The registry stays the source of truth, so a
    /// failure does not undo the grant: it is logged and audited, and the next grant change on
    /// the target or the daily `ferry-server retention` run repairs it.
    pub(super) async fn sync_warehouse_access(
        &self,
        contract: &Contract,
        target: &str,
        caller: &Caller,
    ) {
        let synced = async {
            let now = Utc::now();
            let mut consumers: Vec<ConsumerAccess> = Vec::new();
            for grant in self.registry.list_grants(&contract.name).await? {
                if grant.target != target || grant.role != GrantRole::Reader {
                    continue;
                }
                let active = grant.status(now) == GrantStatus::Active;
                let clear = active && grant.clear_personal_data;
                match consumers.iter_mut().find(|c| c.grantee == grant.grantee) {
                    Some(consumer) => {
                        consumer.active |= active;
                        consumer.clear_personal_data |= clear;
                    }
                    None => consumers.push(ConsumerAccess {
                        grantee: grant.grantee.clone(),
                        active,
                        clear_personal_data: clear,
                    }),
                }
            }
            self.warehouse
                .sync_access(contract, target, &consumers)
                .await
        }
        .await;
        if let Err(error) = synced {
            warn!(target, error = %error, "the warehouse's access does not match the grants yet");
            self.audit(
                caller,
                "sync_access",
                target,
                AuditOutcome::Failed,
                &format!("warehouse access not updated: {error}"),
            )
            .await;
        }
    }

    /// Re-applies every dataset's grants to the warehouse, so expired grants lose their
    /// warehouse access too.
    pub async fn sync_all_warehouse_access(&self) -> Result<usize, FerryError> {
        let caller = Caller::system("access-sync");
        let mut targets = 0;
        for dataset in self.registry.list_datasets("").await? {
            let mut granted: Vec<String> = self
                .registry
                .list_grants(&dataset.contract.name)
                .await?
                .into_iter()
                .map(|g| g.target)
                .collect();
            granted.sort();
            granted.dedup();
            for target in granted {
                self.sync_warehouse_access(&dataset.contract, &target, &caller)
                    .await;
                targets += 1;
            }
        }
        Ok(targets)
    }

    async fn existing_grant(&self, id: &str) -> Result<Grant, FerryError> {
        self.registry
            .grant(id.trim())
            .await?
            .ok_or_else(|| FerryError::NotFound(Missing::Grant(id.to_owned())))
    }

    pub async fn revoke_access(
        &self,
        grant_id: &str,
        caller: &Caller,
    ) -> Result<Grant, FerryError> {
        let grant = self.existing_grant(grant_id).await?;
        let dataset = self
            .visible_dataset(&grant.dataset, caller, &Missing::Grant(grant_id.to_owned()))
            .await?;
        self.authorize(
            caller,
            Action::Grant,
            &grant.dataset,
            &dataset.contract.owner,
        )
        .await?;
        if grant.revoked_at.is_none() {
            self.registry
                .revoke_grant(&grant.id, &caller.principal)
                .await?;
            self.reload_policies_from_registry().await?;
            self.sync_warehouse_access(&dataset.contract, &grant.target, caller)
                .await;
            self.audit(
                caller,
                "revoke",
                &grant.target,
                AuditOutcome::Allowed,
                &format!("{} from {}", grant.id, grant.grantee),
            )
            .await;
        }
        self.existing_grant(&grant.id).await
    }

    pub async fn approve_grant(
        &self,
        grant_id: &str,
        caller: &Caller,
    ) -> Result<Grant, FerryError> {
        self.authorize(caller, Action::Approve, "*", "").await?;
        let grant = self.existing_grant(grant_id).await?;
        let status = grant.status(Utc::now());
        if status != GrantStatus::PendingApproval {
            return Err(FerryError::precondition(
                Precondition::GrantNotPending,
                format!(
                    "grant {} is {}, not pending approval",
                    grant.id,
                    status.as_str()
                ),
            ));
        }
        if caller.acts_for(&grant.granted_by) || caller.acts_for(&grant.grantee) {
            return Err(FerryError::denied(
                Denial::SelfApproval,
                "a grant must be approved by someone other than its grantor or grantee, and not \
                 through a token either of them minted",
            ));
        }
        self.registry
            .approve_grant(&grant.id, &caller.principal)
            .await?;
        self.reload_policies_from_registry().await?;
        if let Some(dataset) = self.registry.dataset(&grant.dataset).await? {
            self.sync_warehouse_access(&dataset.contract, &grant.target, caller)
                .await;
        }
        self.audit(
            caller,
            "approve",
            &grant.target,
            AuditOutcome::Allowed,
            &format!(
                "{} for {}: purpose {:?}, basis {}",
                grant.id,
                grant.grantee,
                grant.purpose,
                grant.legal_basis.map_or("", |b| b.as_str())
            ),
        )
        .await;
        self.existing_grant(&grant.id).await
    }

    /// The grants the caller may see, filtered in one pass.
    pub async fn list_grants(
        &self,
        target: &str,
        grantee: &str,
        include_inactive: bool,
        caller: &Caller,
    ) -> Result<Vec<Grant>, FerryError> {
        let dataset = if target.trim().is_empty() {
            String::new()
        } else {
            self.visible_owning_dataset(target.trim(), caller)
                .await?
                .contract
                .name
        };
        let oversight = self.allows(caller, Action::Approve, "*", "")?
            || self.allows(caller, Action::Audit, "*", "")?;
        let granting = self.authorizer.scope(&caller.principal, Action::Grant);
        let owners: std::collections::HashMap<String, String> = self
            .registry
            .dataset_owners("")
            .await?
            .into_iter()
            .collect();
        let now = Utc::now();
        let mut grants = self.registry.list_grants(&dataset).await?;
        grants.retain(|g| {
            let visible = oversight
                || g.grantee == caller.principal
                || granting.contains(&g.dataset, owners.get(&g.dataset).map_or("", |o| o));
            let wanted = (target.trim().is_empty() || g.target == target.trim())
                && (grantee.trim().is_empty() || g.grantee == grantee.trim())
                && (include_inactive
                    || !matches!(g.status(now), GrantStatus::Revoked | GrantStatus::Expired));
            visible && wanted
        });
        Ok(grants)
    }

    pub async fn create_token(
        &self,
        request: TokenRequest,
        caller: &Caller,
    ) -> Result<IssuedToken, FerryError> {
        validate_principal(&request.principal)?;
        if request.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(FerryError::invalid_field(
                "expires_at",
                "expires_at is in the past",
            ));
        }
        self.authorize(caller, Action::Token, "*", "").await?;
        self.issue_token(request, caller).await
    }

    async fn issue_token(
        &self,
        request: TokenRequest,
        caller: &Caller,
    ) -> Result<IssuedToken, FerryError> {
        issue_token(&self.registry, request, caller).await
    }

    pub async fn revoke_token(&self, id: &str, caller: &Caller) -> Result<TokenRecord, FerryError> {
        self.authorize(caller, Action::Token, "*", "").await?;
        let revoked = self.registry.revoke_token(id.trim()).await?;
        let record = self
            .registry
            .list_tokens()
            .await?
            .into_iter()
            .find(|t| t.id == id.trim())
            .ok_or_else(|| FerryError::NotFound(Missing::Token(id.to_owned())))?;
        if revoked {
            self.audit(
                caller,
                "token.revoke",
                &record.principal,
                AuditOutcome::Allowed,
                &record.id,
            )
            .await;
        }
        Ok(record)
    }

    pub async fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenRecord>, FerryError> {
        self.authorize(caller, Action::Token, "*", "").await?;
        self.registry.list_tokens().await
    }

    pub async fn audit_events(
        &self,
        query: AuditQuery,
        caller: &Caller,
    ) -> Result<Vec<AuditEvent>, FerryError> {
        self.authorize(caller, Action::Audit, "*", "").await?;
        self.registry.audit_events(&query).await
    }

    /// Deletes the quarantine files of `dataset` for days before `cutoff`: rejected rows hold the
    /// same data as the table and keep no longer than it. Returns the days removed.
    fn remove_quarantine_before(
        &self,
        dataset: &str,
        cutoff: chrono::NaiveDate,
    ) -> Vec<chrono::NaiveDate> {
        let dir = self.quarantine_dir.join(dataset);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| chrono::NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if day >= cutoff {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed.push(day),
                Err(e) => warn!(error = %e, dataset, %day, "cannot remove quarantined rows"),
            }
        }
        removed.sort();
        removed
    }

    /// Removes partitions older than each contract's retention (the shortest of the dataset's
    /// and its stored personal columns'). Returns (dataset, day) for each removed partition.
    pub async fn enforce_retention(
        &self,
        today: chrono::NaiveDate,
    ) -> Result<Vec<(String, chrono::NaiveDate)>, FerryError> {
        let caller = Caller::system("retention");
        let mut removed = Vec::new();
        for dataset in self.registry.list_datasets("").await? {
            let Some(days) = dataset.contract.effective_retention_days() else {
                continue;
            };
            let cutoff = today - chrono::Duration::days(i64::from(days));
            let dropped = self
                .registry
                .remove_partitions_before(&dataset.contract.name, cutoff)
                .await?;
            for partition in dropped {
                info!(
                    dataset = %dataset.contract.name,
                    partition_date = %partition.partition_date,
                    retention_days = days,
                    "partition removed by retention"
                );
                self.audit(
                    &caller,
                    "retention",
                    &dataset.contract.name,
                    AuditOutcome::Allowed,
                    &format!(
                        "removed {} ({} rows, publication {}): older than {days} days",
                        partition.partition_date, partition.rows, partition.publication_id
                    ),
                )
                .await;
                removed.push((dataset.contract.name.clone(), partition.partition_date));
            }
            for day in self.remove_quarantine_before(&dataset.contract.name, cutoff) {
                self.audit(
                    &caller,
                    "retention",
                    &dataset.contract.name,
                    AuditOutcome::Allowed,
                    &format!("removed the quarantined rows of {day}: older than {days} days"),
                )
                .await;
            }
        }
        if !removed.is_empty() {
            self.collect_garbage(None).await;
        } else {
            info!("retention: nothing to remove");
        }
        Ok(removed)
    }
}
