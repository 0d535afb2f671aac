//! The demo's webhook receiver on 127.0.0.1: one path always answers 200, one answers 500 to a
//! third of its deliveries on every attempt, so they end failed, and one is slow and lets the
//! first attempt of a quarter of its deliveries run past the attempt timeout, so they retry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use belter_common::headers;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Path that always responds 200.
pub(super) const CRM_PATH: &str = "/hooks/crm";

/// Path that responds 500 to every attempt of a third of the deliveries.
pub(super) const ALERTS_PATH: &str = "/hooks/alerts";

/// Path that answers slowly, and past the demo's 3 s attempt timeout on the first attempt of a
/// quarter of the deliveries.
pub(super) const ANALYTICS_PATH: &str = "/hooks/analytics";

/// Delay of a slow answer.
const SLOW_ANSWER: Duration = Duration::from_millis(700);

/// Delay of an answer that the daemon's 3 s attempt timeout cuts off.
const TIMED_OUT_ANSWER: Duration = Duration::from_secs(4);

/// The running receiver.
pub(super) struct Receiver {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Binds 127.0.0.1 on a free port and serves until stopped.
    pub(super) async fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the demo receiver on 127.0.0.1")?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(answer);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { address, task })
    }

    /// The URL of `path` on this receiver.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops accepting; connections in progress end with the runtime.
    pub(super) fn stop(self) {
        self.task.abort();
    }
}

/// A number that is stable for one delivery across its attempts, from its delivery id header.
fn delivery_number(request: &Request<Incoming>) -> u64 {
    request
        .headers()
        .get(headers::DELIVERY)
        .map(|value| value.as_bytes().iter().map(|&byte| u64::from(byte)).sum())
        .unwrap_or(0)
}

fn attempt_number(request: &Request<Incoming>) -> u64 {
    request
        .headers()
        .get(headers::ATTEMPT)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(1)
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let delivery = delivery_number(&request);
    let attempt = attempt_number(&request);
    // The body is read so the daemon sees a normal exchange; its content does not matter here.
    let _ = request.into_body().collect().await;
    let (status, body) = match path.as_str() {
        CRM_PATH => (StatusCode::OK, r#"{"received":true}"#),
        ALERTS_PATH if delivery % 3 == 0 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"alert store unavailable"}"#,
        ),
        ALERTS_PATH => (StatusCode::OK, r#"{"received":true}"#),
        ANALYTICS_PATH => {
            let delay = if delivery % 4 == 0 && attempt == 1 {
                TIMED_OUT_ANSWER
            } else {
                SLOW_ANSWER
            };
            tokio::time::sleep(delay).await;
            (StatusCode::ACCEPTED, r#"{"queued":true}"#)
        }
        _ => (StatusCode::NOT_FOUND, r#"{"error":"no such hook"}"#),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    Ok(response)
}
