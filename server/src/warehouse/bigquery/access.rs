//! Grants as BigQuery access: each consumer with a reader grant on a table gets an authorized
//! view of it in the consumer's own dataset, masked as the grant allows, and the source dataset's
//! `access` list names that view. Revoked, expired and pending grants lose both.
//!
//! Dataset metadata is limited to 5 updates per 10 s per dataset, so one sync edits each dataset's
//! `access` once, under its etag, whatever the number of consumers.

use serde_json::{Value, json};
use tracing::info;

use super::BigQueryWarehouse;
use super::sql::{self, TableAddress};
use crate::contract::Contract;
use crate::error::FerryError;
use crate::warehouse::ConsumerAccess;

impl BigQueryWarehouse {
    /// The consumer's dataset: the configured prefix plus the principal, escaped so that no two
    /// principals share one (`team:a_b` and `team:a.b` stay apart).
    pub(super) fn consumer_dataset(&self, grantee: &str) -> String {
        format!(
            "{}{}",
            self.api.config.consumer_dataset_prefix,
            sql::escaped_id(grantee)
        )
    }

    pub(super) async fn sync_consumer_views(
        &self,
        contract: &Contract,
        target: &str,
        consumers: &[ConsumerAccess],
    ) -> Result<(), FerryError> {
        let project = self.api.project().to_owned();
        let source = TableAddress::of(&project, target)?;
        let view_id = sql::escaped_id(target);
        let mut authorized = Vec::new();
        let mut withdrawn = Vec::new();
        for consumer in consumers {
            let dataset = self.consumer_dataset(&consumer.grantee);
            let view = TableAddress::in_dataset(&project, &dataset, &view_id);
            if consumer.active {
                self.api
                    .ensure_dataset(
                        &dataset,
                        &format!("Ferry's authorized views for {}.", consumer.grantee),
                        None,
                    )
                    .await?;
                let query = sql::consumer_view_query(
                    contract,
                    &source,
                    target,
                    consumer.clear_personal_data,
                );
                let table = gcp_bigquery_client::model::table::Table::new(
                    &project,
                    &dataset,
                    &view_id,
                    Default::default(),
                )
                .description(&format!(
                    "{target} as {} may read it, kept by Ferry.",
                    consumer.grantee
                ))
                .label("ferry-managed", "true")
                .view(
                    gcp_bigquery_client::model::view_definition::ViewDefinition {
                        query,
                        use_legacy_sql: Some(false),
                        user_defined_function_resources: None,
                    },
                );
                self.api.upsert_table(table).await?;
                if let Some(group) = self.api.config.consumer_groups.get(&consumer.grantee) {
                    let reader = json!({"role": "READER", "groupByEmail": group});
                    self.api
                        .edit_dataset_access(&dataset, |access| {
                            if access.contains(&reader) {
                                return false;
                            }
                            access.push(reader.clone());
                            true
                        })
                        .await?;
                }
                authorized.push(view);
            } else {
                self.api.delete_table(&dataset, &view_id).await?;
                withdrawn.push(view);
            }
        }
        let entry = |view: &TableAddress| json!({"view": {"projectId": view.project, "datasetId": view.dataset, "tableId": view.table}});
        let wanted: Vec<Value> = authorized.iter().map(entry).collect();
        let unwanted: Vec<Value> = withdrawn.iter().map(entry).collect();
        self.api
            .edit_dataset_access(&source.dataset, |access| {
                let before = access.len();
                access.retain(|e| !unwanted.contains(e));
                let mut changed = access.len() != before;
                for entry in &wanted {
                    if !access.contains(entry) {
                        access.push(entry.clone());
                        changed = true;
                    }
                }
                changed
            })
            .await?;
        info!(
            target,
            authorized = authorized.len(),
            withdrawn = withdrawn.len(),
            "BigQuery authorized views match the grants"
        );
        Ok(())
    }
}
