//! Recovery from processes that stopped mid-publish or mid-commit, lease upkeep and garbage
//! collection.

use std::sync::Arc;

use tracing::{info, warn};

use crate::error::FerryError;
use crate::registry::PendingCommit;
use crate::warehouse::{GarbageScope, PartitionTarget, ResumedCommit};

use super::Ferry;

impl Ferry {
    /// Renews this process's publish leases; on a registry shared by replicas, also recovers
    /// the publishes of replicas whose leases ran out.
    pub async fn keep_leases(&self) -> Result<(), FerryError> {
        // A commit the warehouse failed after the flip is handed to recovery; finding none is
        // one read, which a SQLite writer does not wait for.
        let resumed = self.resume_pending_commits().await?;
        // One process owns a SQLite registry: its leases matter to nobody, and a writer on a
        // timer would only contend with the calls' own transactions.
        if !self.registry.is_shared() {
            return Ok(());
        }
        self.registry.renew_leases().await?;
        if self.release_interrupted().await? || resumed {
            self.collect_garbage(None).await;
        }
        Ok(())
    }

    /// Recovers from a previous process that stopped mid-publish.
    pub async fn recover(&self) -> Result<(), FerryError> {
        self.resume_pending_commits().await?;
        self.release_interrupted().await?;
        self.collect_garbage(None).await;
        Ok(())
    }

    /// Brings the warehouse level with the registry for commits whose process died after the
    /// registry's flip: the warehouse commits them after all, or, when their staged data is gone,
    /// the registry goes back to the previous publication. Returns whether there were any.
    async fn resume_pending_commits(&self) -> Result<bool, FerryError> {
        let pending = self.registry.claim_pending_commits().await?;
        for commit in &pending {
            if let Err(e) = self.resume_commit(commit).await {
                // Left pending and unowned: the next lease round (this process's or a replica's)
                // tries again.
                warn!(publication = %commit.id, error = %e, "could not resume an interrupted commit; retrying at the next lease round");
                if let Err(e) = self.registry.abandon_commit(&commit.id).await {
                    warn!(publication = %commit.id, error = %e, "could not release a pending commit");
                }
            }
        }
        Ok(!pending.is_empty())
    }

    async fn resume_commit(&self, commit: &PendingCommit) -> Result<(), FerryError> {
        let mut publication = self
            .registry
            .publication(&commit.id)
            .await?
            .ok_or_else(|| FerryError::Internal(format!("publication {} is gone", commit.id)))?;
        if commit.superseded {
            // A later publish of the day owns the partition; this one's transaction must not
            // hold its tables.
            self.warehouse
                .release_interrupted(std::slice::from_ref(&commit.id))
                .await;
            return self.registry.confirm_commit(&publication).await;
        }
        let dataset = self
            .registry
            .dataset(&commit.dataset)
            .await?
            .ok_or_else(|| {
                FerryError::Internal(format!(
                    "dataset {} of a pending commit is gone",
                    commit.dataset
                ))
            })?;
        let target = PartitionTarget {
            contract: Arc::new(dataset.contract),
            partition_date: commit.partition_date,
            publication_id: commit.id.clone(),
        };
        match self.warehouse.resume_commit(&target).await? {
            ResumedCommit::Committed { job_ids } => {
                publication.warehouse_job_ids.extend(job_ids);
                self.registry.confirm_commit(&publication).await?;
                info!(publication = %commit.id, "completed a commit its process did not finish");
            }
            ResumedCommit::StagedDataGone => {
                self.registry
                    .revert_commit(
                        commit,
                        "the server stopped before the warehouse committed this publish and its \
                         staged data expired; the previous partition is live again",
                    )
                    .await?;
                warn!(publication = %commit.id, "reverted a commit whose staged data expired");
            }
        }
        Ok(())
    }

    /// Marks the publishes of processes that are gone as interrupted and releases what they
    /// left in the warehouse; returns whether there were any.
    async fn release_interrupted(&self) -> Result<bool, FerryError> {
        let interrupted = self.registry.mark_interrupted().await?;
        if interrupted.is_empty() {
            return Ok(false);
        }
        warn!(
            interrupted = interrupted.len(),
            "publications were interrupted: their process stopped; previous partitions are intact"
        );
        self.warehouse.release_interrupted(&interrupted).await;
        Ok(true)
    }

    /// Removes data nothing references any more; with `scope`, only what one commit replaced.
    pub(super) async fn collect_garbage(&self, scope: Option<GarbageScope<'_>>) {
        let result = async {
            let keep = self.registry.retained_publication_ids().await?;
            self.warehouse.collect_garbage(&keep, scope).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(removed) => info!(removed, "collected superseded partition files"),
            Err(e) => {
                warn!(error = %e, "garbage collection failed; will retry after the next publish")
            }
        }
    }
}
