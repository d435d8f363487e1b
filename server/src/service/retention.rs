//! Retention: removing partitions and quarantined rows older than a contract keeps them.

use tracing::{info, warn};

use crate::error::FerryError;
use crate::governance::{AuditOutcome, Caller};

use super::Ferry;

impl Ferry {
    /// Deletes the quarantine files of `dataset` for days before `cutoff`: rejected rows hold the
    /// same data as the table and keep no longer than it. Returns the days removed.
    fn remove_quarantine_before(
        &self,
        dataset: &str,
        cutoff: chrono::NaiveDate,
    ) -> Vec<chrono::NaiveDate> {
        let dir = self.quarantine_dir.join(dataset);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| chrono::NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if day >= cutoff {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed.push(day),
                Err(e) => warn!(error = %e, dataset, %day, "cannot remove quarantined rows"),
            }
        }
        removed.sort();
        removed
    }

    /// Removes partitions older than each contract's retention (the shortest of the dataset's
    /// and its stored personal columns'). Returns (dataset, day) for each removed partition.
    pub async fn enforce_retention(
        &self,
        today: chrono::NaiveDate,
    ) -> Result<Vec<(String, chrono::NaiveDate)>, FerryError> {
        let caller = Caller::system("retention");
        let mut removed = Vec::new();
        for dataset in self.registry.list_datasets("").await? {
            let Some(days) = dataset.contract.effective_retention_days() else {
                continue;
            };
            let cutoff = today - chrono::Duration::days(i64::from(days));
            let dropped = self
                .registry
                .remove_partitions_before(&dataset.contract.name, cutoff)
                .await?;
            for partition in dropped {
                info!(
                    dataset = %dataset.contract.name,
                    partition_date = %partition.partition_date,
                    retention_days = days,
                    "partition removed by retention"
                );
                self.audit(
                    &caller,
                    "retention",
                    &dataset.contract.name,
                    AuditOutcome::Allowed,
                    &format!(
                        "removed {} ({} rows, publication {}): older than {days} days",
                        partition.partition_date, partition.rows, partition.publication_id
                    ),
                )
                .await;
                removed.push((dataset.contract.name.clone(), partition.partition_date));
            }
            for day in self.remove_quarantine_before(&dataset.contract.name, cutoff) {
                self.audit(
                    &caller,
                    "retention",
                    &dataset.contract.name,
                    AuditOutcome::Allowed,
                    &format!("removed the quarantined rows of {day}: older than {days} days"),
                )
                .await;
            }
        }
        if !removed.is_empty() {
            self.collect_garbage(None).await;
        } else {
            info!("retention: nothing to remove");
        }
        Ok(removed)
    }
}
