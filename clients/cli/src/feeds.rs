//! `ferry feeds [NAMESPACE]`: each scheduled feed the caller may see, when it is checked next,
//! how its last check went and (for the owner) its latest attempts.

use std::io::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ferry_proto::v1 as pb;

use crate::commands::Client;
use crate::listing::{self, Listing, ListingArgs};

pub async fn run(
    client: &mut Client,
    namespace: Option<String>,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let name_prefix = namespace
        .map(|n| format!("{}.", n.trim_end_matches('.')))
        .unwrap_or_default();
    let response = client
        .list_feeds(pb::ListFeedsRequest { name_prefix })
        .await?
        .into_inner();
    if listing.format == Listing::Json {
        return listing::write_json(out, "ListFeedsResponse", &response);
    }
    if response.feeds.is_empty() {
        writeln!(out, "no scheduled feeds")?;
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "dataset",
        "source template",
        "every",
        "next check",
        "state",
        "last attempt",
    ]);
    for status in &response.feeds {
        let feed = status.feed.clone().unwrap_or_default();
        let state = if status.running {
            "running".to_owned()
        } else if !status.last_error.is_empty() {
            format!("failing ({}x): {}", status.failures, status.last_error)
        } else if status.last_check_at.is_none() {
            "not checked yet".to_owned()
        } else {
            "ok".to_owned()
        };
        let last_attempt = status.recent_attempts.first().map_or_else(
            || "-".to_owned(),
            |a| format!("{} {}: {}", a.partition_date, a.outcome, a.detail),
        );
        table.add_row([
            status.dataset.clone(),
            feed.source_template,
            feed.check_every,
            if status.next_check_at.is_some() {
                crate::admin::time(&status.next_check_at)
            } else {
                "at the next round".to_owned()
            },
            state,
            last_attempt,
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
