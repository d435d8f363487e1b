//! Propagates the caller's W3C trace context to Ferry, so a script's or a CI job's trace
//! continues through the server. The context comes from the `TRACEPARENT` (and `TRACESTATE`)
//! environment variables, the convention CI systems and `otel-cli` use.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

#[derive(Clone, Default)]
pub struct TraceContext {
    traceparent: Option<AsciiMetadataValue>,
    tracestate: Option<AsciiMetadataValue>,
}

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, with non-zero ids.
pub fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].chars().any(|c| c != '0')
        && hex(parts[2], 16)
        && parts[2].chars().any(|c| c != '0')
        && hex(parts[3], 2)
}

impl TraceContext {
    pub fn from_env() -> Self {
        let traceparent = std::env::var("TRACEPARENT").ok().filter(|value| {
            let valid = valid_traceparent(value);
            if !valid {
                eprintln!("warning: ignoring TRACEPARENT={value:?}: not a W3C traceparent");
            }
            valid
        });
        Self {
            traceparent: traceparent.and_then(|v| v.parse().ok()),
            tracestate: std::env::var("TRACESTATE")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }
}

impl Interceptor for TraceContext {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(traceparent) = &self.traceparent {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.clone());
            if let Some(tracestate) = &self.tracestate {
                request
                    .metadata_mut()
                    .insert("tracestate", tracestate.clone());
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_format_is_checked() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_interceptor_adds_the_context_to_every_call() {
        let mut context = TraceContext {
            traceparent: Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            ),
            tracestate: Some("vendor=x".parse().unwrap()),
        };
        let request = context.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(request.metadata().get("tracestate").unwrap(), "vendor=x");
        let untouched = TraceContext::default().call(Request::new(())).unwrap();
        assert!(untouched.metadata().get("traceparent").is_none());
    }
}
