//! `ferry`: team and admin commands for the Ferry data-publishing platform.

mod admin;
mod backfill;
mod commands;
mod exit;
mod listing;
mod output;
mod quickstart;
mod trace_context;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_proto::v1 as pb;
use listing::{Listing, ListingArgs};

#[derive(Parser)]
#[command(
    version,
    about = "Publish governed, day-partitioned datasets with Ferry",
    after_help = format!(
        "Examples:\n  ferry quickstart\n  ferry dataset register examples/product_catalog/contract.yaml\n  \
         ferry publish catalog.product_catalog --date 2021-04-03 --source s3://catalog/product_catalog_20210403.csv\n  \
         ferry read catalog.with_image --date 2021-04-03 --columns brand,year_release --format csv\n  \
         ferry grant catalog.with_image --to team:a --purpose merchandising --expires 2027-06-30\n  \
         ferry audit --target catalog.product_catalog\n\n\
         Authentication: every command but quickstart sends --token (or FERRY_TOKEN) as a bearer token.\n\n{}",
        exit::HELP
    )
)]
struct Cli {
    /// The Ferry server.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,
    /// Bearer token (a Ferry token or an OIDC JWT).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// PEM CA certificate that signed the server's (https:// endpoints; default: system roots).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CA_CERT"
    )]
    ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require mutual TLS.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
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
    /// Publish a range of days, one at a time, from a source URI template. Days whose content is
    /// already live are reported unchanged, so re-running after a failure resumes.
    #[command(
        after_help = "Example:\n  ferry backfill catalog.product_catalog --from 2021-01-01 --to 2021-03-31 \\\n    --source-template 'gs://drops/catalog_{date:%Y%m%d}.csv' --skip-missing"
    )]
    Backfill {
        /// The dataset, e.g. catalog.product_catalog.
        dataset: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// The source URI with `{date}` (YYYY-MM-DD) or `{date:STRFTIME}`, e.g.
        /// 'gs://b/catalog_{date:%Y%m%d}.csv'.
        #[arg(long)]
        source_template: String,
        /// Print each day's source and stop.
        #[arg(long)]
        dry_run: bool,
        /// Go on with the next day after a failure (the default stops).
        #[arg(long)]
        keep_going: bool,
        /// A day whose source does not exist is skipped instead of failing.
        #[arg(long)]
        skip_missing: bool,
    },
    /// List a dataset's publications (the ledger), newest first.
    Publications {
        dataset: String,
        /// Only this partition day.
        #[arg(long, default_value = "")]
        date: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Show one publication with its row-level errors.
    Publication {
        id: String,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Read rows of a dataset or view. Personal columns you may not see in clear are masked.
    Read(ReadArgs),
    /// Grant a team access to a dataset or view (owners and admins).
    Grant(GrantArgs),
    /// Revoke a grant by id (owners and admins). Takes effect at once.
    Revoke { grant_id: String },
    /// List grants: all for admins and privacy officers, your datasets' and your own otherwise.
    Grants {
        /// Only grants on this dataset or view.
        name: Option<String>,
        /// Only grants to this team.
        #[arg(long, default_value = "")]
        grantee: String,
        /// Include revoked and expired grants.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Approve a pending grant on personal data in clear (privacy officers).
    Approve { grant_id: String },
    /// Show the audit log, newest first (admins and privacy officers).
    Audit {
        #[arg(long, default_value = "")]
        principal: String,
        /// A dataset, view or principal acted on.
        #[arg(long, default_value = "")]
        target: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Issue, list and revoke bearer tokens (admins).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Make the server re-read its policy files and grants now (admins).
    ReloadPolicies,
    /// Show this CLI's version and the server's version, API versions and backends.
    ServerInfo {
        #[command(flatten)]
        listing: ListingArgs,
    },
}

#[derive(Args)]
struct GrantArgs {
    /// The dataset or view, e.g. catalog.with_image.
    name: String,
    /// The grantee team, e.g. team:a.
    #[arg(long)]
    to: String,
    #[arg(long, value_parser = ["reader", "publisher"], default_value = "reader")]
    role: String,
    /// Why the team needs the data (required for personal data in clear).
    #[arg(long, default_value = "")]
    purpose: String,
    /// The GDPR art. 6 legal basis (required for personal data in clear).
    #[arg(long, value_parser = ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"])]
    legal_basis: Option<String>,
    /// The day access ends (YYYY-MM-DD): the grant expires at 00:00 UTC that day, so the day
    /// before is the last day of access.
    #[arg(long)]
    expires: Option<String>,
    /// Ask to see personal columns in clear; pending until a privacy officer approves.
    #[arg(long)]
    clear_personal_data: bool,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for a principal; it is printed once and never stored in clear.
    Create {
        /// kind:name, e.g. team:catalog.
        principal: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The day the token stops working (YYYY-MM-DD): it expires at 00:00 UTC that day.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Register a contract (YAML); a compatible change bumps the minor version.
    Register { file: PathBuf },
    /// Show a dataset's contract and partitions.
    Get {
        name: String,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// List datasets.
    List {
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        listing: ListingArgs,
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
    // A server requiring mutual TLS drops a client without a certificate after the handshake,
    // which reaches us as a bare transport error on the first call.
    let tls_hint = cli.endpoint.starts_with("https://") && cli.client_cert.is_none();
    if let Err(error) = run(cli).await {
        let status = error
            .chain()
            .find_map(|c| c.downcast_ref::<tonic::Status>());
        let mut message = status
            .map(exit::describe)
            .unwrap_or_else(|| format!("{error:#}"));
        if tls_hint
            && status
                .is_some_and(|s| matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled))
        {
            message.push_str(
                "\nhint: the TLS connection was closed; if the server requires mutual TLS, pass \
                 --client-cert and --client-key (or FERRY_CLIENT_CERT and FERRY_CLIENT_KEY)",
            );
        }
        eprintln!("error: {message}");
        std::process::exit(exit::for_error(&error));
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Quickstart { data_dir } => return quickstart::run(data_dir, &mut out).await,
        command => {
            let mut client = commands::connect(
                &cli.endpoint,
                cli.token.as_deref(),
                &commands::TlsFiles {
                    ca_cert: cli.ca_cert.clone(),
                    client_cert: cli.client_cert.clone(),
                    client_key: cli.client_key.clone(),
                },
            )
            .await?;
            match command {
                Command::Quickstart { .. } => unreachable!("handled above"),
                Command::Dataset(DatasetCommand::Register { file }) => {
                    let response = commands::register(&mut client, &file).await?;
                    commands::describe_registration(&mut out, &response)?;
                }
                Command::Dataset(DatasetCommand::Get { name, listing }) => {
                    let dataset = client
                        .get_dataset(pb::GetDatasetRequest { name })
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => listing::write_json(&mut out, "Dataset", &dataset)?,
                        Listing::Table => commands::print_dataset(&mut out, &dataset)?,
                    }
                }
                Command::Dataset(DatasetCommand::List { prefix, listing }) => {
                    let list = client
                        .list_datasets(pb::ListDatasetsRequest {
                            name_prefix: prefix,
                        })
                        .await?
                        .into_inner();
                    if listing.format == Listing::Json {
                        listing::write_json(&mut out, "ListDatasetsResponse", &list)?;
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
                Command::Backfill {
                    dataset,
                    from,
                    to,
                    source_template,
                    dry_run,
                    keep_going,
                    skip_missing,
                } => {
                    let plan = backfill::Plan {
                        dataset,
                        from,
                        to,
                        template: source_template,
                        dry_run,
                        keep_going,
                        skip_missing,
                    };
                    backfill::run(&mut client, plan, &mut out).await?;
                }
                Command::Publications {
                    dataset,
                    date,
                    limit,
                    listing,
                } => {
                    let list = client
                        .list_publications(pb::ListPublicationsRequest {
                            dataset,
                            partition_date: date,
                            limit,
                        })
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => {
                            listing::write_json(&mut out, "ListPublicationsResponse", &list)?
                        }
                        Listing::Table => {
                            commands::print_publications(&mut out, &list.publications)?
                        }
                    }
                }
                Command::Publication { id, listing } => {
                    let publication = client
                        .get_publication(pb::GetPublicationRequest { id })
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => {
                            listing::write_json(&mut out, "Publication", &publication)?
                        }
                        Listing::Table => commands::print_publication(&mut out, &publication)?,
                    }
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
                    output::render(&mut out, args.format, &result.schema, &result.rows)?;
                }
                Command::Grant(args) => {
                    let request = pb::GrantAccessRequest {
                        target: args.name,
                        grantee: args.to,
                        role: if args.role == "publisher" {
                            pb::Role::Publisher
                        } else {
                            pb::Role::Reader
                        }
                        .into(),
                        purpose: args.purpose,
                        legal_basis: args
                            .legal_basis
                            .as_deref()
                            .map(admin::legal_basis)
                            .transpose()?
                            .unwrap_or(pb::LegalBasis::Unspecified)
                            .into(),
                        expires_at: args.expires.as_deref().map(admin::day_start).transpose()?,
                        clear_personal_data: args.clear_personal_data,
                    };
                    let grant = client.grant_access(request).await?.into_inner();
                    admin::describe_grant(&mut out, "granted", &grant)?;
                }
                Command::Revoke { grant_id } => {
                    let grant = client
                        .revoke_access(pb::RevokeAccessRequest { grant_id })
                        .await?
                        .into_inner();
                    admin::describe_grant(&mut out, "revoked", &grant)?;
                }
                Command::Approve { grant_id } => {
                    let grant = client
                        .approve_grant(pb::ApproveGrantRequest { grant_id })
                        .await?
                        .into_inner();
                    admin::describe_grant(&mut out, "approved", &grant)?;
                }
                Command::Grants {
                    name,
                    grantee,
                    all,
                    listing,
                } => {
                    let list = client
                        .list_grants(pb::ListGrantsRequest {
                            target: name.unwrap_or_default(),
                            grantee,
                            include_inactive: all,
                        })
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => {
                            listing::write_json(&mut out, "ListGrantsResponse", &list)?
                        }
                        Listing::Table => admin::print_grants(&mut out, &list.grants)?,
                    }
                }
                Command::Audit {
                    principal,
                    target,
                    limit,
                    listing,
                } => {
                    let list = client
                        .list_audit_events(pb::ListAuditEventsRequest {
                            principal,
                            target,
                            limit,
                        })
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => {
                            listing::write_json(&mut out, "ListAuditEventsResponse", &list)?
                        }
                        Listing::Table => admin::print_audit(&mut out, &list.events)?,
                    }
                }
                Command::Token(TokenCommand::Create {
                    principal,
                    description,
                    expires,
                }) => {
                    let created = client
                        .create_token(pb::CreateTokenRequest {
                            principal,
                            description,
                            expires_at: expires.as_deref().map(admin::day_start).transpose()?,
                        })
                        .await?
                        .into_inner();
                    let info = created.token.unwrap_or_default();
                    eprintln!(
                        "created {} for {}; store the token now, it cannot be shown again:",
                        info.id, info.principal
                    );
                    writeln!(out, "{}", created.secret)?;
                }
                Command::Token(TokenCommand::List { listing }) => {
                    let list = client
                        .list_tokens(pb::ListTokensRequest {})
                        .await?
                        .into_inner();
                    match listing.format {
                        Listing::Json => {
                            listing::write_json(&mut out, "ListTokensResponse", &list)?
                        }
                        Listing::Table => admin::print_tokens(&mut out, &list.tokens)?,
                    }
                }
                Command::Token(TokenCommand::Revoke { id }) => {
                    let token = client
                        .revoke_token(pb::RevokeTokenRequest { id })
                        .await?
                        .into_inner();
                    writeln!(out, "revoked {} ({})", token.id, token.principal)?;
                }
                Command::ServerInfo { listing } => {
                    let info = client
                        .get_server_info(pb::GetServerInfoRequest {})
                        .await?
                        .into_inner();
                    if listing.format == Listing::Json {
                        listing::write_json(&mut out, "ServerInfo", &info)?;
                        return Ok(());
                    }
                    writeln!(out, "ferry (CLI)   {}", env!("CARGO_PKG_VERSION"))?;
                    writeln!(out, "ferry-server  {}", info.version)?;
                    writeln!(out, "API versions  {}", info.api_versions.join(", "))?;
                    writeln!(out, "registry      {}", info.registry)?;
                    writeln!(out, "warehouse     {}", info.warehouse)?;
                    writeln!(out, "sources       {}", info.source_schemes.join(", "))?;
                    if info.version != env!("CARGO_PKG_VERSION") {
                        eprintln!(
                            "note: the CLI and the server are different releases; both speak {}",
                            info.api_versions.join(", ")
                        );
                    }
                }
                Command::ReloadPolicies => {
                    let reloaded = client
                        .reload_policies(pb::ReloadPoliciesRequest {})
                        .await?
                        .into_inner();
                    writeln!(
                        out,
                        "policies reloaded with {} grant(s)",
                        reloaded.grants_loaded
                    )?;
                }
            }
        }
    }
    Ok(())
}
