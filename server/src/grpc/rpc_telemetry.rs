//! A tower layer giving every RPC a server span (OpenTelemetry `rpc.*` conventions, parented on
//! the caller's W3C `traceparent`) and recording `rpc.server.duration` by method and status.
//!
//! The status is read where gRPC puts it: the headers of a trailers-only response (an error
//! before any message), or the trailers at the end of the body. Streaming RPCs are therefore
//! measured until their last message, and an error mid-stream is counted under its own code.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::propagation::Extractor;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::metrics::METRICS;

/// gRPC's CANCELLED: the client went away before the response ended.
const CANCELLED: i64 = 1;
/// gRPC's UNKNOWN: the transport failed.
const UNKNOWN: i64 = 2;

#[derive(Clone, Default)]
pub struct RpcTelemetryLayer;

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner }
    }
}

#[derive(Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// What to record once the RPC's outcome is known.
struct RpcRecord {
    span: tracing::Span,
    started: Instant,
    service: String,
    method: String,
}

impl RpcRecord {
    fn finish(self, status: i64) {
        self.span.record("rpc.grpc.status_code", status);
        METRICS.rpc_duration.record(
            self.started.elapsed().as_secs_f64() * 1000.0,
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", self.service),
                KeyValue::new("rpc.method", self.method),
                KeyValue::new("rpc.grpc.status_code", status),
            ],
        );
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for the trailers that carry the gRPC status.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        record: Option<RpcRecord>,
        // The status from a trailers-only response, used if the body ends without trailers.
        header_status: Option<i64>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(record) = this.project().record.take() {
                record.finish(CANCELLED);
            }
        }
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let status = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().and_then(grpc_status),
            Poll::Ready(Some(Err(_))) => Some(UNKNOWN),
            Poll::Ready(None) => Some(this.header_status.unwrap_or(0)),
            Poll::Pending => None,
        };
        if let Some(status) = status
            && let Some(record) = this.record.take()
        {
            record.finish(status);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S, B, R> Service<http::Request<B>> for RpcTelemetry<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    B: Send + 'static,
    R: Body,
{
    type Response = http::Response<ObservedBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
        let (service, method) = (service.to_owned(), method.to_owned());
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            ferry.principal = tracing::field::Empty,
            ferry.dataset = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Headers(request.headers()))
        });
        let _ = span.set_parent(parent);
        // Take the ready service and leave a fresh clone, as tower requires.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let record = RpcRecord {
            span: span.clone(),
            started: Instant::now(),
            service,
            method,
        };
        Box::pin(
            async move {
                let response = match inner.call(request).await {
                    Ok(response) => response,
                    Err(error) => {
                        record.finish(UNKNOWN);
                        return Err(error);
                    }
                };
                let header_status = grpc_status(response.headers());
                Ok(response.map(|inner| ObservedBody {
                    inner,
                    record: Some(record),
                    header_status,
                }))
            }
            .instrument(span),
        )
    }
}
