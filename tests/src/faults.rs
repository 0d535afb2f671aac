//! Receivers that misbehave below HTTP: raw TCP servers on `127.0.0.1:0` that stall, trickle
//! bytes, send far more than a client reads, reset the connection, or close idle keep-alive
//! connections. [`Receiver`](crate::Receiver) covers receivers that respond with valid HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::receiver::HOOK_PATH;

/// Largest request head the servers read, in bytes; a longer head ends the connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Size of each write of [`Fault::HugeBody`], in bytes.
const BODY_CHUNK_BYTES: usize = 64 * 1024;

/// How a [`FaultServer`] treats each connection after it has read the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sends a 200 status line and headers that announce a 1,000-byte body, sends 100 bytes of
    /// it, then keeps the connection open without sending more.
    StalledBody,
    /// Sends a 200 response whose body is `bytes` long, as fast as the client reads it.
    HugeBody {
        /// Length of the body, in bytes.
        bytes: usize,
    },
    /// Sends a 200 status line, headers and part of the body, then resets the connection.
    ResetMidResponse,
    /// Sends nothing and keeps the connection open. Also stalls a TLS handshake, because the
    /// server never responds to the ClientHello.
    Silent,
    /// Sends a complete 200 response one byte per `interval`.
    TrickleHead {
        /// Time between two bytes.
        interval: Duration,
    },
    /// Responds 200 and keeps the connection open for the next request, but closes it once it has
    /// been idle for `idle`.
    IdleClose {
        /// Time without a request after which the connection is closed.
        idle: Duration,
    },
    /// Responds 200 to the first request on a connection and keeps it open. When the next request
    /// arrives on it, resets the connection without reading the request, as a server does that
    /// closed the idle connection while the request was on its way.
    ResetReused,
}

/// One request as a [`FaultServer`] read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line, such as `POST /hook HTTP/1.1`.
    pub request_line: String,
    /// Header names in lowercase, with their values.
    pub headers: Vec<(String, String)>,
    /// The body, of the length that `Content-Length` states.
    pub body: Vec<u8>,
    /// Number of the connection it came on, counting from 1 in accept order.
    pub connection: usize,
}

impl RawRequest {
    /// Returns the value of a header; `name` must be lowercase.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug)]
struct Shared {
    fault: Fault,
    requests: Mutex<Vec<RawRequest>>,
    connections: AtomicUsize,
    body_bytes_sent: AtomicUsize,
    idle_closes: watch::Sender<usize>,
    reused_resets: AtomicUsize,
}

/// A TCP server on `127.0.0.1` that treats every connection with one [`Fault`]. Dropping it
/// stops the server and closes every connection.
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FaultServer {
    /// Starts a server that treats every connection with `fault`.
    pub async fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fault server on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("read the fault server's address");
        let shared = Arc::new(Shared {
            fault,
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            body_bytes_sent: AtomicUsize::new(0),
            idle_closes: watch::Sender::new(0),
            reused_resets: AtomicUsize::new(0),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
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

    /// Returns `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// Returns every complete request head read so far, oldest first.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Returns the body bytes that [`Fault::HugeBody`] handed to the kernel, over all connections.
    pub fn body_bytes_sent(&self) -> usize {
        self.shared.body_bytes_sent.load(Ordering::SeqCst)
    }

    /// Returns the connections that [`Fault::ResetReused`] reset when a second request arrived.
    pub fn reused_resets(&self) -> usize {
        self.shared.reused_resets.load(Ordering::SeqCst)
    }

    /// Waits until [`Fault::IdleClose`] has closed at least `count` idle connections.
    ///
    /// # Panics
    ///
    /// Panics when that does not happen within `timeout`.
    pub async fn wait_for_idle_closes(&self, count: usize, timeout: Duration) {
        let mut watcher = self.shared.idle_closes.subscribe();
        let waited = tokio::time::timeout(timeout, watcher.wait_for(|seen| *seen >= count)).await;
        if waited.is_err() {
            panic!(
                "fault server at {} closed {} of {count} idle connections within {timeout:?}",
                self.addr,
                *self.shared.idle_closes.borrow()
            );
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until the task is aborted; aborting it drops `connections`, which aborts
/// every connection task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            break;
        };
        let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        connections.spawn(serve(stream, Arc::clone(&shared), number));
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection. I/O errors end it quietly, because the daemon under test closes
/// connections it has given up on.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>, connection: usize) {
    if shared.fault == Fault::Silent {
        drain(&mut stream).await;
        return;
    }
    let Ok(Some(request)) = read_request(&mut stream, connection).await else {
        return;
    };
    record(&shared, request);

    match shared.fault {
        Fault::Silent => {}
        Fault::StalledBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
            let partial = format!("{head}{}", "x".repeat(100));
            if stream.write_all(partial.as_bytes()).await.is_ok() {
                drain(&mut stream).await;
            }
        }
        Fault::HugeBody { bytes } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'y'; BODY_CHUNK_BYTES];
            let mut left = bytes;
            while left > 0 {
                let size = left.min(BODY_CHUNK_BYTES);
                if stream.write_all(&chunk[..size]).await.is_err() {
                    return;
                }
                shared.body_bytes_sent.fetch_add(size, Ordering::SeqCst);
                left -= size;
            }
            drain(&mut stream).await;
        }
        Fault::ResetMidResponse => {
            let partial = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial body";
            if stream.write_all(partial.as_bytes()).await.is_err() {
                return;
            }
            let _ = stream.flush().await;
            // With a zero linger time, closing sends RST instead of FIN.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Fault::TrickleHead { interval } => {
            let response = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            for byte in response {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
            drain(&mut stream).await;
        }
        Fault::ResetReused => {
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(ok).await.is_err() {
                return;
            }
            if stream.readable().await.is_ok() {
                shared.reused_resets.fetch_add(1, Ordering::SeqCst);
                // Closing with unread data and a zero linger time sends RST.
                let _ = stream.set_zero_linger();
                drop(stream);
            }
        }
        Fault::IdleClose { idle } => {
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(ok).await.is_err() {
                return;
            }
            loop {
                match tokio::time::timeout(idle, read_request(&mut stream, connection)).await {
                    Ok(Ok(Some(request))) => {
                        record(&shared, request);
                        if stream.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => return,
                    Err(_) => {
                        let _ = stream.shutdown().await;
                        drop(stream);
                        shared.idle_closes.send_modify(|closes| *closes += 1);
                        return;
                    }
                }
            }
        }
    }
}

fn record(shared: &Shared, request: RawRequest) {
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
}

/// Reads and discards everything until the peer closes the connection or an error occurs.
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body, or none. Returns `Ok(None)` when the
/// peer closes the connection before a complete head arrives or sends a head over
/// [`MAX_HEAD_BYTES`].
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    connection: usize,
) -> std::io::Result<Option<RawRequest>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };

    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);

    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Ok(Some(RawRequest {
        request_line,
        headers,
        body,
        connection,
    }))
}

/// Writes a minimal `200 OK` response with an empty body and `Connection: close`.
pub async fn write_ok_and_close<S: AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    async fn send_request(stream: &mut TcpStream) {
        stream
            .write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reset_cuts_response() {
        let server = FaultServer::start(Fault::ResetMidResponse).await;
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        send_request(&mut stream).await;

        let mut received = Vec::new();
        let outcome = tokio::time::timeout(WAIT, stream.read_to_end(&mut received)).await;

        let error = outcome.unwrap().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(server.requests()[0].body, b"{}");
    }

    #[tokio::test]
    async fn idle_connection_closed() {
        let server = FaultServer::start(Fault::IdleClose {
            idle: Duration::from_millis(100),
        })
        .await;
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        send_request(&mut stream).await;

        server.wait_for_idle_closes(1, WAIT).await;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();

        assert!(received.starts_with(b"HTTP/1.1 200 OK"));
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn huge_body_sent_in_full() {
        let server = FaultServer::start(Fault::HugeBody { bytes: 300_000 }).await;
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        send_request(&mut stream).await;

        let mut received = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_len = "HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n".len();
        while received.len() < head_len + 300_000 {
            let read = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(read > 0, "connection closed after {} bytes", received.len());
            received.extend_from_slice(&chunk[..read]);
        }

        assert_eq!(received.len(), head_len + 300_000);
        assert!(received.ends_with(b"yyyy"));
    }
}
