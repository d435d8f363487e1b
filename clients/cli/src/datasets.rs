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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Open Data Contract Standard v3.0.2, for datacontract-cli, OpenMetadata and DataHub.
    Odcs,
    /// Ferry's own contract YAML.
    Yaml,
}

/// Writes a registered contract as ODCS or Ferry YAML; `ferry dataset register` reads both.
pub async fn export(
    client: &mut Client,
    name: String,
    format: ExportFormat,
    output: Option<PathBuf>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dataset = client
        .get_dataset(pb::GetDatasetRequest { name })
        .await?
        .into_inner();
    let contract = dataset
        .contract
        .ok_or_else(|| anyhow::anyhow!("the server sent no contract"))?;
    let contract = ferry_server::grpc::convert::contract_from_pb(contract)?;
    let text = match format {
        ExportFormat::Odcs => {
            ferry_server::contract::odcs::to_odcs(&contract, &dataset.contract_version)?
        }
        ExportFormat::Yaml => contract.to_yaml(),
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}
