//! A real HTTP server on `127.0.0.1:0` that receives Ferry's webhooks: it keeps every request
//! and answers with the statuses the test scripts (then 204), so a test can check the body, the
//! signature and the retries as a receiver would see them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub answered: StatusCode,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses to answer with, in order, before answering 204.
    script: VecDeque<StatusCode>,
}

pub struct WebhookReceiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts a receiver that answers `script`'s statuses first, then 204 No Content.
    pub async fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            received: Vec::new(),
            script: script
                .iter()
                .map(|code| StatusCode::from_u16(*code).unwrap())
                .collect(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let mut state = state.lock().unwrap();
                            let answered =
                                state.script.pop_front().unwrap_or(StatusCode::NO_CONTENT);
                            state.received.push(Received {
                                headers: parts.headers,
                                body,
                                answered,
                            });
                            let mut response = Response::new(Empty::<Bytes>::new());
                            *response.status_mut() = answered;
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/ferry", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `count` requests have been answered 2xx, and returns every request so far.
    /// Panics after 30 s: deliveries are retried within milliseconds in tests.
    pub async fn wait_for_deliveries(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let received = self.received();
            if received.iter().filter(|r| r.answered.is_success()).count() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} webhook deliveries expected, got {received:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
