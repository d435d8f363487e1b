//! The publication ledger, as each caller may see it.

use crate::error::{FerryError, Missing};
use crate::governance::Action;
use crate::registry::{Publication, RegisteredDataset};

use super::{Caller, Ferry, optional_date};

/// The first line of a message, for audit details that must stay short.
/// A ledger entry as the caller may see it: in full, or without the source, the quarantine, the
/// error text and the row errors (which name buckets and paths and may quote the file).
pub(super) fn ledger_entry(publication: Publication, full: bool) -> Publication {
    if full {
        return publication;
    }
    Publication {
        source_uri: String::new(),
        quarantine_uri: String::new(),
        quality: Vec::new(),
        error: String::new(),
        row_errors: Vec::new(),
        ..publication
    }
}

impl Ferry {
    pub async fn get_publication(
        &self,
        id: &str,
        caller: &Caller,
    ) -> Result<Publication, FerryError> {
        let not_found = Missing::Publication(id.to_owned());
        let publication = self
            .registry
            .publication(id.trim())
            .await?
            .ok_or_else(|| FerryError::NotFound(not_found.clone()))?;
        let dataset = self
            .visible_dataset(&publication.dataset, caller, &not_found)
            .await?;
        let full = self.may_read_ledger(caller, &dataset)?;
        Ok(ledger_entry(publication, full))
    }

    pub async fn list_publications(
        &self,
        dataset: &str,
        partition_date: &str,
        limit: u32,
        caller: &Caller,
    ) -> Result<Vec<Publication>, FerryError> {
        let date = optional_date(partition_date, "partition_date")?;
        let registered = self
            .visible_dataset(dataset, caller, &Missing::Dataset(dataset.to_owned()))
            .await?;
        let full = self.may_read_ledger(caller, &registered)?;
        let limit = if limit == 0 { 100 } else { limit.min(10_000) };
        let publications = self
            .registry
            .list_publications(dataset, date, limit)
            .await?;
        Ok(publications
            .into_iter()
            .map(|publication| ledger_entry(publication, full))
            .collect())
    }

    /// Whether the caller sees where a dataset's data came from (its owner team and admins).
    pub(super) fn may_read_ledger(
        &self,
        caller: &Caller,
        dataset: &RegisteredDataset,
    ) -> Result<bool, FerryError> {
        self.allows(
            caller,
            Action::ReadLedger,
            &dataset.contract.name,
            &dataset.contract.owner,
        )
    }
}
