//! `ferry-server`: runs the Ferry gRPC service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_server::config::LogFormat;
use ferry_server::governance::check_policies;
use ferry_server::registry::Registry;
use ferry_server::server::{BoundServer, build_ferry, shutdown_signal};
use ferry_server::service::{Caller, TokenRequest, issue_token};
use ferry_server::{Config, telemetry};

#[derive(Parser)]
#[command(version, about = "Ferry: governed data publishing into the warehouse")]
struct Cli {
    /// A TOML config file (default: ./ferry.toml when present). `FERRY_*` variables override it.
    #[arg(long, short, global = true, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (with health and reflection) until SIGINT or SIGTERM.
    Serve {
        /// Listen address [default: 127.0.0.1:50051].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory for the embedded registry and warehouse [default: ./ferry-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log format [default: json].
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Print the effective configuration (defaults, file and environment merged) as JSON.
    /// Secrets print as <redacted>.
    Config,
    /// Issue, list or revoke bearer tokens directly in the registry (for the first tokens, or
    /// when no admin token is at hand). Needs the server's registry configuration.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the allow/deny cases in POLICY_DIR/tests/*.csv against the policies; exits 1 on any
    /// mismatch.
    CheckPolicies {
        /// The policies to check [default: the configured policy_dir, else ./policies].
        #[arg(long)]
        policy_dir: Option<PathBuf>,
    },
    /// Remove partitions older than each contract's retention, and log each removal in the audit
    /// log; then re-apply every grant to the warehouse, so expired grants lose their BigQuery
    /// views. Schedule it daily (a Kubernetes CronJob does this in deploy/).
    Retention {
        /// Treat this day as today (YYYY-MM-DD) [default: today, UTC].
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
    /// Exit 0 if the server at ADDR (default: the configured listen address) answers its gRPC
    /// health check as serving, 1 otherwise. Used by the container's HEALTHCHECK.
    Health {
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// Asks a running server's gRPC health service whether Ferry's service is serving. It is how
/// the container image checks itself without a shell or a separate probe binary.
async fn probe_health(addr: SocketAddr, within: Duration) -> anyhow::Result<bool> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let probe = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "ferry.v1.FerryService".into(),
            })
            .await
            .map_err(|status| anyhow::anyhow!("health check: {}", status.message()))?;
        anyhow::Ok(response.into_inner().status == ServingStatus::Serving as i32)
    };
    tokio::time::timeout(within, probe)
        .await
        .map_err(|_| anyhow::anyhow!("no health answer from {addr} within {within:?}"))?
}

/// Where a probe on this host reaches a server listening on `listen` (any-address becomes
/// loopback).
fn local_probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token bound to PRINCIPAL and print it once. Only its hash is stored.
    Create {
        /// kind:name, e.g. team:catalog, admin:platform, privacy:dpo.
        #[arg(long)]
        principal: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Expiry (YYYY-MM-DD, UTC midnight).
        #[arg(long)]
        expires: Option<chrono::NaiveDate>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id (tok_...).
    Revoke { id: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            log_format,
        } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            if let Some(format) = log_format {
                config.log_format = format;
            }
            let telemetry = telemetry::init(config.log_format, &config.log_level)?;
            let result = async {
                // Before binding: once the port accepts connections, SIGTERM must drain.
                let shutdown = shutdown_signal();
                let server = BoundServer::bind(&config)
                    .await
                    .context("starting ferry-server")?;
                server.serve(shutdown).await?;
                anyhow::Ok(())
            }
            .await;
            // Flush buffered spans and metrics whether or not serving succeeded.
            telemetry.shutdown();
            result
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Token { command } => {
            // The first token may come before the first `serve`, which would create it.
            if config.registry_url.is_none() {
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("cannot create data dir {}", config.data_dir.display())
                })?;
            }
            let registry = Registry::connect(&config.registry_url()).await?;
            let admin = Caller::system("cli");
            match command {
                TokenCommand::Create {
                    principal,
                    description,
                    expires,
                } => {
                    let issued = issue_token(
                        &registry,
                        TokenRequest {
                            principal,
                            description,
                            expires_at: expires
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|t| t.and_utc()),
                        },
                        &admin,
                    )
                    .await?;
                    eprintln!(
                        "created {} for {}; store the token now, it cannot be shown again:",
                        issued.record.id, issued.record.principal
                    );
                    println!("{}", issued.secret);
                }
                TokenCommand::List => {
                    for token in registry.list_tokens().await? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            token.id,
                            token.principal,
                            if token.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            },
                            token.description
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    if !registry.revoke_token(&id).await? {
                        anyhow::bail!("no live token {id}");
                    }
                    println!("revoked {id}");
                }
            }
            Ok(())
        }
        Command::CheckPolicies { policy_dir } => {
            let dir = policy_dir
                .or(config.policy_dir)
                .unwrap_or_else(|| PathBuf::from("policies"));
            let report = check_policies(&dir).await?;
            for failure in &report.failures {
                eprintln!("FAIL {failure}");
            }
            println!(
                "{} policy cases, {} failed ({})",
                report.cases,
                report.failures.len(),
                dir.display()
            );
            if !report.failures.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Health { addr, timeout } => {
            let addr = addr.unwrap_or_else(|| local_probe_addr(config.listen));
            match probe_health(addr, Duration::from_secs(timeout)).await {
                Ok(true) => {
                    println!("serving");
                    Ok(())
                }
                Ok(false) => {
                    eprintln!("not serving");
                    std::process::exit(1)
                }
                Err(e) => {
                    eprintln!("unhealthy: {e:#}");
                    std::process::exit(1)
                }
            }
        }
        Command::Retention { today } => {
            let telemetry = telemetry::init(config.log_format, &config.log_level)?;
            let ferry = build_ferry(&config).await?;
            let today = today.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let removed = ferry.enforce_retention(today).await;
            let synced = ferry.sync_all_warehouse_access().await;
            telemetry.shutdown();
            let removed = removed?;
            for (dataset, day) in &removed {
                println!("removed {dataset} {day}");
            }
            println!("{} partition(s) removed", removed.len());
            println!("{} granted table(s) re-applied to the warehouse", synced?);
            Ok(())
        }
    }
}
