//! Reloading the policy files and the grants the enforcer holds.

use tracing::info;

use crate::error::FerryError;
use crate::governance::{Action, AuditOutcome, Caller};

use super::Ferry;

impl Ferry {
    pub(super) async fn reload_policies_from_registry(&self) -> Result<usize, FerryError> {
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
}
