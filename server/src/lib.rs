//! Ferry: governed publishing of day-partitioned datasets into the warehouse.
//!
//! Layers, outermost first: `grpc` (tonic adapters) -> `service` (validate, authorize, act) ->
//! `contract`, `governance`, `ingest`, `registry`, `warehouse` (domain and backends, no transport
//! types).

pub mod config;
pub mod contract;
pub mod crash_point;
pub mod error;
pub mod governance;
pub mod grpc;
pub mod ingest;
pub mod registry;
pub mod secret;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod warehouse;

pub use config::Config;
pub use error::FerryError;
