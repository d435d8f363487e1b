//! `ferry`: team and admin commands for the Ferry data-publishing platform.

mod commands;
mod exit;
mod output;
mod quickstart;
mod trace_context;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_proto::v1 as pb;

#[derive(Parser)]
#[command(
    version,
    about = "Publish governed, day-partitioned datasets with Ferry",
    after_help = format!(
        "Examples:\n  ferry quickstart\n  ferry dataset register examples/product_catalog/contract.yaml\n  \
         ferry publish catalog.product_catalog --date 2021-04-03 --source s3://catalog/product_catalog_20210403.csv\n  \
         ferry read catalog.with_image --date 2021-04-03 --columns brand,year_release --format csv\n\n{}",
        exit::HELP
    )
)]
struct Cli {
    /// The Ferry server.
    #[arg(
        long,
        global = true,
        env = "FERRY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product-catalog pipeline on an embedded server with the bundled samples.
    Quickstart {
        /// Keep the embedded warehouse here instead of a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Register, inspect and list dataset contracts.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Publish a source file into one day partition (replaces that day only).
    Publish {
        /// The dataset, e.g. catalog.product_catalog.
        dataset: String,
        /// The partition day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// file://, s3://, gs:// or https:// URI of the CSV extract.
        #[arg(long)]
        source: String,
        /// Fail unless the source has this SHA-256 (hex).
        #[arg(long, default_value = "")]
        sha256: String,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List a dataset's publications (the ledger), newest first.
    Publications {
        dataset: String,
        /// Only this partition day.
        #[arg(long, default_value = "")]
        date: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one publication with its row-level errors.
    Publication { id: String },
    /// Read rows of a dataset or view.
    Read(ReadArgs),
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Register a contract (YAML); a compatible change bumps the minor version.
    Register { file: PathBuf },
    /// Show a dataset's contract and partitions.
    Get { name: String },
    /// List datasets.
    List {
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

#[derive(Args)]
struct ReadArgs {
    /// A dataset or view, e.g. catalog.with_image.
    name: String,
    /// One day (same as --from D --to D).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    date: Option<String>,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    /// Comma-separated column names.
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// At most this many rows (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: u64,
    #[arg(long, value_enum, default_value = "table")]
    format: output::Format,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        let message = error
            .chain()
            .find_map(|c| {
                c.downcast_ref::<tonic::Status>()
                    .map(|s| format!("{:?}: {}", s.code(), s.message()))
            })
            .unwrap_or_else(|| format!("{error:#}"));
        eprintln!("error: {message}");
        std::process::exit(exit::for_error(&error));
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Quickstart { data_dir } => return quickstart::run(data_dir, &mut out).await,
        command => {
            let mut client = commands::connect(&cli.endpoint).await?;
            match command {
                Command::Quickstart { .. } => unreachable!("handled above"),
                Command::Dataset(DatasetCommand::Register { file }) => {
                    let response = commands::register(&mut client, &file).await?;
                    commands::describe_registration(&mut out, &response)?;
                }
                Command::Dataset(DatasetCommand::Get { name }) => {
                    let dataset = client
                        .get_dataset(pb::GetDatasetRequest { name })
                        .await?
                        .into_inner();
                    commands::print_dataset(&mut out, &dataset)?;
                }
                Command::Dataset(DatasetCommand::List { prefix }) => {
                    let list = client
                        .list_datasets(pb::ListDatasetsRequest {
                            name_prefix: prefix,
                        })
                        .await?
                        .into_inner();
                    for d in list.datasets {
                        let c = d.contract.unwrap_or_default();
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}",
                            c.name, d.contract_version, c.owner, c.description
                        )?;
                    }
                }
                Command::Publish {
                    dataset,
                    date,
                    source,
                    sha256,
                    quiet,
                } => {
                    let show_progress =
                        !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
                    let result = commands::publish(
                        &mut client,
                        &dataset,
                        &date,
                        &source,
                        &sha256,
                        show_progress,
                    )
                    .await?;
                    commands::describe_publish(&mut out, &result)?;
                }
                Command::Publications {
                    dataset,
                    date,
                    limit,
                } => {
                    let list = client
                        .list_publications(pb::ListPublicationsRequest {
                            dataset,
                            partition_date: date,
                            limit,
                        })
                        .await?
                        .into_inner();
                    commands::print_publications(&mut out, &list.publications)?;
                }
                Command::Publication { id } => {
                    let publication = client
                        .get_publication(pb::GetPublicationRequest { id })
                        .await?
                        .into_inner();
                    commands::print_publication(&mut out, &publication)?;
                }
                Command::Read(args) => {
                    let (from, to) = match args.date {
                        Some(d) => (d.clone(), d),
                        None => (args.from.unwrap_or_default(), args.to.unwrap_or_default()),
                    };
                    let result = commands::read(
                        &mut client,
                        pb::ReadRowsRequest {
                            name: args.name,
                            from_date: from,
                            to_date: to,
                            columns: args.columns,
                            limit: args.limit,
                        },
                    )
                    .await?;
                    output::render(&mut out, args.format, &result.schema, &result.rows)?;
                }
            }
        }
    }
    Ok(())
}
