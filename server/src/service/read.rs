//! Reading rows of a dataset or view, masked as the caller may see them.

use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, info_span, instrument};

use crate::contract::{Materialization, ViewFilter};
use crate::error::FerryError;
use crate::governance::Action;
use crate::warehouse::{LivePartition, ReadPlan};

use super::{Caller, Ferry, GovernedRows, optional_date};

pub struct ReadRequest {
    pub name: String,
    pub from_date: String,
    pub to_date: String,
    pub columns: Vec<String>,
    pub limit: u64,
}

impl Ferry {
    #[instrument(skip_all, fields(name = %request.name))]
    pub async fn read(
        &self,
        request: ReadRequest,
        caller: &Caller,
    ) -> Result<GovernedRows, FerryError> {
        let from = optional_date(&request.from_date, "from_date")?;
        let to = optional_date(&request.to_date, "to_date")?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(FerryError::invalid_field(
                "from_date",
                format!("from_date {from} is after to_date {to}"),
            ));
        }
        let registered = self.visible_owning_dataset(&request.name, caller).await?;
        let dataset_name = registered.contract.name.clone();
        let contract = Arc::new(registered.contract);
        self.authorize(caller, Action::Read, &request.name, &contract.owner)
            .await?;
        let partitions = self
            .registry
            .partitions(&dataset_name, from, to)
            .await?
            .into_iter()
            .map(|p| LivePartition {
                partition_date: p.partition_date,
                publication_id: p.publication_id,
            })
            .collect();
        let limit = (request.limit > 0).then_some(request.limit);
        let mut plan = ReadPlan {
            contract: contract.clone(),
            table: request.name.clone(),
            partitions,
            columns: request.columns,
            filter: None,
            limit,
        };
        if let Some(view) = contract.view(&request.name)
            && view.materialization == Materialization::OnRead
        {
            // Evaluated over the raw table; the projection defaults to the view's columns.
            plan.table = contract.name.clone();
            plan.filter = Some(ViewFilter::parse(&view.filter, &contract).map_err(|e| {
                FerryError::Internal(format!("stored view {} no longer parses: {e}", view.name))
            })?);
            if plan.columns.is_empty() {
                plan.columns = contract
                    .view_columns(view)
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                plan.columns.push(contract.partition_column());
            } else if let Some(bad) = plan.columns.iter().find(|c| {
                **c != contract.partition_column()
                    && !contract.view_columns(view).iter().any(|v| &v.name == *c)
            }) {
                return Err(FerryError::invalid_field(
                    "columns",
                    format!("{} has no column {bad:?}", view.name),
                ));
            }
        }
        let started = Instant::now();
        let rows = self
            .warehouse
            .read(plan)
            .instrument(info_span!(
                "warehouse.read",
                warehouse = self.warehouse.kind()
            ))
            .await;
        self.record_warehouse_call("read", started);
        self.govern_rows(rows?, &contract, &request.name, caller)
    }
}
