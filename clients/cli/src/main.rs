//! `ferry`: team and admin commands for the Ferry data-publishing platform.

mod access;
mod admin;
mod args;
mod backfill;
mod commands;
mod datasets;
mod exit;
mod feeds;
mod infer;
mod listing;
mod output;
mod platform;
mod publishing;
mod quickstart;
mod reading;
mod status;
mod trace_context;

use clap::Parser;

use args::{Cli, Command, DatasetCommand, TokenCommand};

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
    let out = &mut out;
    let cli = match cli.command {
        Command::Quickstart { data_dir } => return quickstart::run(data_dir, out).await,
        // Inference reads the source itself; it needs no server.
        Command::Dataset(DatasetCommand::Infer(args)) => return infer::run(args, out).await,
        _ => cli,
    };
    let client = &mut commands::connect(
        &cli.endpoint,
        cli.token.as_deref(),
        &commands::TlsFiles {
            ca_cert: cli.ca_cert.clone(),
            client_cert: cli.client_cert.clone(),
            client_key: cli.client_key.clone(),
        },
    )
    .await?;
    match cli.command {
        Command::Quickstart { .. } | Command::Dataset(DatasetCommand::Infer(_)) => {
            unreachable!("handled above")
        }
        Command::Dataset(DatasetCommand::Register { file }) => {
            datasets::register(client, file, out).await
        }
        Command::Dataset(DatasetCommand::Get { name, listing }) => {
            datasets::get(client, name, listing, out).await
        }
        Command::Dataset(DatasetCommand::List { prefix, listing }) => {
            datasets::list(client, prefix, listing, out).await
        }
        Command::Dataset(DatasetCommand::Export {
            name,
            format,
            output,
        }) => datasets::export(client, name, format, output, out).await,
        Command::Publish {
            dataset,
            date,
            source,
            sha256,
            quiet,
        } => publishing::publish(client, dataset, date, source, sha256, quiet, out).await,
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
            backfill::run(client, plan, out).await
        }
        Command::Publications {
            dataset,
            date,
            limit,
            listing,
        } => publishing::publications(client, dataset, date, limit, listing, out).await,
        Command::Status {
            namespace,
            at,
            listing,
        } => status::run(client, namespace, at, listing, out).await,
        Command::Feeds { namespace, listing } => feeds::run(client, namespace, listing, out).await,
        Command::Publication { id, listing } => {
            publishing::publication(client, id, listing, out).await
        }
        Command::Read(args) => reading::read(client, args, out).await,
        Command::Grant(args) => access::grant(client, args, out).await,
        Command::Revoke { grant_id } => access::revoke(client, grant_id, out).await,
        Command::Approve { grant_id } => access::approve(client, grant_id, out).await,
        Command::Grants {
            name,
            grantee,
            all,
            listing,
        } => access::grants(client, name, grantee, all, listing, out).await,
        Command::Audit {
            principal,
            target,
            limit,
            listing,
        } => platform::audit(client, principal, target, limit, listing, out).await,
        Command::Token(TokenCommand::Create {
            principal,
            description,
            expires,
        }) => platform::create_token(client, principal, description, expires, out).await,
        Command::Token(TokenCommand::List { listing }) => {
            platform::list_tokens(client, listing, out).await
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            platform::revoke_token(client, id, out).await
        }
        Command::ServerInfo { listing } => platform::server_info(client, listing, out).await,
        Command::ReloadPolicies => platform::reload_policies(client, out).await,
    }
}
