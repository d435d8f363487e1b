//! OpenTelemetry: traces, metrics and structured logs, configured by the standard `OTEL_*`
//! environment variables. When no OTLP endpoint is configured nothing is exported and no
//! OpenTelemetry layer is installed, so spans cost what plain `tracing` costs.

mod json_log;
pub mod metrics;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::FerryError;

/// Flushes and stops the exporters when shut down.
#[must_use = "call shutdown() before exit so buffered telemetry is flushed"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// True when the environment asks for OTLP export.
pub fn otlp_configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled
        && [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ]
        .iter()
        .any(|name| env_set(name))
}

/// How log lines are written: JSON for machines (the default), or pretty for people.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

/// Installs logging and, when configured, OTLP/gRPC export. Call inside the Tokio runtime.
pub fn init(log_format: LogFormat, log_level: &str) -> Result<Telemetry, FerryError> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(log_level)
            .map_err(|e| FerryError::Config(format!("log_level {log_level:?}: {e}")))?,
    };
    let logs = match log_format {
        LogFormat::Json => json_log::layer(std::io::stderr).boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (tracer_provider, meter_provider) = if otlp_configured() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        // Reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        let resource = Resource::builder().build();
        let spans = SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| FerryError::Config(format!("OTLP span exporter: {e}")))?;
        // The async-runtime processors export on Tokio, where the tonic exporter needs to run.
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(BatchSpanProcessor::builder(spans, runtime::Tokio).build())
            .build();
        let metrics = MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| FerryError::Config(format!("OTLP metric exporter: {e}")))?;
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(PeriodicReader::builder(metrics, runtime::Tokio).build())
            .build();
        global::set_meter_provider(meter_provider.clone());
        (Some(tracer_provider), Some(meter_provider))
    } else {
        (None, None)
    };
    let otel = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("ferry-server"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel)
        .try_init()
        .map_err(|e| FerryError::Internal(format!("logging: {e}")))?;
    Ok(Telemetry {
        tracer_provider,
        meter_provider,
    })
}

impl Telemetry {
    /// Flushes what is buffered. An unreachable collector delays this by at most the
    /// exporters' timeouts (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            let _ = provider.shutdown();
        }
        if let Some(provider) = self.meter_provider {
            let _ = provider.shutdown();
        }
    }
}
