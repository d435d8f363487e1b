//! Freshness: finding the days an SLA made due that are not live, and announcing each one once
//! (a metric, an audit event, a webhook), whichever replica notices it first.

use chrono::{DateTime, NaiveDate, Utc};
use opentelemetry::KeyValue;
use tracing::{instrument, warn};

use crate::error::FerryError;
use crate::governance::AuditOutcome;
use crate::notify::Event;
use crate::telemetry::metrics::METRICS;

use super::{Caller, Ferry};

/// A day found late by one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateDay {
    pub dataset: String,
    pub partition_date: NaiveDate,
    pub due_at: DateTime<Utc>,
    pub latest_partition: Option<NaiveDate>,
    /// Whether this check announced it; false when an earlier check (here or on another
    /// replica) already did.
    pub announced: bool,
}

impl Ferry {
    /// Checks every dataset with an SLA against the clock. A late day is announced the first
    /// time any replica sees it, and only then; every check still returns it.
    #[instrument(skip_all)]
    pub async fn check_freshness(&self) -> Result<Vec<LateDay>, FerryError> {
        let now = self.clock.now();
        let mut late = Vec::new();
        for registered in self.registry.list_datasets("").await? {
            let contract = &registered.contract;
            let Some(sla) = &contract.sla else { continue };
            let Some((due_day, due_at)) = sla.due(now) else {
                continue;
            };
            let latest = self
                .registry
                .partitions(&contract.name, None, None)
                .await?
                .last()
                .map(|partition| partition.partition_date);
            if sla.late_day(latest, now).is_none() {
                continue;
            }
            let announced = self
                .registry
                .note_late_partition(&contract.name, due_day, due_at, now)
                .await?;
            if announced {
                self.announce_late(&contract.name, &contract.owner, due_day, due_at, latest)
                    .await;
            }
            late.push(LateDay {
                dataset: contract.name.clone(),
                partition_date: due_day,
                due_at,
                latest_partition: latest,
                announced,
            });
        }
        Ok(late)
    }

    async fn announce_late(
        &self,
        dataset: &str,
        owner: &str,
        day: NaiveDate,
        due_at: DateTime<Utc>,
        latest: Option<NaiveDate>,
    ) {
        warn!(dataset, partition_date = %day, due_at = %due_at, "partition is late");
        METRICS
            .late_partitions
            .add(1, &[KeyValue::new("ferry.dataset", dataset.to_owned())]);
        let latest_text = latest.map_or_else(|| "none".to_owned(), |d| d.to_string());
        self.audit(
            &Caller::system("freshness"),
            "freshness.late",
            dataset,
            AuditOutcome::Failed,
            &format!("{day} was due at {due_at}; latest live partition: {latest_text}"),
        )
        .await;
        self.notifier.send(Event::PartitionLate {
            dataset: dataset.to_owned(),
            owner: owner.to_owned(),
            partition_date: day,
            due_at,
            latest_partition: latest,
        });
    }
}
