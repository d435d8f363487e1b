//! `ferry dataset`: register, show and list contracts.

use std::io::Write;
use std::path::PathBuf;

use ferry_proto::v1 as pb;

use crate::commands::{self, Client};
use crate::listing::{self, Listing, ListingArgs};

pub async fn register(
    client: &mut Client,
    file: PathBuf,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let response = commands::register(client, &file).await?;
    commands::describe_registration(out, &response)?;
    Ok(())
}

pub async fn get(
    client: &mut Client,
    name: String,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dataset = client
        .get_dataset(pb::GetDatasetRequest { name })
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "Dataset", &dataset)?,
        Listing::Table => commands::print_dataset(out, &dataset)?,
    }
    Ok(())
}

pub async fn list(
    client: &mut Client,
    prefix: String,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = client
        .list_datasets(pb::ListDatasetsRequest {
            name_prefix: prefix,
        })
        .await?
        .into_inner();
    if listing.format == Listing::Json {
        listing::write_json(out, "ListDatasetsResponse", &list)?;
        return Ok(());
    }
    for d in list.datasets {
        let c = d.contract.unwrap_or_default();
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            c.name, d.contract_version, c.owner, c.description
        )?;
    }
    Ok(())
}
