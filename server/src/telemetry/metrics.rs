//! Ferry's metric instruments. They come from the global meter provider, which is a no-op until
//! `telemetry::init` installs an exporting one.

use std::sync::LazyLock;

use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};

pub struct FerryMetrics {
    /// `rpc.server.duration`: latency by service, method and gRPC status (its count is the
    /// RPC count).
    pub rpc_duration: Histogram<f64>,
    /// `ferry.publish.rows`: rows accepted into a partition, by dataset.
    pub rows_published: Counter<u64>,
    /// `ferry.publish.rows_rejected`: rows that failed validation, by dataset.
    pub rows_rejected: Counter<u64>,
    /// `ferry.publish.bytes`: source bytes read, by dataset.
    pub bytes_published: Counter<u64>,
    /// `ferry.publish.duration`: publish wall time by dataset and outcome.
    pub publish_duration: Histogram<f64>,
    /// `ferry.publish.active`: publishes in flight.
    pub active_publishes: UpDownCounter<i64>,
    /// `ferry.warehouse.operation.duration`: warehouse calls by backend and operation.
    pub warehouse_duration: Histogram<f64>,
    /// `ferry.warehouse.retries`: retried warehouse calls by backend and operation.
    pub warehouse_retries: Counter<u64>,
    /// `ferry.authz.denials`: denied calls by reason.
    pub authz_denials: Counter<u64>,
    /// `ferry.freshness.late_partitions`: days found late against their SLA, by dataset (each
    /// day once, across replicas).
    pub late_partitions: Counter<u64>,
    /// `ferry.webhook.deliveries`: webhook events by type and outcome (delivered, given_up).
    pub webhook_deliveries: Counter<u64>,
}

pub static METRICS: LazyLock<FerryMetrics> = LazyLock::new(|| {
    let meter = global::meter("ferry-server");
    FerryMetrics {
        rpc_duration: meter
            .f64_histogram("rpc.server.duration")
            .with_unit("ms")
            .with_description("Duration of inbound RPCs")
            .build(),
        rows_published: meter
            .u64_counter("ferry.publish.rows")
            .with_unit("{row}")
            .with_description("Rows accepted into published partitions")
            .build(),
        rows_rejected: meter
            .u64_counter("ferry.publish.rows_rejected")
            .with_unit("{row}")
            .with_description("Rows that failed contract validation")
            .build(),
        bytes_published: meter
            .u64_counter("ferry.publish.bytes")
            .with_unit("By")
            .with_description("Source bytes read by publishes")
            .build(),
        publish_duration: meter
            .f64_histogram("ferry.publish.duration")
            .with_unit("s")
            .with_description("Publish wall time")
            .build(),
        active_publishes: meter
            .i64_up_down_counter("ferry.publish.active")
            .with_unit("{publish}")
            .with_description("Publishes in flight")
            .build(),
        warehouse_duration: meter
            .f64_histogram("ferry.warehouse.operation.duration")
            .with_unit("s")
            .with_description("Warehouse operation latency")
            .build(),
        warehouse_retries: meter
            .u64_counter("ferry.warehouse.retries")
            .with_unit("{retry}")
            .with_description("Retried warehouse operations")
            .build(),
        authz_denials: meter
            .u64_counter("ferry.authz.denials")
            .with_unit("{call}")
            .with_description("Calls denied by authorization")
            .build(),
        late_partitions: meter
            .u64_counter("ferry.freshness.late_partitions")
            .with_unit("{partition}")
            .with_description("Days not live by their SLA's deadline")
            .build(),
        webhook_deliveries: meter
            .u64_counter("ferry.webhook.deliveries")
            .with_unit("{event}")
            .with_description("Webhook events, by outcome")
            .build(),
    }
});
