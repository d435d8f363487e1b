//! The registry's tables for work Ferry does on its own clock: late days already announced, and
//! each scheduled feed's next check, lease and attempts. Every instant comes from the caller
//! (the service's clock), never from `Utc::now()` here, so a test's clock drives the schedule.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use crate::error::FerryError;

use super::{Registry, date_text, parse_date, parse_time, time_text};

/// How a feed's publish of one day ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum FeedOutcome {
    /// The day now holds the object.
    Published,
    /// The same content was already live.
    Unchanged,
    /// The contract refused the object (bad rows, a failed rule): the same version is not tried
    /// again, a new one is.
    Refused,
    /// Something that may pass on a retry (the source or the warehouse was unavailable).
    Failed,
}

impl FeedOutcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One publish a feed tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAttempt {
    pub id: String,
    pub dataset: String,
    pub partition_date: NaiveDate,
    pub source_uri: String,
    /// The object's entity tag (or size and modification time) when it was read.
    pub object_version: String,
    pub at: DateTime<Utc>,
    pub outcome: FeedOutcome,
    pub publication_id: String,
    pub detail: String,
}

/// A feed's schedule as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    pub dataset: String,
    pub next_check_at: DateTime<Utc>,
    pub last_check_at: Option<DateTime<Utc>>,
    /// Why the last check failed; empty when it did not.
    pub last_error: String,
    /// Checks in a row that failed.
    pub failures: u32,
    /// The replica running a check now, if one is.
    pub running_on: Option<String>,
}

impl Registry {
    /// Records that `dataset`'s `day` was found late. True only for the first caller, on any
    /// replica: the one that announces it.
    pub async fn note_late_partition(
        &self,
        dataset: &str,
        day: NaiveDate,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, FerryError> {
        let inserted = sqlx::query(
            "INSERT INTO late_partitions (dataset, partition_date, due_at, noticed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (dataset, partition_date) DO NOTHING",
        )
        .bind(dataset)
        .bind(date_text(day))
        .bind(time_text(due_at))
        .bind(time_text(now))
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes `dataset`'s feed for this process when its check is due and no live replica holds
    /// it, until `lease_until`. A feed seen for the first time is due at once.
    pub async fn claim_feed(
        &self,
        dataset: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, FerryError> {
        sqlx::query(
            "INSERT INTO feeds (dataset, next_check_at) VALUES ($1, $2) \
             ON CONFLICT (dataset) DO NOTHING",
        )
        .bind(dataset)
        .bind(time_text(now))
        .execute(&self.pool)
        .await?;
        let now = time_text(now);
        let claimed = sqlx::query(
            "UPDATE feeds SET lease_owner = $1, lease_expires_at = $2 \
             WHERE dataset = $3 AND next_check_at <= $4 \
             AND (lease_owner = '' OR lease_owner = $1 OR lease_expires_at < $4)",
        )
        .bind(&*self.instance)
        .bind(time_text(lease_until))
        .bind(dataset)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Extends this process's lease on `dataset`'s feed; false when another replica took it
    /// over (the lease ran out), and the check should stop.
    pub async fn renew_feed(
        &self,
        dataset: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, FerryError> {
        let renewed = sqlx::query(
            "UPDATE feeds SET lease_expires_at = $1 WHERE dataset = $2 AND lease_owner = $3",
        )
        .bind(time_text(lease_until))
        .bind(dataset)
        .bind(&*self.instance)
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Ends this process's check of `dataset`'s feed: when it runs next and how this one went.
    pub async fn finish_feed_check(
        &self,
        dataset: &str,
        checked_at: DateTime<Utc>,
        next_check_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), FerryError> {
        sqlx::query(
            "UPDATE feeds SET lease_owner = '', lease_expires_at = '', next_check_at = $1, \
             last_check_at = $2, last_error = $3, \
             failures = CASE WHEN $3 = '' THEN 0 ELSE failures + 1 END \
             WHERE dataset = $4 AND lease_owner = $5",
        )
        .bind(time_text(next_check_at))
        .bind(time_text(checked_at))
        .bind(error)
        .bind(dataset)
        .bind(&*self.instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn feed_states(&self) -> Result<Vec<FeedState>, FerryError> {
        let rows = sqlx::query(
            "SELECT dataset, next_check_at, last_check_at, last_error, failures, lease_owner, \
             lease_expires_at FROM feeds ORDER BY dataset",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let last_check: String = row.get(2);
                let lease_owner: String = row.get(5);
                Ok(FeedState {
                    dataset: row.get(0),
                    next_check_at: parse_time(&row.get::<String, _>(1))?,
                    last_check_at: (!last_check.is_empty())
                        .then(|| parse_time(&last_check))
                        .transpose()?,
                    last_error: row.get(3),
                    failures: u32::try_from(row.get::<i64, _>(4)).unwrap_or(u32::MAX),
                    running_on: (!lease_owner.is_empty()).then_some(lease_owner),
                })
            })
            .collect()
    }

    pub async fn record_feed_attempt(&self, attempt: &FeedAttempt) -> Result<(), FerryError> {
        sqlx::query(
            "INSERT INTO feed_attempts (id, dataset, partition_date, source_uri, object_version, \
             at, outcome, publication_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&attempt.id)
        .bind(&attempt.dataset)
        .bind(date_text(attempt.partition_date))
        .bind(&attempt.source_uri)
        .bind(&attempt.object_version)
        .bind(time_text(attempt.at))
        .bind(attempt.outcome.as_str())
        .bind(&attempt.publication_id)
        .bind(&attempt.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest attempts of `dataset`'s feed, newest first.
    pub async fn feed_attempts(
        &self,
        dataset: &str,
        limit: u32,
    ) -> Result<Vec<FeedAttempt>, FerryError> {
        let rows = sqlx::query(
            "SELECT id, dataset, partition_date, source_uri, object_version, at, outcome, \
             publication_id, detail FROM feed_attempts WHERE dataset = $1 \
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(dataset)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.get(6);
                Ok(FeedAttempt {
                    id: row.get(0),
                    dataset: row.get(1),
                    partition_date: parse_date(&row.get::<String, _>(2))?,
                    source_uri: row.get(3),
                    object_version: row.get(4),
                    at: parse_time(&row.get::<String, _>(5))?,
                    outcome: outcome.parse().map_err(|_| {
                        FerryError::Registry(format!("unknown feed outcome {outcome:?}"))
                    })?,
                    publication_id: row.get(7),
                    detail: row.get(8),
                })
            })
            .collect()
    }

    /// Whether `version` of `uri` was already settled for `day`: published, found unchanged,
    /// or refused by the contract. A failed attempt does not settle it.
    pub async fn feed_version_settled(
        &self,
        dataset: &str,
        day: NaiveDate,
        uri: &str,
        version: &str,
    ) -> Result<bool, FerryError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM feed_attempts WHERE dataset = $1 AND partition_date = $2 \
             AND source_uri = $3 AND object_version = $4 AND outcome <> 'failed'",
        )
        .bind(dataset)
        .bind(date_text(day))
        .bind(uri)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) > 0)
    }
}
