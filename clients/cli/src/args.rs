//! Every `ferry` command's arguments, as clap parses them; `main` dispatches them to the
//! command groups.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::listing::ListingArgs;
use crate::output;

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
pub(crate) struct Cli {
    /// The Ferry server.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) endpoint: String,
    /// Bearer token (a Ferry token or an OIDC JWT).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// PEM CA certificate that signed the server's (https:// endpoints; default: system roots).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CA_CERT"
    )]
    pub(crate) ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require mutual TLS.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CLIENT_CERT",
        requires = "client_key"
    )]
    pub(crate) client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "FERRY_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub(crate) client_key: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// file://, s3://, gs:// or https:// URI of the extract (as the contract says: CSV or NDJSON, plain, gzip or zstd).
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
    /// Each dataset you may see: its latest partition, whether the day its SLA makes due is
    /// late, and how the quality rules fared in its last publish.
    Status {
        /// Only datasets in this namespace.
        namespace: Option<String>,
        /// Judge lateness at this instant (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        listing: ListingArgs,
    },
    /// Each scheduled feed you may see: its source template, when it is checked next, how its
    /// last check went and its latest attempt.
    Feeds {
        /// Only datasets in this namespace.
        namespace: Option<String>,
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
pub(crate) struct GrantArgs {
    /// The dataset or view, e.g. catalog.with_image.
    pub(crate) name: String,
    /// The grantee team, e.g. team:a.
    #[arg(long)]
    pub(crate) to: String,
    #[arg(long, value_parser = ["reader", "publisher"], default_value = "reader")]
    pub(crate) role: String,
    /// Why the team needs the data (required for personal data in clear).
    #[arg(long, default_value = "")]
    pub(crate) purpose: String,
    /// The GDPR art. 6 legal basis (required for personal data in clear).
    #[arg(long, value_parser = ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"])]
    pub(crate) legal_basis: Option<String>,
    /// The day access ends (YYYY-MM-DD): the grant expires at 00:00 UTC that day, so the day
    /// before is the last day of access.
    #[arg(long)]
    pub(crate) expires: Option<String>,
    /// Ask to see personal columns in clear; pending until a privacy officer approves.
    #[arg(long)]
    pub(crate) clear_personal_data: bool,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
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
pub(crate) enum DatasetCommand {
    /// Register a contract (Ferry YAML or an ODCS v3 document); a compatible change bumps the
    /// minor version.
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
    /// Write a registered contract as an ODCS v3 document (or Ferry YAML); `register` reads
    /// both, so export then register gives back the same contract.
    Export {
        name: String,
        #[arg(long, value_enum, default_value = "odcs")]
        format: crate::datasets::ExportFormat,
        /// Write here instead of to standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print a contract inferred from a source (a path, file://, s3://, gs:// or https://):
    /// format, compression, names, types, required and personal-looking columns. Read here,
    /// not by the server; S3 and GCS settings come from AWS_* and GOOGLE_* variables.
    #[command(
        after_help = "Examples:\n  ferry dataset infer data/product_catalog_20210403.csv.gz --owner team:catalog\n  \
                            ferry dataset infer s3://drops/orders.parquet --name shop.orders --owner team:shop -o orders.yaml"
    )]
    Infer(InferArgs),
}

#[derive(Args)]
pub(crate) struct InferArgs {
    /// A local path or a source URI.
    pub(crate) source: String,
    /// The dataset's `namespace.name`; from the file's name by default.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The owning team, e.g. team:catalog.
    #[arg(long)]
    pub(crate) owner: Option<String>,
    /// Records to sample.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sample_rows: usize,
    #[arg(long, value_enum, default_value = "yaml")]
    pub(crate) format: crate::infer::ContractFormat,
    /// Write the contract here instead of to standard output.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReadArgs {
    /// A dataset or view, e.g. catalog.with_image.
    pub(crate) name: String,
    /// One day (same as --from D --to D).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub(crate) date: Option<String>,
    #[arg(long)]
    pub(crate) from: Option<String>,
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Comma-separated column names.
    #[arg(long, value_delimiter = ',')]
    pub(crate) columns: Vec<String>,
    /// At most this many rows (0 = all).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: output::Format,
}
