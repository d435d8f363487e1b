//! Scheduled feeds: each contract with a `feed` has its days' files looked for on a schedule and
//! published as the owner team when they appear or change. A lease in the registry makes sure
//! exactly one replica runs a given feed's check at a time.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tracing::{info, instrument, warn};

use crate::contract::Feed;
use crate::error::{FerryError, Reason};
use crate::ingest::{IngestProgress, Source};
use crate::registry::{FeedAttempt, FeedOutcome, FeedState, RegisteredDataset};

use super::{Caller, Ferry, PublishRequest, first_line};

/// How long a replica may hold a feed's check before another may take it over. Renewed after
/// each day, so it only runs out when the replica died.
const FEED_LEASE_MINUTES: i64 = 10;
/// The first wait after a failed check; it doubles with each failure, up to `check_every`.
const FIRST_RETRY_MINUTES: i64 = 1;
/// Attempts `ListFeeds` shows per feed.
const RECENT_ATTEMPTS: u32 = 10;

/// What one round of feed checks did on this replica.
#[derive(Debug, Default)]
pub struct FeedRound {
    /// The feeds this replica checked (others were not due, or another replica holds them).
    pub checked: Vec<String>,
    /// The publishes it tried, in order.
    pub attempts: Vec<FeedAttempt>,
}

/// A feed as `ListFeeds` shows it.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub dataset: String,
    pub feed: Feed,
    /// None until the feed's first check.
    pub state: Option<FeedState>,
    /// Newest first; empty for a caller who may not read the dataset's ledger.
    pub recent_attempts: Vec<FeedAttempt>,
}

impl Ferry {
    /// Checks every feed that is due and not held by another replica.
    #[instrument(skip_all)]
    pub async fn run_feeds_once(&self) -> Result<FeedRound, FerryError> {
        let failures: HashMap<String, u32> = self
            .registry
            .feed_states()
            .await?
            .into_iter()
            .map(|state| (state.dataset, state.failures))
            .collect();
        let mut round = FeedRound::default();
        for registered in self.registry.list_datasets("").await? {
            let Some(feed) = registered.contract.feed.clone() else {
                continue;
            };
            let name = registered.contract.name.clone();
            let now = self.clock.now();
            if !self
                .registry
                .claim_feed(&name, now, lease_from(now))
                .await?
            {
                continue;
            }
            let outcome = self
                .check_feed(&registered, &feed, &mut round.attempts)
                .await;
            let checked_at = self.clock.now();
            let (next, error) = match outcome {
                Ok(()) => (checked_at + interval(&feed), String::new()),
                Err(error) => {
                    let failed_before = failures.get(&name).copied().unwrap_or(0);
                    warn!(dataset = %name, error = %error, "feed check failed; retrying with backoff");
                    (checked_at + retry_wait(&feed, failed_before), error)
                }
            };
            self.registry
                .finish_feed_check(&name, checked_at, next, &error)
                .await?;
            round.checked.push(name);
        }
        Ok(round)
    }

    /// Looks for each day of the window and publishes the files that are new. An error is the
    /// reason to retry sooner; a file the contract refused is not one (it is settled until it
    /// changes).
    async fn check_feed(
        &self,
        registered: &RegisteredDataset,
        feed: &Feed,
        attempts: &mut Vec<FeedAttempt>,
    ) -> Result<(), String> {
        let contract = &registered.contract;
        let mut failed = None;
        for day in feed.window(self.clock.now().date_naive()) {
            match self
                .feed_day(contract.name.as_str(), &contract.owner, feed, day)
                .await
            {
                Ok(None) => {}
                Ok(Some(attempt)) => {
                    if attempt.outcome == FeedOutcome::Failed {
                        failed.get_or_insert_with(|| format!("{day}: {}", attempt.detail));
                    }
                    attempts.push(attempt);
                }
                Err(e) => {
                    failed.get_or_insert_with(|| format!("{day}: {}", first_line(&e.to_string())));
                }
            }
            let renewed = self
                .registry
                .renew_feed(&contract.name, lease_from(self.clock.now()))
                .await
                .map_err(|e| e.to_string())?;
            if !renewed {
                return Err("another replica took the feed over".into());
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Publishes `day`'s file if it exists and this version of it was not settled yet.
    async fn feed_day(
        &self,
        dataset: &str,
        owner: &str,
        feed: &Feed,
        day: NaiveDate,
    ) -> Result<Option<FeedAttempt>, FerryError> {
        let uri = feed.source_for(day);
        let source = Source::resolve(&uri, &self.sources)?;
        let Some(version) = source.version().await? else {
            return Ok(None);
        };
        if self
            .registry
            .feed_version_settled(dataset, day, &uri, &version)
            .await?
        {
            return Ok(None);
        }
        let attempt_id = uuid::Uuid::now_v7().to_string();
        // The feed acts as the owner team, under its policies and source bindings; the request
        // id tells its publishes apart from the team's own in the audit log.
        let caller = Caller::new(owner, format!("feed:{attempt_id}"));
        info!(dataset, partition_date = %day, source = %uri, "feed publishing a new file");
        let published = self
            .publish(
                PublishRequest {
                    dataset: dataset.to_owned(),
                    partition_date: day.to_string(),
                    source_uri: uri.clone(),
                    expected_sha256: String::new(),
                },
                &caller,
                Arc::new(IngestProgress::default()),
            )
            .await;
        let (outcome, publication_id, detail) = match published {
            Ok(done) if done.unchanged => (
                FeedOutcome::Unchanged,
                done.publication.id,
                "identical content was already live".to_owned(),
            ),
            Ok(done) => (
                FeedOutcome::Published,
                done.publication.id,
                format!("{} rows", done.publication.rows_accepted),
            ),
            Err(error) => (
                outcome_of_failure(&error),
                String::new(),
                first_line(&error.to_string()),
            ),
        };
        let attempt = FeedAttempt {
            id: attempt_id,
            dataset: dataset.to_owned(),
            partition_date: day,
            source_uri: uri,
            object_version: version,
            at: self.clock.now(),
            outcome,
            publication_id,
            detail,
        };
        self.registry.record_feed_attempt(&attempt).await?;
        Ok(Some(attempt))
    }

    /// The feeds of the datasets under `prefix` the caller may see, with their schedules.
    pub async fn list_feeds(
        &self,
        prefix: &str,
        caller: &Caller,
    ) -> Result<Vec<FeedStatus>, FerryError> {
        let mut states: HashMap<String, FeedState> = self
            .registry
            .feed_states()
            .await?
            .into_iter()
            .map(|state| (state.dataset.clone(), state))
            .collect();
        let mut feeds = Vec::new();
        for registered in self.list_datasets(prefix, caller).await? {
            let Some(feed) = registered.contract.feed.clone() else {
                continue;
            };
            let full = self.may_read_ledger(caller, &registered)?;
            let name = registered.contract.name;
            let mut state = states.remove(&name);
            let recent_attempts = if full {
                self.registry.feed_attempts(&name, RECENT_ATTEMPTS).await?
            } else {
                // Error texts quote the owner's sources; a reader sees only the schedule.
                if let Some(state) = &mut state {
                    state.last_error.clear();
                    state.running_on = None;
                }
                Vec::new()
            };
            feeds.push(FeedStatus {
                dataset: name,
                feed,
                state,
                recent_attempts,
            });
        }
        Ok(feeds)
    }
}

fn lease_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(FEED_LEASE_MINUTES)
}

fn interval(feed: &Feed) -> Duration {
    Duration::from_std(feed.interval()).unwrap_or(Duration::minutes(15))
}

/// One minute after the first failure, then two, four, ... and never longer than the feed's
/// own interval.
fn retry_wait(feed: &Feed, failed_before: u32) -> Duration {
    let backoff = Duration::minutes(FIRST_RETRY_MINUTES << failed_before.min(20));
    backoff.min(interval(feed))
}

/// A file the contract refused stays refused until it changes; anything else (the source, the
/// warehouse or a policy was not ready) is tried again.
fn outcome_of_failure(error: &FerryError) -> FeedOutcome {
    match error.reason() {
        Reason::PublicationRejected
        | Reason::QualityRuleFailed
        | Reason::SourceMalformed
        | Reason::ChecksumMismatch => FeedOutcome::Refused,
        _ => FeedOutcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let feed = Feed::at("s3://drops/{date}.csv");
        let waits: Vec<i64> = (0..6).map(|n| retry_wait(&feed, n).num_minutes()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15]);
        assert_eq!(retry_wait(&feed, u32::MAX).num_minutes(), 15);
    }
}
