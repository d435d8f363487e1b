//! Ferry: governed publishing of day-partitioned datasets into the warehouse.
//!
//! Layers, outermost first: `server` -> `grpc` (tonic adapters) -> `service` (validate,
//! authorize, act) -> `ingest` -> `registry`, `warehouse` -> `governance` -> `contract` ->
//! `error`; ARCHITECTURE.md draws them, and `scripts/check-layers.py` fails CI on an import
//! against them.

pub mod clock;
pub mod config;
pub mod contract;
pub mod crash_point;
pub mod error;
pub mod governance;
pub mod grpc;
pub mod ingest;
pub mod keyed_lock;
pub mod notify;
pub mod registry;
pub mod secret;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod warehouse;

pub use config::Config;
pub use error::FerryError;
