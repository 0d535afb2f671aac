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
use tokio::task::{JoinHandle, JoinSet};

/// Pause after a failed accept before the next one.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How often [`Receiver::wait_for_count`] reads the count. Waking a waiter on every request
/// instead would cost the receiver a thread wake-up per request, which the baseline never pays.
const COUNT_POLL_INTERVAL: Duration = Duration::from_millis(1);

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
    secrets: Mutex<HashMap<String, Arc<str>>>,
    count: AtomicU64,
    bad_signatures: AtomicU64,
    /// Instant that `first_at` and `last_at` count nanoseconds from.
    origin: Instant,
    /// Nanoseconds after `origin` plus one, so that 0 means no request yet.
    first_at: AtomicU64,
    /// Same encoding as `first_at`.
    last_at: AtomicU64,
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
            count: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            origin: Instant::now(),
            first_at: AtomicU64::new(0),
            last_at: AtomicU64::new(0),
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
        lock(&self.shared.secrets).insert(path.to_owned(), Arc::from(secret));
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
        self.shared.count.load(Ordering::Acquire)
    }

    /// Requests whose signature did not match their path's secret.
    pub fn bad_signatures(&self) -> u64 {
        self.shared.bad_signatures.load(Ordering::Relaxed)
    }

    /// When the first request arrived since the start or the last [`reset_first`](Self::reset_first).
    pub fn first_at(&self) -> Option<Instant> {
        self.shared
            .instant(self.shared.first_at.load(Ordering::Acquire))
    }

    /// Forgets the first arrival, so [`first_at`](Self::first_at) returns the next one.
    pub fn reset_first(&self) {
        self.shared.first_at.store(0, Ordering::Release);
    }

    /// When the latest request arrived.
    pub fn last_at(&self) -> Option<Instant> {
        self.shared
            .instant(self.shared.last_at.load(Ordering::Acquire))
    }

    /// Waits until at least `count` requests arrived; returns whether they did within `timeout`.
    pub async fn wait_for_count(&self, count: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.count() >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(COUNT_POLL_INTERVAL).await;
        }
    }
}

impl Shared {
    /// Encodes `at` for `first_at` and `last_at`.
    fn stamp(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    /// Decodes a `first_at` or `last_at` value.
    fn instant(&self, stamp: u64) -> Option<Instant> {
        let nanos = stamp.checked_sub(1)?;
        Some(self.origin + Duration::from_nanos(nanos))
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
    let stamp = shared.stamp(now);
    let _ = shared
        .first_at
        .compare_exchange(0, stamp, Ordering::AcqRel, Ordering::Acquire);
    shared.last_at.fetch_max(stamp, Ordering::AcqRel);

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
    shared.count.fetch_add(1, Ordering::AcqRel);

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
