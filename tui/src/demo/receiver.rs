//! The demo's webhook receiver on 127.0.0.1: one path always answers 200, one fails every third
//! request with 500, and one is slow and lets every fourth request run past the attempt timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Path that always answers 200.
pub(super) const CRM_PATH: &str = "/hooks/crm";

/// Path that answers 500 to every third request.
pub(super) const ALERTS_PATH: &str = "/hooks/alerts";

/// Path that answers slowly, and past the demo's 3 s attempt timeout every fourth request.
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
        let counter = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(request, Arc::clone(&counter)));
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

async fn answer(
    request: Request<Incoming>,
    counter: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    // The body is read so the daemon sees a normal exchange; its content does not matter here.
    let _ = request.into_body().collect().await;
    let number = counter.fetch_add(1, Ordering::Relaxed) + 1;
    let (status, body) = match path.as_str() {
        CRM_PATH => (StatusCode::OK, r#"{"received":true}"#),
        ALERTS_PATH if number % 3 == 0 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"alert store unavailable"}"#,
        ),
        ALERTS_PATH => (StatusCode::OK, r#"{"received":true}"#),
        ANALYTICS_PATH => {
            let delay = if number % 4 == 0 {
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
