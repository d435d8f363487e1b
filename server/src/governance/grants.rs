//! Access grants: a consumer team's right to read (or publish to) a dataset or view, with the
//! purpose, legal basis and expiry the law asks for.

use chrono::{DateTime, Utc};

use crate::contract::LegalBasis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum GrantRole {
    Reader,
    Publisher,
}

impl GrantRole {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum GrantStatus {
    Active,
    PendingApproval,
    Revoked,
    Expired,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What an owner or admin asks for.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub target: String,
    pub grantee: String,
    pub role: GrantRole,
    pub purpose: String,
    pub legal_basis: Option<LegalBasis>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Asks to see personal columns in clear; needs purpose, legal basis, expiry and a privacy
    /// officer's approval.
    pub clear_personal_data: bool,
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub dataset: String,
    pub target: String,
    pub grantee: String,
    pub role: GrantRole,
    pub purpose: String,
    pub legal_basis: Option<LegalBasis>,
    pub clear_personal_data: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub granted_by: String,
    pub created_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why the grant waits for a privacy officer again (its data became less protected);
    /// empty otherwise.
    pub review_reason: String,
}

impl Grant {
    /// Derived from the stored facts and the clock, so an expired grant needs no job to expire.
    pub fn status(&self, now: DateTime<Utc>) -> GrantStatus {
        if self.revoked_at.is_some() {
            GrantStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            GrantStatus::Expired
        } else if (self.clear_personal_data || !self.review_reason.is_empty())
            && self.approved_by.is_none()
        {
            GrantStatus::PendingApproval
        } else {
            GrantStatus::Active
        }
    }
}
