//! `ferry status [NAMESPACE]`: each dataset the caller may see, its latest partition, whether the
//! day its SLA makes due is late, and how the quality rules fared in its last publish.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ferry_proto::v1 as pb;

use crate::commands::Client;
use crate::listing::{Listing, ListingArgs};

/// One dataset's state at the time asked about.
#[derive(Debug, serde::Serialize)]
struct DatasetStatus {
    dataset: String,
    latest_partition: Option<String>,
    /// `HH:MM timezone`, when the contract has an SLA.
    sla: Option<String>,
    /// The day due and not there, if one is.
    late_day: Option<String>,
    last_publication: Option<String>,
    last_status: Option<String>,
    rules_failed: Vec<String>,
    rules_passed: usize,
}

pub async fn run(
    client: &mut Client,
    namespace: Option<String>,
    at: Option<DateTime<Utc>>,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let now = at.unwrap_or_else(Utc::now);
    let prefix = namespace
        .map(|n| format!("{}.", n.trim_end_matches('.')))
        .unwrap_or_default();
    let datasets = client
        .list_datasets(pb::ListDatasetsRequest {
            name_prefix: prefix,
        })
        .await?
        .into_inner()
        .datasets;
    let mut rows = Vec::with_capacity(datasets.len());
    for listed in datasets {
        let Some(name) = listed.contract.map(|c| c.name) else {
            continue;
        };
        // The listing leaves partitions out; the dataset itself has them.
        let dataset = client
            .get_dataset(pb::GetDatasetRequest { name })
            .await?
            .into_inner();
        let Some(contract) = dataset.contract else {
            continue;
        };
        let latest = dataset
            .partitions
            .iter()
            .filter_map(|p| NaiveDate::parse_from_str(&p.partition_date, "%Y-%m-%d").ok())
            .max();
        let sla = contract
            .sla
            .as_ref()
            .map(|sla| ferry_server::contract::Sla {
                available_by: sla.available_by.clone(),
                timezone: if sla.timezone.is_empty() {
                    "UTC".into()
                } else {
                    sla.timezone.clone()
                },
            });
        let last = client
            .list_publications(pb::ListPublicationsRequest {
                dataset: contract.name.clone(),
                partition_date: String::new(),
                limit: 1,
            })
            .await?
            .into_inner()
            .publications
            .into_iter()
            .next();
        rows.push(DatasetStatus {
            dataset: contract.name.clone(),
            latest_partition: latest.map(|d| d.to_string()),
            sla: sla
                .as_ref()
                .map(|s| format!("{} {}", s.available_by, s.timezone)),
            late_day: sla
                .and_then(|s| s.late_day(latest, now))
                .map(|d| d.to_string()),
            last_status: last
                .as_ref()
                .map(|p| crate::commands::status_name(p.status).to_owned()),
            rules_failed: last
                .iter()
                .flat_map(|p| &p.quality)
                .filter(|o| !o.passed)
                .map(|o| o.rule.clone())
                .collect(),
            rules_passed: last
                .iter()
                .flat_map(|p| &p.quality)
                .filter(|o| o.passed)
                .count(),
            last_publication: last.map(|p| p.id),
        });
    }
    match listing.format {
        Listing::Json => {
            let json = serde_json::json!({ "at": now.to_rfc3339(), "datasets": rows });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Listing::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header([
                "dataset",
                "latest partition",
                "due by",
                "late",
                "last publish",
                "quality rules",
            ]);
            for row in &rows {
                let rules = match (row.rules_passed, row.rules_failed.as_slice()) {
                    (0, []) => "-".to_owned(),
                    (passed, []) => format!("{passed} passed"),
                    (passed, failed) => format!("{passed} passed, failed: {}", failed.join("; ")),
                };
                table.add_row([
                    row.dataset.clone(),
                    row.latest_partition.clone().unwrap_or_else(|| "-".into()),
                    row.sla.clone().unwrap_or_else(|| "-".into()),
                    row.late_day
                        .as_ref()
                        .map_or("no".into(), |d| format!("LATE: {d}")),
                    row.last_status.clone().unwrap_or_else(|| "-".into()),
                    rules,
                ]);
            }
            writeln!(out, "status at {}", now.to_rfc3339())?;
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
}
