//! Audit events: who did what to which dataset, when, and how it ended.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Allowed,
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "allowed" => Self::Allowed,
            "denied" => Self::Denied,
            _ => Self::Failed,
        }
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
