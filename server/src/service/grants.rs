//! Access grants: granting, approving, revoking and listing them, keeping them bound to what
//! they grant, and mirroring them into the warehouse's own access control.

use chrono::Utc;
use tracing::warn;

use crate::contract::{Classification, Contract, PiiHandling, validate_qualified_name};
use crate::error::{Denial, FerryError, Missing, Precondition};
use crate::governance::{
    Action, AuditOutcome, Caller, Grant, GrantRole, GrantStatus, NewGrant, validate_principal,
};
use crate::warehouse::ConsumerAccess;

use super::Ferry;

impl Ferry {
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
    async fn sync_warehouse_access(&self, contract: &Contract, target: &str, caller: &Caller) {
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
}
