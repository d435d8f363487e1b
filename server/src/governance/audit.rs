//! Audit events: who did what to which dataset, when, and how it ended.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum AuditOutcome {
    Allowed,
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Anything unrecognised reads as failed, the outcome that claims the least.
    pub fn parse(text: &str) -> Self {
        text.parse().unwrap_or(Self::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub principal: String,
    /// The action, e.g. `register`, `publish`, `grant`, `token.create`, `authenticate`.
    pub action: String,
    /// The dataset, view, grant or token acted on; empty when there is none.
    pub target: String,
    pub outcome: AuditOutcome,
    /// A short, secret-free explanation.
    pub detail: String,
    pub request_id: String,
}
