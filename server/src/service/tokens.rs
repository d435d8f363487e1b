//! Bearer tokens: issuing (shown once, stored as a digest), listing and revoking them.

use chrono::{DateTime, Utc};

use crate::error::{FerryError, Missing};
use crate::governance::{
    Action, AuditEvent, AuditOutcome, Caller, IssuedToken, TokenRecord, hash_token, new_token,
    validate_principal,
};
use crate::registry::Registry;

use super::Ferry;

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
}
