//! `ferry read`: rows of a dataset or view, as a table, CSV or JSON lines.

use std::io::Write;

use ferry_proto::v1 as pb;

use crate::args::ReadArgs;
use crate::commands::{self, Client};
use crate::output;

pub async fn read(client: &mut Client, args: ReadArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (from, to) = match args.date {
        Some(d) => (d.clone(), d),
        None => (args.from.unwrap_or_default(), args.to.unwrap_or_default()),
    };
    let result = commands::read(
        client,
        pb::ReadRowsRequest {
            name: args.name,
            from_date: from,
            to_date: to,
            columns: args.columns,
            limit: args.limit,
        },
    )
    .await?;
    let masked: Vec<&str> = result
        .schema
        .iter()
        .filter(|c| c.masked)
        .map(|c| c.name.as_str())
        .collect();
    if !masked.is_empty() {
        eprintln!(
            "note: masked for you (personal or sensitive data): {}",
            masked.join(", ")
        );
    }
    output::render(out, args.format, &result.schema, &result.rows)?;
    Ok(())
}
