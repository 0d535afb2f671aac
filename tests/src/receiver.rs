//! A webhook receiver for tests: a real HTTP/1.1 server on `127.0.0.1:0` that records every
//! request, checks its signature, and responds as the test sets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, LOCATION, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::signature::signature_matches;

/// Path that [`Receiver::url`] points at.
pub const HOOK_PATH: &str = "/hook";

/// The response the receiver sends to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Respond with this status and an empty body.
    Status(u16),
    /// Respond with this status and body.
    Body {
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: String,
    },
    /// Respond with a redirect status and a `Location` header.
    Redirect {
        /// The HTTP status, such as 301.
        status: u16,
        /// The `Location` value.
        location: String,
    },
    /// Respond with this status and a `Retry-After` header in seconds, as with 429 or 503.
    RetryAfter {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` value, in seconds.
        seconds: u64,
    },
    /// Wait, then respond with this status.
    Delayed {
        /// Time to wait after the request body arrived.
        delay: Duration,
        /// The HTTP status.
        status: u16,
    },
    /// Read the request, then close the connection without sending a response.
    Close,
    /// Respond with `status` to a delivery's first attempt (`X-Belter-Attempt: 1`) and with 200
    /// to every later attempt, so that each delivery needs one retry.
    FailFirstAttempt {
        /// The HTTP status of first attempts.
        status: u16,
    },
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The request method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// Every request header.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// When the full body had arrived.
    pub received_at: Instant,
    /// Whether `X-Webhook-Signature` matched the body under the receiver's secret; `None` while
    /// no secret is set.
    pub signature_valid: Option<bool>,
}

impl ReceivedRequest {
    /// Returns the value of a header, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Parses the body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "request body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// State shared between the receiver handle and its connection tasks.
#[derive(Debug)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    secret: Mutex<Option<String>>,
    requests: Mutex<Vec<ReceivedRequest>>,
    count: watch::Sender<usize>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    /// Takes the next reply. The last reply stays in the queue and is sent for every later
    /// request.
    fn next_reply(&self) -> Reply {
        let mut replies = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
        if replies.len() > 1 {
            if let Some(reply) = replies.pop_front() {
                return reply;
            }
        }
        replies.front().cloned().unwrap_or(Reply::Status(200))
    }

    fn record(&self, request: ReceivedRequest) {
        let count = {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            requests.push(request);
            requests.len()
        };
        self.count.send_replace(count);
    }
}

/// A recording HTTP receiver on `127.0.0.1`. Dropping it stops the server and closes every
/// open connection.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// The error a handler returns to make hyper close the connection without a response.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the test receiver on purpose")
    }
}

impl std::error::Error for CloseConnection {}

impl Receiver {
    /// Starts a receiver that responds with 200 to every request.
    pub async fn start() -> Self {
        Self::with_reply(Reply::Status(200)).await
    }

    /// Starts a receiver that responds to every request with `reply`.
    pub async fn with_reply(reply: Reply) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the test receiver on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("read the test receiver's address");
        let shared = Arc::new(Shared {
            replies: Mutex::new(VecDeque::from([reply])),
            secret: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            server,
        }
    }

    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the URL to subscribe: `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// Responds to every later request with `reply`.
    pub fn set_reply(&self, reply: Reply) {
        self.set_replies(vec![reply]);
    }

    /// Responds to later requests with `replies` in order, and with the last one to every request
    /// after them. An empty list responds with 200.
    pub fn set_replies(&self, replies: Vec<Reply>) {
        let mut queue = self
            .shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *queue = VecDeque::from(replies);
    }

    /// Sets the endpoint secret that later requests are verified with.
    pub fn set_secret(&self, secret: &str) {
        let mut current = self
            .shared
            .secret
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *current = Some(secret.to_owned());
    }

    /// Returns every request so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the number of requests so far.
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Returns the number of requests open now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Returns the largest number of requests that were open at the same time, from the start of
    /// a request until its response was sent or its connection closed.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` requests arrived and returns all of them, oldest first.
    ///
    /// # Panics
    ///
    /// Panics when fewer than `count` arrive within `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let mut watcher = self.shared.count.subscribe();
        let waited = tokio::time::timeout(timeout, watcher.wait_for(|seen| *seen >= count)).await;
        if waited.is_err() {
            panic!(
                "receiver at {} got {} of {count} requests within {timeout:?}",
                self.addr,
                self.count()
            );
        }
        self.requests()
    }

    /// Waits for `window` and checks that no more than `count` requests arrived by its end.
    ///
    /// # Panics
    ///
    /// Panics as soon as request `count + 1` arrives within `window`.
    pub async fn expect_no_more_than(&self, count: usize, window: Duration) {
        let mut watcher = self.shared.count.subscribe();
        let waited = tokio::time::timeout(window, watcher.wait_for(|seen| *seen > count)).await;
        if waited.is_ok() {
            panic!(
                "receiver at {} got {} requests, expected at most {count}",
                self.addr,
                self.count()
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until the task is aborted; aborting it drops `connections`, which
/// aborts every connection task.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            // A connection error is expected when a reply closes the connection or the daemon
            // gives up on a slow answer, so it is ignored.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Counts one open request in [`Shared::in_flight`] until it is dropped, which also happens when
/// hyper drops the handler because the client closed the connection.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let open = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(open, Ordering::SeqCst);
        Self(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let _in_flight = InFlight::enter(&shared);
    let (parts, body) = request.into_parts();
    let Ok(collected) = body.collect().await else {
        return Err(CloseConnection);
    };
    let body = collected.to_bytes();
    let signature_valid = {
        let secret = shared.secret.lock().unwrap_or_else(PoisonError::into_inner);
        secret.as_deref().map(|secret| {
            let header = parts
                .headers
                .get("x-webhook-signature")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            signature_matches(secret, &body, header)
        })
    };
    let first_attempt = parts
        .headers
        .get(belter_common::headers::ATTEMPT)
        .is_some_and(|value| value.as_bytes() == b"1");
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    shared.record(ReceivedRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        received_at: Instant::now(),
        signature_valid,
    });

    match shared.next_reply() {
        Reply::Status(status) => Ok(response(status, String::new())),
        Reply::Body { status, body } => Ok(response(status, body)),
        Reply::Redirect { status, location } => {
            let mut reply = response(status, String::new());
            if let Ok(value) = location.parse() {
                reply.headers_mut().insert(LOCATION, value);
            }
            Ok(reply)
        }
        Reply::RetryAfter { status, seconds } => {
            let mut reply = response(status, String::new());
            reply.headers_mut().insert(RETRY_AFTER, seconds.into());
            Ok(reply)
        }
        Reply::Delayed { delay, status } => {
            tokio::time::sleep(delay).await;
            Ok(response(status, String::new()))
        }
        Reply::Close => Err(CloseConnection),
        Reply::FailFirstAttempt { status } if first_attempt => Ok(response(status, String::new())),
        Reply::FailFirstAttempt { .. } => Ok(response(200, String::new())),
    }
}

fn response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply
}

/// Returns a URL on `127.0.0.1` where nothing listens, for refused connections. The port was free a
/// moment ago; another process could take it in between, which is unlikely on a test machine.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind a probe listener on 127.0.0.1:0");
    let addr = listener.local_addr().expect("read the probe's address");
    drop(listener);
    format!("http://{addr}{HOOK_PATH}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::post;
    use crate::signature::expected_signature;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn replies_follow_sequence() {
        let receiver = Receiver::start().await;
        receiver.set_replies(vec![Reply::Status(500), Reply::Status(202)]);

        let mut statuses = Vec::new();
        for _ in 0..3 {
            let response = post(&receiver.url(), &[], b"{}".to_vec()).await.unwrap();
            statuses.push(response.status.as_u16());
        }

        assert_eq!(statuses, [500, 202, 202]);
    }

    #[tokio::test]
    async fn max_in_flight_counts_overlap() {
        let receiver = Receiver::with_reply(Reply::Delayed {
            delay: Duration::from_millis(200),
            status: 200,
        })
        .await;

        let url = receiver.url();
        let (first, second) =
            tokio::join!(post(&url, &[], Vec::new()), post(&url, &[], Vec::new()));

        assert!(first.is_ok());
        assert!(second.is_ok());
        assert_eq!(receiver.max_in_flight(), 2);
    }

    #[tokio::test]
    async fn first_attempt_fails() {
        let receiver = Receiver::with_reply(Reply::FailFirstAttempt { status: 503 }).await;

        let mut statuses = Vec::new();
        for attempt in ["1", "2", "1"] {
            let headers = [(belter_common::headers::ATTEMPT, attempt)];
            let response = post(&receiver.url(), &headers, Vec::new()).await.unwrap();
            statuses.push(response.status.as_u16());
        }

        assert_eq!(statuses, [503, 200, 503]);
    }

    #[tokio::test]
    async fn close_sends_no_response() {
        let receiver = Receiver::with_reply(Reply::Close).await;

        let result = post(&receiver.url(), &[], b"{}".to_vec()).await;

        assert!(result.is_err(), "got a response: {result:?}");
        assert_eq!(receiver.count(), 1);
    }

    #[tokio::test]
    async fn retry_after_is_sent() {
        let receiver = Receiver::with_reply(Reply::RetryAfter {
            status: 429,
            seconds: 7,
        })
        .await;

        let response = post(&receiver.url(), &[], Vec::new()).await.unwrap();

        assert_eq!(response.status.as_u16(), 429);
        assert_eq!(response.headers["retry-after"], "7");
    }

    #[tokio::test]
    async fn redirect_sends_location() {
        let receiver = Receiver::with_reply(Reply::Redirect {
            status: 301,
            location: "http://127.0.0.1:9/elsewhere".to_owned(),
        })
        .await;

        let response = post(&receiver.url(), &[], Vec::new()).await.unwrap();

        assert_eq!(response.status.as_u16(), 301);
        assert_eq!(response.headers["location"], "http://127.0.0.1:9/elsewhere");
    }

    #[tokio::test]
    async fn signature_checked_with_secret() {
        let receiver = Receiver::start().await;
        receiver.set_secret("whsec_test");
        let good = expected_signature("whsec_test", b"{\"a\":1}");
        let bad = expected_signature("whsec_other", b"{\"a\":1}");

        post(
            &receiver.url(),
            &[("x-webhook-signature", &good)],
            b"{\"a\":1}".to_vec(),
        )
        .await
        .unwrap();
        post(
            &receiver.url(),
            &[("x-webhook-signature", &bad)],
            b"{\"a\":1}".to_vec(),
        )
        .await
        .unwrap();
        let requests = receiver.wait_for_requests(2, WAIT).await;

        assert_eq!(requests[0].signature_valid, Some(true));
        assert_eq!(requests[1].signature_valid, Some(false));
        assert_eq!(requests[0].path, HOOK_PATH);
        assert_eq!(requests[0].body.as_ref(), b"{\"a\":1}");
    }

    #[tokio::test]
    #[should_panic(expected = "got 0 of 1 requests")]
    async fn wait_fails_without_requests() {
        let receiver = Receiver::start().await;

        receiver
            .wait_for_requests(1, Duration::from_millis(50))
            .await;
    }

    #[tokio::test]
    async fn refused_url_refuses() {
        let url = refused_url().await;

        let result = post(&url, &[], Vec::new()).await;

        assert!(result.is_err());
    }
}
