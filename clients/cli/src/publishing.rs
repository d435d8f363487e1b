//! `ferry publish`, `publications` and `publication`: putting days in and seeing the ledger.

use std::io::Write;

use ferry_proto::v1 as pb;

use crate::commands::{self, Client};
use crate::listing::{self, Listing, ListingArgs};

pub async fn publish(
    client: &mut Client,
    dataset: String,
    date: String,
    source: String,
    sha256: String,
    quiet: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let show_progress = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result =
        commands::publish(client, &dataset, &date, &source, &sha256, show_progress).await?;
    commands::describe_publish(out, &result)?;
    Ok(())
}

pub async fn publications(
    client: &mut Client,
    dataset: String,
    date: String,
    limit: u32,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = client
        .list_publications(pb::ListPublicationsRequest {
            dataset,
            partition_date: date,
            limit,
        })
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "ListPublicationsResponse", &list)?,
        Listing::Table => commands::print_publications(out, &list.publications)?,
    }
    Ok(())
}

pub async fn publication(
    client: &mut Client,
    id: String,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let publication = client
        .get_publication(pb::GetPublicationRequest { id })
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "Publication", &publication)?,
        Listing::Table => commands::print_publication(out, &publication)?,
    }
    Ok(())
}
