//! Telling people outside Ferry that something needs them: a day that is late, a publish that
//! failed. Events go to a webhook as signed JSON (see `webhook`); without one configured they
//! are only counted and audited by the callers.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

mod webhook;

pub use webhook::{SIGNATURE_HEADER, WebhookConfig, sign};

/// Something a dataset's owner wants to hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The day an SLA made due is not live.
    #[serde(rename = "partition.late")]
    PartitionLate {
        dataset: String,
        owner: String,
        partition_date: NaiveDate,
        due_at: DateTime<Utc>,
        /// The newest live partition, if the dataset has one.
        latest_partition: Option<NaiveDate>,
    },
    /// A publish ended without changing the partition.
    #[serde(rename = "publish.failed")]
    PublishFailed {
        dataset: String,
        owner: String,
        partition_date: NaiveDate,
        publication_id: String,
        /// The machine-readable reason, as in the gRPC ErrorInfo (`QUALITY_RULE_FAILED`, ...).
        reason: String,
        /// The first line of the message the publisher got: it never quotes the file.
        message: String,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PartitionLate { .. } => "partition.late",
            Self::PublishFailed { .. } => "publish.failed",
        }
    }
}

/// What a receiver gets: the event, with an id to deduplicate retried deliveries by.
#[derive(Debug, Serialize)]
pub struct Delivery<'a> {
    pub id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: &'a Event,
}

/// Where events go. Cloning is cheap; sending never waits for the receiver.
#[derive(Clone, Default)]
pub struct Notifier {
    webhook: Option<std::sync::Arc<webhook::Webhook>>,
}

impl Notifier {
    pub fn new(config: &WebhookConfig) -> Result<Self, crate::error::FerryError> {
        Ok(Self {
            webhook: webhook::Webhook::new(config)?.map(std::sync::Arc::new),
        })
    }

    /// Hands `event` to the webhook, which delivers it in the background with retries.
    pub fn send(&self, event: Event) {
        if let Some(webhook) = &self.webhook {
            webhook.clone().deliver_in_background(event);
        }
    }
}
