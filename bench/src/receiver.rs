//! The webhook receiver every scenario delivers to: a minimal HTTP/1.1 server on `127.0.0.1:0`
//! that responds 200 at once, or keeps each request open without a response. It counts requests,
//! checks signatures, and can record when each delivery arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use belter_common::{headers, signing};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Pause after a failed accept before the next one.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How the receiver responds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with an empty body as soon as the request body has arrived.
    Answer,
    /// No response for this long, then 200. The client gives up before that.
    Hold(Duration),
}

#[derive(Debug)]
struct Shared {
    behaviour: Behaviour,
    /// Signing secret per request path; requests to other paths are not verified.
    secrets: Mutex<HashMap<String, String>>,
    count: watch::Sender<u64>,
    bad_signatures: AtomicU64,
    first_at: Mutex<Option<Instant>>,
    last_at: Mutex<Option<Instant>>,
    /// Arrival time per `X-Belter-Delivery` value, while recording is on.
    arrivals: Mutex<Option<HashMap<String, Instant>>>,
}

/// A running receiver. Dropping it closes the listener and every open connection.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:0`.
    pub async fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour,
            secrets: Mutex::new(HashMap::new()),
            count: watch::Sender::new(0),
            bad_signatures: AtomicU64::new(0),
            first_at: Mutex::new(None),
            last_at: Mutex::new(None),
            arrivals: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// Returns the URL of `path` on this receiver, such as `http://127.0.0.1:40123/hook`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Verifies later requests to `path` against `secret`.
    pub fn set_secret(&self, path: &str, secret: &str) {
        lock(&self.shared.secrets).insert(path.to_owned(), secret.to_owned());
    }

    /// Starts recording the arrival time of each delivery id.
    pub fn record_arrivals(&self) {
        *lock(&self.shared.arrivals) = Some(HashMap::new());
    }

    /// Returns the arrival times recorded so far, by delivery id.
    pub fn arrivals(&self) -> HashMap<String, Instant> {
        lock(&self.shared.arrivals).clone().unwrap_or_default()
    }

    /// Requests received so far, whether or not they were answered.
    pub fn count(&self) -> u64 {
        *self.shared.count.borrow()
    }

    /// Requests whose signature did not match their path's secret.
    pub fn bad_signatures(&self) -> u64 {
        self.shared.bad_signatures.load(Ordering::Relaxed)
    }

    /// When the first request arrived since the start or the last [`reset_first`](Self::reset_first).
    pub fn first_at(&self) -> Option<Instant> {
        *lock(&self.shared.first_at)
    }

    /// Forgets the first arrival, so [`first_at`](Self::first_at) returns the next one.
    pub fn reset_first(&self) {
        *lock(&self.shared.first_at) = None;
    }

    /// When the latest request arrived.
    pub fn last_at(&self) -> Option<Instant> {
        *lock(&self.shared.last_at)
    }

    /// Waits until at least `count` requests arrived; returns whether they did within `timeout`.
    pub async fn wait_for_count(&self, count: u64, timeout: Duration) -> bool {
        let mut watcher = self.shared.count.subscribe();
        tokio::time::timeout(timeout, watcher.wait_for(|seen| *seen >= count))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until aborted; aborting drops `connections`, which aborts each one.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, for example: wait for connections to close.
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        // Deliveries are small requests, so Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            // A client that gives up on a held request closes the connection, which is expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let now = Instant::now();
    lock(&shared.first_at).get_or_insert(now);
    *lock(&shared.last_at) = Some(now);

    let secret = lock(&shared.secrets).get(parts.uri.path()).cloned();
    if let Some(secret) = secret {
        let signature = parts
            .headers
            .get(headers::SIGNATURE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !signing::verify(&secret, &body, signature) {
            shared.bad_signatures.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(arrivals) = lock(&shared.arrivals).as_mut() {
        let delivery = parts
            .headers
            .get(headers::DELIVERY)
            .and_then(|value| value.to_str().ok());
        if let Some(delivery) = delivery {
            arrivals.insert(delivery.to_owned(), now);
        }
    }
    shared.count.send_modify(|count| *count += 1);

    if let Behaviour::Hold(hold) = shared.behaviour {
        tokio::time::sleep(hold).await;
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .body(Empty::new())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_and_verifies() {
        let receiver = Receiver::start(Behaviour::Answer).await.unwrap();
        receiver.set_secret("/hook", "whsec_test");
        receiver.record_arrivals();
        let client = reqwest::Client::new();
        let body = br#"{"id":"evt_1"}"#;
        for signature in [signing::sign("whsec_test", body), "v1=00".to_owned()] {
            let response = client
                .post(receiver.url("/hook"))
                .header(headers::SIGNATURE, signature)
                .header(headers::DELIVERY, "del_1")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        assert!(receiver.wait_for_count(2, Duration::from_secs(5)).await);
        assert_eq!(receiver.bad_signatures(), 1);
        assert!(receiver.arrivals().contains_key("del_1"));
        assert!(receiver.first_at() <= receiver.last_at());
    }
}
