//! Which personal and sensitive columns a reader sees in clear, masked or not at all.

use std::sync::Arc;

use futures::StreamExt;

use crate::contract::{Classification, Contract, PiiHandling};
use crate::error::FerryError;
use crate::governance::{Action, Caller, ColumnAccess, mask_batch, masked_schema};
use crate::warehouse::RowStream;

use super::Ferry;

/// How one returned column is governed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnGovernance {
    pub classification: Classification,
    pub masked: bool,
}

/// Rows as the caller may see them, with how each column was treated.
pub struct GovernedRows {
    pub rows: RowStream,
    pub columns: Vec<ColumnGovernance>,
}

impl Ferry {
    /// Masks the personal and sensitive columns the caller may not see in clear.
    pub(super) fn govern_rows(
        &self,
        rows: RowStream,
        contract: &Contract,
        table: &str,
        caller: &Caller,
    ) -> Result<GovernedRows, FerryError> {
        let personal = self.allows(caller, Action::ReadPersonal, table, &contract.owner)?;
        let sensitive = self.allows(caller, Action::ReadSensitive, table, &contract.owner)?;
        let columns: Vec<ColumnGovernance> = rows
            .schema
            .fields()
            .iter()
            .map(|field| {
                let column = contract.column(field.name());
                let classification = column.map_or(Classification::Public, |c| c.classification);
                // Pseudonyms are already not in clear; only kept values can be masked.
                let kept = column.is_some_and(|c| c.pii_handling == PiiHandling::Keep);
                let masked = kept
                    && match classification {
                        Classification::Personal => !personal,
                        Classification::Sensitive => !sensitive,
                        _ => false,
                    };
                ColumnGovernance {
                    classification,
                    masked,
                }
            })
            .collect();
        if !columns.iter().any(|c| c.masked) {
            return Ok(GovernedRows { rows, columns });
        }
        let access: Arc<[ColumnAccess]> = columns
            .iter()
            .map(|c| {
                if c.masked {
                    ColumnAccess::Masked
                } else {
                    ColumnAccess::Clear
                }
            })
            .collect();
        let schema = masked_schema(&rows.schema, &access);
        let batch_schema = schema.clone();
        let batches = rows
            .batches
            .map(move |batch| batch.and_then(|b| mask_batch(&b, &batch_schema, &access)))
            .boxed();
        Ok(GovernedRows {
            rows: RowStream { schema, batches },
            columns,
        })
    }
}
