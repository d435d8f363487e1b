//! `ferry-server`: runs the Ferry gRPC service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_server::config::LogFormat;
use ferry_server::server::{BoundServer, shutdown_signal};
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
    Config,
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
                let server = BoundServer::bind(&config)
                    .await
                    .context("starting ferry-server")?;
                server.serve(shutdown_signal()).await?;
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
    }
}
