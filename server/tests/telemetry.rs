//! OpenTelemetry export, checked against a real OTLP/gRPC receiver running in the test process.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_testkit::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};

/// Everything the receiver was sent.
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<Metric>>>,
    service_names: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            if let Some(name) = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
            {
                self.service_names.lock().unwrap().push(name);
            }
            for scope in resource_spans.scope_spans {
                self.spans.lock().unwrap().extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        for resource_metrics in request.into_inner().resource_metrics {
            for scope in resource_metrics.scope_metrics {
                self.metrics.lock().unwrap().extend(scope.metrics);
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn start_receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(received.clone()))
        .add_service(MetricsServiceServer::new(received.clone()));
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, received)
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.clone()),
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(i)),
            }) => Some(i.to_string()),
            _ => None,
        })
}

fn spawn_server(data_dir: &std::path::Path, port: u16, otlp_endpoint: &str) -> Child {
    let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
    spawn_ferry_server(data_dir, port, |command| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint)
            .env("OTEL_SERVICE_NAME", "ferry-under-test")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")
            .env("RUST_LOG", "info")
            .stderr(log);
    })
}

fn stop(mut child: Child) {
    terminate(&mut child);
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sum_of(metrics: &[Metric], name: &str, attribute: (&str, &str)) -> i64 {
    // Cumulative temporality: the latest export holds the total.
    metrics
        .iter()
        .filter(|m| m.name == name)
        .filter_map(|m| match &m.data {
            Some(metric::Data::Sum(sum)) => sum
                .data_points
                .iter()
                .filter(|p| string_attr(&p.attributes, attribute.0).as_deref() == Some(attribute.1))
                .map(|p| match p.value {
                    Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v),
                    ) => v,
                    Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                            v,
                        ),
                    ) => v as i64,
                    None => 0,
                })
                .max(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_exports_its_span_tree_and_metrics_under_the_callers_trace() {
    let (receiver, received) = start_receiver().await;
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = spawn_server(
        &scratch.path().join("data"),
        port,
        &format!("http://{receiver}"),
    );
    let mut client = connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    register_catalog(&mut client).await;
    let source = write_file(scratch.path(), "day1.csv", DAY_1);

    // The caller's trace context, as a Python or CLI client sends it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span_id = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(ferry_proto::v1::PublishPartitionRequest {
        dataset: RAW.into(),
        partition_date: "2021-04-03".into(),
        source_uri: source,
        expected_sha256: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span_id}-01")
            .parse()
            .unwrap(),
    );
    let mut events = client
        .publish_partition(request)
        .await
        .unwrap()
        .into_inner();
    while let Some(event) = futures::StreamExt::next(&mut events).await {
        event.unwrap();
    }

    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    wait_for("the publish spans", || {
        let spans = received.spans.lock().unwrap();
        ["publish.commit", "publish.stage", "publish.refresh_views"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
    })
    .await;
    let spans = received.spans.lock().unwrap().clone();
    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), s)).collect();
    let rpc = spans
        .iter()
        .find(|s| s.name == "ferry.v1.FerryService/PublishPartition")
        .expect("an RPC span");
    assert_eq!(
        hex(&rpc.trace_id),
        trace_id,
        "the RPC joins the caller's trace"
    );
    assert_eq!(
        hex(&rpc.parent_span_id),
        parent_span_id,
        "the caller's span is the parent"
    );
    assert_eq!(
        string_attr(&rpc.attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string_attr(&rpc.attributes, "rpc.service").as_deref(),
        Some("ferry.v1.FerryService")
    );
    assert_eq!(
        string_attr(&rpc.attributes, "rpc.method").as_deref(),
        Some("PublishPartition")
    );
    assert_eq!(
        string_attr(&rpc.attributes, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    assert_eq!(
        string_attr(&rpc.attributes, "ferry.dataset").as_deref(),
        Some(RAW)
    );
    assert_eq!(
        string_attr(&rpc.attributes, "ferry.principal").as_deref(),
        Some(OWNER)
    );
    // Every stage descends from the RPC span, in the same trace.
    for stage in [
        "publish.fetch_source",
        "publish.validate",
        "publish.stage",
        "publish.refresh_views",
        "publish.commit",
    ] {
        let span = spans
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("no {stage} span"));
        assert_eq!(hex(&span.trace_id), trace_id, "{stage}");
        let mut ancestor = hex(&span.parent_span_id);
        let mut hops = 0;
        while ancestor != hex(&rpc.span_id) {
            let parent = by_id
                .get(&ancestor)
                .unwrap_or_else(|| panic!("{stage}: broken parent chain"));
            ancestor = hex(&parent.parent_span_id);
            hops += 1;
            assert!(hops < 10, "{stage}: no path to the RPC span");
        }
    }
    // No row values leak into span attributes.
    for span in &spans {
        for kv in &span.attributes {
            let value = string_attr(std::slice::from_ref(kv), &kv.key).unwrap_or_default();
            assert!(!value.contains("data:image"), "{}: {}", span.name, kv.key);
        }
    }
    drop(spans);
    assert!(
        received
            .service_names
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "ferry-under-test")
    );

    wait_for("the publish metrics", || {
        let metrics = received.metrics.lock().unwrap();
        sum_of(&metrics, "ferry.publish.rows", ("ferry.dataset", RAW)) == 99
    })
    .await;
    {
        let metrics = received.metrics.lock().unwrap();
        assert_eq!(
            sum_of(&metrics, "ferry.publish.bytes", ("ferry.dataset", RAW)),
            DAY_1.len() as i64
        );
        let rpc_histogram = metrics
            .iter()
            .find(|m| m.name == "rpc.server.duration")
            .expect("RPC latency");
        let Some(metric::Data::Histogram(histogram)) = &rpc_histogram.data else {
            panic!("rpc.server.duration is not a histogram");
        };
        assert!(histogram.data_points.iter().any(|p| {
            string_attr(&p.attributes, "rpc.method").as_deref() == Some("PublishPartition")
                && string_attr(&p.attributes, "rpc.grpc.status_code").as_deref() == Some("0")
                && p.count >= 1
        }));
    }

    // A failing call is counted under its status.
    let inside_the_roots = format!("file://{}/x.csv", std::env::temp_dir().display());
    let status = publish(&mut client, "catalog.nope", "2021-04-03", &inside_the_roots)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    wait_for("the NOT_FOUND latency point", || {
        let metrics = received.metrics.lock().unwrap();
        metrics
            .iter()
            .filter(|m| m.name == "rpc.server.duration")
            .any(|m| match &m.data {
                Some(metric::Data::Histogram(h)) => h.data_points.iter().any(|p| {
                    string_attr(&p.attributes, "rpc.grpc.status_code").as_deref() == Some("5")
                }),
                _ => false,
            })
    })
    .await;
    stop(server);

    // JSON logs carry the trace and span ids of the span they were written in.
    let log = std::fs::read_to_string(scratch.path().join("data.log")).unwrap();
    let started = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "publish started")
        .unwrap_or_else(|| panic!("no 'publish started' log line in:\n{log}"));
    assert_eq!(started["openTelemetry"]["traceId"], trace_id);
    assert_eq!(
        started["openTelemetry"]["spanId"].as_str().unwrap().len(),
        16
    );
    assert_eq!(started["level"], "INFO");
}

#[tokio::test(flavor = "multi_thread")]
async fn rpcs_succeed_when_the_collector_is_down() {
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens on the collector port.
    let dead_collector = format!("http://127.0.0.1:{}", free_port());
    let server = spawn_server(&scratch.path().join("data"), port, &dead_collector);
    let mut client = connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    register_catalog(&mut client).await;
    let source = write_file(scratch.path(), "day1.csv", DAY_1);
    for _ in 0..3 {
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            publish(&mut client, RAW, "2021-04-03", &source),
        )
        .await
        .expect("an unreachable collector must not block RPCs");
        assert_eq!(result.unwrap().publication.unwrap().rows_accepted, 99);
    }
    assert_eq!(
        count(&mut client, TEAM_A, "2021-04-03").await,
        team_counts(DAY_1).0
    );
    stop(server);
}

#[test]
fn the_collector_config_routes_otlp_to_google_cloud() {
    let text = include_str!("../../deploy/otel-collector.yaml");
    let config: serde_norway::Value = serde_norway::from_str(text).unwrap();
    assert!(
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(":4317")
    );
    assert!(config["exporters"]["googlecloud"].is_mapping());
    for pipeline in ["traces", "metrics"] {
        let pipeline = &config["service"]["pipelines"][pipeline];
        let names = |key: &str| -> Vec<String> {
            pipeline[key]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names("receivers"), ["otlp"]);
        assert_eq!(names("exporters"), ["googlecloud"]);
        for processor in names("processors") {
            assert!(
                config["processors"][processor.as_str()].is_mapping(),
                "{processor} is not defined"
            );
        }
    }
}

/// Secrets only this test uses, so finding one anywhere is a leak.
const HMAC_KEY: &str = "distinctive-hmac-key-5f1e0a9c-b2d4-4e8f-9a61-0c3b7d2e8f40";
const S3_SECRET: &str = "distinctive-s3-secret-8c2d41f7";
const FORGED: &str = "fry_distinctiveForgedTokenNobodyIssued0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_a_log_line_a_span_or_the_printed_config() {
    let (receiver, received) = start_receiver().await;
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let port = free_port();
    let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
    let secrets_env = [
        ("FERRY_PRIVACY__PSEUDONYMIZATION_KEY", HMAC_KEY),
        ("FERRY_SOURCES__S3__ACCESS_KEY_ID", "distinctive-s3-key-id"),
        ("FERRY_SOURCES__S3__SECRET_ACCESS_KEY", S3_SECRET),
    ];
    let server = spawn_ferry_server(&data_dir, port, |command| {
        command
            .envs(secrets_env)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("RUST_LOG", "debug")
            .stderr(log);
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = connect(addr).await;
    let team_token = {
        let mut admin = connect_with_token(addr, Some(ADMIN_TOKEN)).await;
        admin
            .create_token(ferry_proto::v1::CreateTokenRequest {
                principal: "team:b".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    };
    register_catalog(&mut client).await;
    let source = write_file(scratch.path(), "day1.csv", DAY_1);
    publish(&mut client, RAW, "2021-04-03", &source)
        .await
        .unwrap();
    read_rows(&mut client, TEAM_A, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap();
    let mut forger = connect_with_token(addr, Some(FORGED)).await;
    let status = forger
        .list_datasets(ferry_proto::v1::ListDatasetsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut team_b = connect_with_token(addr, Some(&team_token)).await;
    team_b
        .list_datasets(ferry_proto::v1::ListDatasetsRequest::default())
        .await
        .unwrap();
    wait_for("the publish spans", || {
        received
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.name == "publish.commit")
    })
    .await;
    stop(server);

    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-server"))
        .arg("config")
        .envs(secrets_env)
        .env("FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "FERRY_REGISTRY_URL",
            "postgres://ferry:distinctive-db-password@db:5432/ferry",
        )
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains("<redacted>"), "{printed}");

    let logs = std::fs::read_to_string(data_dir.with_extension("log")).unwrap();
    assert!(logs.lines().count() > 10, "debug logging ran:\n{logs}");
    let spans = format!("{:?}", received.spans.lock().unwrap());
    for secret in [
        HMAC_KEY,
        S3_SECRET,
        FORGED,
        ADMIN_TOKEN,
        team_token.as_str(),
        "distinctive-db-password",
    ] {
        for (what, text) in [("log", &logs), ("span", &spans), ("config", &printed)] {
            assert!(!text.contains(secret), "{secret} is in a {what}");
        }
    }
}
