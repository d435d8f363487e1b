//! One JSON object per log line, carrying the OpenTelemetry trace and span ids of the span the
//! event happened in (`openTelemetry.traceId` / `.spanId`), so logs and traces join in any
//! backend. The format is json-subscriber's, a drop-in for tracing-subscriber's own JSON.

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;

/// The JSON log layer, writing to `writer`.
pub fn layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    json_subscriber::fmt::layer()
        .with_current_span(true)
        .with_span_list(false)
        .with_opentelemetry_ids(true)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use serde_json::{Value, json};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn numbers_are_json_numbers_and_text_is_text() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(layer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                seconds = 1.5,
                rows = 3u64,
                delta = -2i64,
                ok = true,
                name = "x",
                "done"
            );
        });
        let line = &lines(&captured)[0];
        let fields = &line["fields"];
        assert_eq!(fields["seconds"], json!(1.5));
        assert_eq!(fields["rows"], json!(3));
        assert_eq!(fields["delta"], json!(-2));
        assert_eq!(fields["ok"], json!(true));
        assert_eq!(fields["name"], json!("x"));
        assert_eq!(fields["message"], json!("done"));
        assert_eq!(line["level"], json!("INFO"));
        assert!(
            line.get("openTelemetry").is_none(),
            "no span, no ids: {line}"
        );
    }

    #[test]
    fn a_line_inside_a_traced_span_carries_its_ids() {
        let captured = Captured::default();
        let writer = captured.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(layer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("publish", dataset = "catalog.products");
            let _entered = span.enter();
            tracing::info!("publish started");
        });
        let line = &lines(&captured)[0];
        assert_eq!(line["span"]["name"], json!("publish"));
        assert_eq!(line["span"]["dataset"], json!("catalog.products"));
        let ids = &line["openTelemetry"];
        assert_eq!(ids["traceId"].as_str().unwrap().len(), 32, "{line}");
        assert_eq!(ids["spanId"].as_str().unwrap().len(), 16, "{line}");
    }
}
