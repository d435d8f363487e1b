//! Webhook delivery: an HTTP POST of the event's JSON, signed with HMAC-SHA-256 so a receiver
//! can tell it came from Ferry and was not replayed, retried with exponential backoff while the
//! receiver is down or overloaded.
//!
//! The signature header is `Ferry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256 of
//! "<t>.<body>">`, the scheme Stripe and GitHub receivers already know how to check: verify the
//! HMAC over the raw body, then refuse a `t` more than a few minutes old.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hmac::{Hmac, Mac};
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{Delivery, Event};
use crate::error::FerryError;
use crate::secret::Secret;
use crate::telemetry::metrics::METRICS;

pub const SIGNATURE_HEADER: &str = "Ferry-Signature";
const EVENT_HEADER: &str = "Ferry-Event";
const DELIVERY_HEADER: &str = "Ferry-Delivery";
/// A shorter secret is guessable enough to forge events with.
const SHORTEST_SECRET: usize = 16;
/// Deliveries in flight at once; more wait their turn instead of opening more connections.
const CONCURRENT_DELIVERIES: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed. Unset (the default): no webhook.
    pub url: Option<String>,
    /// The HMAC key (at least 16 bytes). Prefer `FERRY_NOTIFICATIONS__WEBHOOK__SECRET` or
    /// `secret_file`, mounted from a secret store.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// Attempts per event, the first included.
    pub max_attempts: usize,
    /// The wait before the second attempt; each later wait doubles, up to five minutes.
    pub first_retry_ms: u64,
    /// How long one attempt may take.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            secret_file: None,
            max_attempts: 8,
            first_retry_ms: 1000,
            timeout_secs: 10,
        }
    }
}

/// `t=<at>,v1=<hex HMAC-SHA-256 of "<at>.<body>">`, the value of `Ferry-Signature`.
pub fn sign(secret: &[u8], at: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{at}.").as_bytes());
    mac.update(body);
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub(super) struct Webhook {
    url: reqwest::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
    backoff: ExponentialBuilder,
    in_flight: Arc<Semaphore>,
}

/// Why one attempt did not deliver, and whether another might.
struct Undelivered {
    reason: String,
    retry: bool,
}

impl Webhook {
    pub(super) fn new(config: &WebhookConfig) -> Result<Option<Self>, FerryError> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let invalid = |reason: &str| FerryError::Config(format!("notifications.webhook: {reason}"));
        let url = reqwest::Url::parse(url).map_err(|_| invalid("url is not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid("url must be http:// or https://"));
        }
        let secret = match (&config.secret, &config.secret_file) {
            (Some(secret), _) => secret.expose().as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path)
                .map(|bytes| bytes.trim_ascii_end().to_vec())
                .map_err(|e| {
                    invalid(&format!("cannot read secret_file {}: {e}", path.display()))
                })?,
            (None, None) => {
                return Err(invalid(
                    "a url needs a secret (or secret_file): receivers check the signature",
                ));
            }
        };
        if secret.len() < SHORTEST_SECRET {
            return Err(invalid(&format!(
                "the secret must be at least {SHORTEST_SECRET} bytes"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(&format!("cannot build the HTTP client: {e}")))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(config.first_retry_ms.max(1)))
            .with_max_delay(Duration::from_secs(300))
            .with_max_times(config.max_attempts.max(1) - 1)
            .with_jitter();
        Ok(Some(Self {
            url,
            secret,
            client,
            backoff,
            in_flight: Arc::new(Semaphore::new(CONCURRENT_DELIVERIES)),
        }))
    }

    pub(super) fn deliver_in_background(self: Arc<Self>, event: Event) {
        tokio::spawn(async move {
            let Ok(_permit) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            self.deliver(&event).await;
        });
    }

    async fn deliver(&self, event: &Event) {
        let delivery = Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: chrono::Utc::now(),
            event,
        };
        let body = match serde_json::to_vec(&delivery) {
            Ok(body) => body,
            Err(e) => {
                warn!(error = %e, "cannot encode a webhook event");
                return;
            }
        };
        let attempt = || self.attempt(event.kind(), &delivery.id, &body);
        let result = attempt
            .retry(self.backoff)
            .when(|undelivered| undelivered.retry)
            .notify(|undelivered, wait| {
                warn!(
                    event = event.kind(),
                    delivery = %delivery.id,
                    reason = %undelivered.reason,
                    retry_in_ms = wait.as_millis() as u64,
                    "webhook delivery failed; retrying"
                );
            })
            .await;
        let outcome = match &result {
            Ok(()) => {
                info!(event = event.kind(), delivery = %delivery.id, "webhook delivered");
                "delivered"
            }
            Err(undelivered) => {
                warn!(
                    event = event.kind(),
                    delivery = %delivery.id,
                    reason = %undelivered.reason,
                    "webhook delivery given up"
                );
                "given_up"
            }
        };
        METRICS.webhook_deliveries.add(
            1,
            &[
                KeyValue::new("ferry.event", event.kind()),
                KeyValue::new("ferry.outcome", outcome),
            ],
        );
    }

    async fn attempt(&self, kind: &str, id: &str, body: &[u8]) -> Result<(), Undelivered> {
        // Signed at each attempt, so a late retry carries a fresh timestamp.
        let signature = sign(&self.secret, chrono::Utc::now().timestamp(), body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, kind)
            .header(DELIVERY_HEADER, id)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Undelivered {
                reason: format!("cannot reach the receiver: {}", without_url(&e)),
                retry: true,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Undelivered {
            reason: format!("the receiver answered {status}"),
            // A receiver that refuses the request itself (400, 401, 404) refuses it again.
            retry: status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT,
        })
    }
}

/// reqwest's error without the URL, which may carry a token in its query.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the webhook url");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_time_and_the_body() {
        // RFC 4231 test case 2 ("what do ya want for nothing?" under "Jefe") with the body
        // split after the "<t>." prefix a receiver puts back.
        let signature = sign(b"Jefe", 0, b"what do ya want for nothing?");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(
            signature,
            format!("t=0,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(signature, sign(b"Jefe", 1, b"what do ya want for nothing?"));
    }

    #[test]
    fn a_webhook_needs_a_url_scheme_and_a_long_secret() {
        let config = |url: &str, secret: &str| WebhookConfig {
            url: Some(url.into()),
            secret: (!secret.is_empty()).then(|| Secret::new(secret)),
            ..WebhookConfig::default()
        };
        let error = |c: WebhookConfig| Webhook::new(&c).err().expect("refused").to_string();
        assert!(error(config("https://hooks.example/ferry", "")).contains("needs a secret"));
        assert!(error(config("https://hooks.example/ferry", "short")).contains("16 bytes"));
        assert!(error(config("ftp://hooks.example", "0123456789abcdef")).contains("http"));
        assert!(
            Webhook::new(&config("https://hooks.example/ferry", "0123456789abcdef"))
                .unwrap()
                .is_some()
        );
        assert!(Webhook::new(&WebhookConfig::default()).unwrap().is_none());
    }
}
