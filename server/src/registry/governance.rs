//! The registry's governance tables: tokens, grants and the append-only audit log.

use chrono::{DateTime, Utc};
// The *_SELECT constants are fixed column lists; every value is bound.
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::contract::LegalBasis;
use crate::error::FerryError;
use crate::governance::{AuditEvent, AuditOutcome, Grant, GrantRole, TokenRecord, TokenStore};

use super::{Registry, now_text, parse_time, time_text};

#[async_trait::async_trait]
impl TokenStore for Registry {
    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, FerryError> {
        Registry::token_by_hash(self, sha256).await
    }
}

fn optional_time(row: &AnyRow, index: usize) -> Result<Option<DateTime<Utc>>, FerryError> {
    row.get::<Option<String>, _>(index)
        .map(|t| parse_time(&t))
        .transpose()
}

const TOKEN_SELECT: &str =
    "SELECT id, principal, description, created_by, created_at, expires_at, revoked_at FROM tokens";

fn token_from_row(row: &AnyRow) -> Result<TokenRecord, FerryError> {
    Ok(TokenRecord {
        id: row.get(0),
        principal: row.get(1),
        description: row.get(2),
        created_by: row.get(3),
        created_at: parse_time(&row.get::<String, _>(4))?,
        expires_at: optional_time(row, 5)?,
        revoked_at: optional_time(row, 6)?,
    })
}

const GRANT_SELECT: &str = "SELECT id, dataset, target, grantee, role, purpose, legal_basis, clear_personal_data, \
    expires_at, granted_by, created_at, approved_by, approved_at, revoked_by, revoked_at, review_reason FROM grants";

fn grant_from_row(row: &AnyRow) -> Result<Grant, FerryError> {
    let role: String = row.get(4);
    Ok(Grant {
        id: row.get(0),
        dataset: row.get(1),
        target: row.get(2),
        grantee: row.get(3),
        role: GrantRole::parse(&role)
            .ok_or_else(|| FerryError::Registry(format!("unknown grant role {role:?}")))?,
        purpose: row.get(5),
        legal_basis: LegalBasis::parse(&row.get::<String, _>(6)),
        clear_personal_data: row.get::<i64, _>(7) != 0,
        expires_at: optional_time(row, 8)?,
        granted_by: row.get(9),
        created_at: parse_time(&row.get::<String, _>(10))?,
        approved_by: row.get(11),
        approved_at: optional_time(row, 12)?,
        revoked_by: row.get(13),
        revoked_at: optional_time(row, 14)?,
        review_reason: row.get(15),
    })
}

/// Which audit events to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub principal: String,
    pub target: String,
    pub limit: u32,
}

impl Registry {
    pub async fn insert_token(&self, token: &TokenRecord, sha256: &str) -> Result<(), FerryError> {
        sqlx::query(
            "INSERT INTO tokens (id, token_sha256, principal, description, created_by, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&token.id)
        .bind(sha256)
        .bind(&token.principal)
        .bind(&token.description)
        .bind(&token.created_by)
        .bind(time_text(token.created_at))
        .bind(token.expires_at.map(time_text))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, FerryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} WHERE token_sha256 = $1"
        )))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, FerryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} ORDER BY created_at"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Returns false when no live token has this id.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, FerryError> {
        let result =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now_text())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn insert_grant(&self, grant: &Grant) -> Result<(), FerryError> {
        sqlx::query(
            "INSERT INTO grants (id, dataset, target, grantee, role, purpose, legal_basis, clear_personal_data, \
             expires_at, granted_by, created_at, approved_by, approved_at, revoked_by, revoked_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, NULL, $11)",
        )
        .bind(&grant.id)
        .bind(&grant.dataset)
        .bind(&grant.target)
        .bind(&grant.grantee)
        .bind(grant.role.as_str())
        .bind(&grant.purpose)
        .bind(grant.legal_basis.map_or("", LegalBasis::as_str))
        .bind(i64::from(grant.clear_personal_data))
        .bind(grant.expires_at.map(time_text))
        .bind(&grant.granted_by)
        .bind(time_text(grant.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, FerryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{GRANT_SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| grant_from_row(&r)).transpose()
    }

    /// Every grant that has not been revoked: what the enforcer loads.
    pub async fn unrevoked_grants(&self) -> Result<Vec<Grant>, FerryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRANT_SELECT} WHERE revoked_at IS NULL ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Grants on a dataset (and its views), or every grant when `dataset` is empty.
    pub async fn list_grants(&self, dataset: &str) -> Result<Vec<Grant>, FerryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRANT_SELECT} WHERE $1 = '' OR dataset = $1 ORDER BY created_at, id"
        )))
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    pub async fn approve_grant(&self, id: &str, approved_by: &str) -> Result<(), FerryError> {
        let now = now_text();
        sqlx::query(
            "UPDATE grants SET approved_by = $2, approved_at = $3, updated_at = $3 \
             WHERE id = $1 AND approved_by IS NULL AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(approved_by)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn revoke_grant(&self, id: &str, revoked_by: &str) -> Result<(), FerryError> {
        let now = now_text();
        sqlx::query(
            "UPDATE grants SET revoked_by = $2, revoked_at = $3, updated_at = $3 \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(revoked_by)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sends a grant back to a privacy officer, for `reason`: it works again once approved.
    pub async fn require_reapproval(&self, id: &str, reason: &str) -> Result<(), FerryError> {
        sqlx::query(
            "UPDATE grants SET review_reason = $2, approved_by = NULL, approved_at = NULL, \
             updated_at = $3 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(reason)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Changes whenever a grant is added, approved or revoked, on any replica.
    pub async fn grants_fingerprint(&self) -> Result<String, FerryError> {
        let row = sqlx::query("SELECT COUNT(*), MAX(updated_at) FROM grants")
            .fetch_one(&self.pool)
            .await?;
        Ok(format!(
            "{}|{}",
            row.get::<i64, _>(0),
            row.get::<Option<String>, _>(1).unwrap_or_default()
        ))
    }

    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), FerryError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, principal, action, target, outcome, detail, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&event.id)
        .bind(time_text(event.at))
        .bind(&event.principal)
        .bind(&event.action)
        .bind(&event.target)
        .bind(event.outcome.as_str())
        .bind(&event.detail)
        .bind(&event.request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, FerryError> {
        let limit = if query.limit == 0 {
            100
        } else {
            query.limit.min(10_000)
        };
        let rows = sqlx::query(
            "SELECT id, at, principal, action, target, outcome, detail, request_id FROM audit_log \
             WHERE ($1 = '' OR principal = $1) AND ($2 = '' OR target = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(&query.principal)
        .bind(&query.target)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: row.get(0),
                    at: parse_time(&row.get::<String, _>(1))?,
                    principal: row.get(2),
                    action: row.get(3),
                    target: row.get(4),
                    outcome: AuditOutcome::parse(&row.get::<String, _>(5)),
                    detail: row.get(6),
                    request_id: row.get(7),
                })
            })
            .collect()
    }
}
