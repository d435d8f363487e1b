//! Assembles and runs the gRPC server: Ferry's service, health and reflection.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_proto::v1::FILE_DESCRIPTOR_SET;
use ferry_proto::v1::ferry_service_server::FerryServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::config::Config;
use crate::error::FerryError;
use crate::grpc::{FerryGrpc, RpcTelemetryLayer};
use crate::registry::Registry;
use crate::service::Ferry;
use crate::warehouse::LocalWarehouse;

/// Opens the registry and the embedded warehouse described by `config`, and recovers from any
/// publish a previous process left unfinished.
pub async fn build_ferry(config: &Config) -> Result<Arc<Ferry>, FerryError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        FerryError::InvalidArgument(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let registry = Registry::connect(&config.registry_url()).await?;
    let warehouse = Arc::new(LocalWarehouse::new(&config.data_dir)?);
    let ferry = Arc::new(Ferry::new(
        registry,
        warehouse,
        config.sources.clone(),
        config.data_dir.join("quarantine"),
    ));
    ferry.recover().await?;
    Ok(ferry)
}

/// A server bound to its listener, ready to run.
pub struct BoundServer {
    pub local_addr: SocketAddr,
    listener: TcpListener,
    ferry: Arc<Ferry>,
}

impl BoundServer {
    /// Binds `config.listen` (port 0 picks a free port, as tests do).
    pub async fn bind(config: &Config) -> Result<Self, FerryError> {
        let ferry = build_ferry(config).await?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            FerryError::InvalidArgument(format!("cannot listen on {}: {e}", config.listen))
        })?;
        Ok(Self {
            local_addr: listener.local_addr()?,
            listener,
            ferry,
        })
    }

    /// Serves until `shutdown` completes, then drains in-flight calls.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), FerryError> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<FerryServiceServer<FerryGrpc>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| FerryError::Internal(format!("reflection: {e}")))?;
        info!(addr = %self.local_addr, "ferry-server listening");
        tonic::transport::Server::builder()
            .layer(RpcTelemetryLayer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(FerryServiceServer::new(FerryGrpc::new(self.ferry)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await
            .map_err(|e| FerryError::Internal(format!("server: {e}")))
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    info!("shutdown requested; draining in-flight calls");
}
