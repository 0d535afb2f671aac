//! A small HTTP/1.1 client for `http://` URLs, which belterd delivers to. The task of an exchange
//! writes the whole request in one buffer and parses the response itself. Keep-alive connections
//! are pooled per host and port, with no task per connection, so the client does a fraction of a
//! general client's work per request. It has no TLS, so `https://` URLs need a general client.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

/// Idle connections kept per host and port.
const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle connection is kept. Shorter than the 5 s keep-alive of common servers such as
/// Node's, so the pool rarely hands out a connection that the receiver is about to close.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// How often idle connections past [`IDLE_TIMEOUT`] are closed when no request checks them.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Largest response head, status line and headers together, that is read.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Maximum number of response headers.
const MAX_HEADERS: usize = 100;
/// Maximum length of a chunk-size line or trailer line of a chunked body.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Maximum number of interim 1xx responses before the final one.
const MAX_INTERIM_RESPONSES: usize = 16;
/// Bytes requested from the socket per read.
const READ_BYTES: usize = 8 * 1024;

/// The failure of an exchange. Messages describe what happened, and the delivery code adds the
/// failure kind.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("{host}: every address of it is blocked ({})", list(addresses))]
    Blocked {
        host: String,
        addresses: Vec<IpAddr>,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connecting to {addr} took longer than {} ms", timeout.as_millis())]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    /// The connection failed or closed before any byte of a response arrived.
    #[error("{0}")]
    BeforeResponse(io::Error),
    /// The connection failed or closed after part of a response arrived.
    #[error("{0}")]
    MidResponse(io::Error),
    #[error("invalid HTTP response: {0}")]
    Invalid(String),
}

impl ExchangeError {
    /// Returns the I/O error kind underneath, if any.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Resolve { source, .. } | Self::Connect { source, .. } => Some(source.kind()),
            Self::BeforeResponse(error) | Self::MidResponse(error) => Some(error.kind()),
            _ => None,
        }
    }
}

/// A response: its status, the `Retry-After` value, and up to `excerpt_limit` bytes of its body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    pub excerpt: Vec<u8>,
    /// The error that cut the body short, if any.
    pub body_error: Option<ExchangeError>,
}

/// A request: the parsed `http://` URL, header pairs, and the body.
#[derive(Debug)]
pub struct Request<'a> {
    pub url: &'a url::Url,
    /// Header names and values, written as given after `host`; `content-length` is added.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// A pooled idle connection and when it was put back.
#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

type Pools = Mutex<HashMap<PoolKey, Vec<Idle>>>;

/// The host and port that a pool of idle connections leads to.
type PoolKey = (String, u16);

/// The client: the idle connections by `host:port`, the connect timeout and the address policy.
#[derive(Clone)]
pub struct Http1Client {
    pools: Arc<Pools>,
    connect_timeout: Duration,
    permits: AddressFilter,
}

impl std::fmt::Debug for Http1Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Http1Client")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// A check of whether the client may connect to an address.
pub type AddressFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

fn list(addresses: &[IpAddr]) -> String {
    let texts: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

impl Http1Client {
    /// Makes a client. Inside a tokio runtime it also starts the task that closes idle
    /// connections, which ends when the last clone of the client is dropped.
    pub fn new(connect_timeout: Duration, permits: AddressFilter) -> Self {
        let pools: Arc<Pools> = Arc::default();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_idle(Arc::downgrade(&pools)));
        }
        Self {
            pools,
            connect_timeout,
            permits,
        }
    }

    /// POSTs `request` on a pooled connection, or on a new one when `fresh` is set or none is
    /// idle. A complete exchange puts its connection back, unless the receiver asked to close it.
    pub async fn post(
        &self,
        request: &Request<'_>,
        fresh: bool,
        excerpt_limit: usize,
    ) -> Result<Response, ExchangeError> {
        let url = request.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let key = (host.to_owned(), port);
        let stream = match (!fresh).then(|| self.checkout(&key)).flatten() {
            Some(stream) => stream,
            None => self.connect(url, host, port).await?,
        };
        let mut connection = Connection::new(stream);
        let sent = connection
            .send(&request_bytes(request, host, url.port()))
            .await?;
        let (response, reusable) = connection.receive(excerpt_limit).await?;
        // A request cut short by an early response leaves the connection mid-request.
        if reusable && sent {
            self.checkin(key, connection.stream);
        }
        Ok(response)
    }

    /// Takes the newest idle connection to `key` that is still open and quiet.
    fn checkout(&self, key: &PoolKey) -> Option<TcpStream> {
        let mut pools = lock(&self.pools);
        let idle = pools.get_mut(key)?;
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < IDLE_TIMEOUT && is_quiet(&entry.stream) {
                return Some(entry.stream);
            }
        }
        None
    }

    fn checkin(&self, key: PoolKey, stream: TcpStream) {
        let mut pools = lock(&self.pools);
        let idle = pools.entry(key).or_default();
        if idle.len() >= MAX_IDLE_PER_HOST {
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            since: Instant::now(),
        });
    }

    /// Connects to the URL's address, or to the first of its host's permitted addresses that
    /// accepts the connection.
    async fn connect(
        &self,
        url: &url::Url,
        host: &str,
        port: u16,
    ) -> Result<TcpStream, ExchangeError> {
        let addrs = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => self.resolve(name, port).await?,
            None => {
                return Err(ExchangeError::NoAddress {
                    host: host.to_owned(),
                })
            }
        };
        let mut last_error = None;
        for addr in addrs {
            if !(self.permits)(addr.ip()) {
                last_error = Some(ExchangeError::Blocked {
                    host: host.to_owned(),
                    addresses: vec![addr.ip()],
                });
                continue;
            }
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Deliveries are small requests, so Nagle's delay would only add latency.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%addr, %error, "cannot turn off Nagle's algorithm");
                    }
                    return Ok(stream);
                }
                Ok(Err(source)) => last_error = Some(ExchangeError::Connect { addr, source }),
                Err(_elapsed) => {
                    last_error = Some(ExchangeError::ConnectTimeout {
                        addr,
                        timeout: self.connect_timeout,
                    });
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ExchangeError::NoAddress {
            host: host.to_owned(),
        }))
    }

    /// Resolves a host name to the addresses the policy permits.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, ExchangeError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|source| ExchangeError::Resolve {
                host: name.to_owned(),
                source,
            })?
            .collect();
        let permitted: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|addr| (self.permits)(addr.ip()))
            .collect();
        if permitted.is_empty() && !resolved.is_empty() {
            return Err(ExchangeError::Blocked {
                host: name.to_owned(),
                addresses: resolved.iter().map(SocketAddr::ip).collect(),
            });
        }
        Ok(permitted)
    }
}

fn lock(pools: &Pools) -> MutexGuard<'_, HashMap<PoolKey, Vec<Idle>>> {
    pools
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Closes idle connections past [`IDLE_TIMEOUT`] every [`SWEEP_INTERVAL`], until the pools are
/// gone.
async fn sweep_idle(pools: Weak<Pools>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(pools) = pools.upgrade() else {
            return;
        };
        let mut pools = lock(&pools);
        for idle in pools.values_mut() {
            idle.retain(|entry| entry.since.elapsed() < IDLE_TIMEOUT);
        }
        pools.retain(|_, idle| !idle.is_empty());
    }
}

/// Checks that an idle connection has nothing to read. A receiver that closed it, or sent bytes
/// that were not requested, makes it unusable.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut byte = [0_u8; 1];
    matches!(stream.try_read(&mut byte), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// Writes the whole request: request line, headers and body. The target is the URL's path and
/// query, without the fragment, and `host` carries the port when the URL names one.
fn request_bytes(request: &Request<'_>, host: &str, port: Option<u16>) -> Vec<u8> {
    let url = request.url;
    let headers_len: usize = request
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    let mut bytes = Vec::with_capacity(128 + url.as_str().len() + headers_len + request.body.len());
    bytes.extend_from_slice(b"POST ");
    bytes.extend_from_slice(url.path().as_bytes());
    if let Some(query) = url.query() {
        bytes.push(b'?');
        bytes.extend_from_slice(query.as_bytes());
    }
    bytes.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    bytes.extend_from_slice(host.as_bytes());
    if let Some(port) = port {
        bytes.push(b':');
        push_decimal(&mut bytes, u64::from(port));
    }
    bytes.extend_from_slice(b"\r\n");
    for (name, value) in request.headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"content-length: ");
    push_decimal(&mut bytes, request.body.len() as u64);
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(request.body);
    bytes
}

/// Appends `number` in decimal, without the formatting machinery that `write!` brings.
fn push_decimal(bytes: &mut Vec<u8>, mut number: u64) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    bytes.extend_from_slice(&digits[at..]);
}

fn head_too_long() -> ExchangeError {
    ExchangeError::Invalid(format!(
        "the response head is longer than {} KiB",
        MAX_HEAD_BYTES / 1024
    ))
}

/// Checks that a status ends the exchange: any but an interim 1xx, where 101 counts as final
/// because the connection no longer speaks HTTP after it.
fn is_final(status: u16) -> bool {
    !(100..200).contains(&status) || status == 101
}

/// The framing of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: 1xx, 204 and 304 responses.
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the receiver closes the connection.
    UntilClose,
}

/// The parts of a response head that the exchange uses.
#[derive(Debug)]
struct Head {
    status: u16,
    retry_after: Option<String>,
    framing: Framing,
    keep_alive: bool,
}

/// One connection and the bytes read from it that are not used yet.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    start: usize,
    /// Whether any byte of a response arrived.
    response_started: bool,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            start: 0,
            response_started: false,
        }
    }

    /// Writes the request, and returns whether all of it was written. A receiver may respond
    /// before it has read the whole request, such as with a 413 to a large body, and then stop
    /// reading or close. Once a final response head arrives or the receiver closes, the rest is
    /// not written and the response is read.
    async fn send(&mut self, request: &[u8]) -> Result<bool, ExchangeError> {
        // Most requests fit in the socket's buffer: one write, and no wait.
        let mut written = match self.stream.try_write(request) {
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return self.write_failed(error),
        };
        while written < request.len() {
            let ready = self
                .stream
                .ready(Interest::READABLE | Interest::WRITABLE)
                .await
                .map_err(ExchangeError::BeforeResponse)?;
            if ready.is_readable() {
                self.buffer.reserve(READ_BYTES);
                match self.stream.try_read_buf(&mut self.buffer) {
                    Ok(0) => return Ok(false),
                    Ok(_) => {
                        self.response_started = true;
                        if self.final_head_buffered() {
                            return Ok(false);
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return self.write_failed(error),
                }
            }
            if ready.is_writable() {
                match self.stream.try_write(&request[written..]) {
                    Ok(more) => written += more,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return self.write_failed(error),
                }
            }
        }
        Ok(true)
    }

    /// Ends a send whose write failed. A response that arrived before the failure is still read.
    fn write_failed(&mut self, error: io::Error) -> Result<bool, ExchangeError> {
        self.buffer.reserve(READ_BYTES);
        if let Ok(read @ 1..) = self.stream.try_read_buf(&mut self.buffer) {
            self.response_started = true;
            tracing::trace!(read, "response arrived before the request was written");
        }
        if self.response_started {
            Ok(false)
        } else {
            Err(ExchangeError::BeforeResponse(error))
        }
    }

    /// Returns whether the buffered bytes contain a final response head after any interim ones,
    /// are not an HTTP response, or are too long for a head. Each case means that the receiver
    /// will not read the rest of the request.
    fn final_head_buffered(&self) -> bool {
        let mut offset = self.start;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buffer[offset..]) {
                Ok(httparse::Status::Complete(length)) => {
                    let status = response.code.unwrap_or_default();
                    if is_final(status) {
                        return true;
                    }
                    offset += length;
                }
                Ok(httparse::Status::Partial) => {
                    return self.buffer.len() - offset > MAX_HEAD_BYTES;
                }
                Err(_) => return true,
            }
        }
    }

    /// Reads more bytes; `Ok(0)` means the receiver closed the connection.
    async fn fill(&mut self) -> Result<usize, ExchangeError> {
        self.compact();
        self.buffer.reserve(READ_BYTES);
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(read) => {
                self.response_started |= read > 0;
                Ok(read)
            }
            Err(error) if self.response_started => Err(ExchangeError::MidResponse(error)),
            Err(error) => Err(ExchangeError::BeforeResponse(error)),
        }
    }

    /// Drops the bytes already used from the front of the buffer, so that a response read in
    /// many parts, such as endless interim responses or trailers, keeps only its unused bytes.
    /// Each move copies at most a partial head or line, which the limits bound, and happens at
    /// most once per [`READ_BYTES`] used.
    fn compact(&mut self) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start >= READ_BYTES {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }

    /// Builds the error for a connection that closed early, mid-response or before any response
    /// byte.
    fn closed(&self, description: &str) -> ExchangeError {
        let error = io::Error::new(io::ErrorKind::UnexpectedEof, description.to_owned());
        if self.response_started {
            ExchangeError::MidResponse(error)
        } else {
            ExchangeError::BeforeResponse(error)
        }
    }

    /// Reads the response: its head, skipping interim 1xx responses, then the body up to
    /// `excerpt_limit` bytes. Also returns whether the connection can carry another request.
    async fn receive(&mut self, excerpt_limit: usize) -> Result<(Response, bool), ExchangeError> {
        let head = self.read_head().await?;
        let mut excerpt = Vec::new();
        let body = match head.framing {
            Framing::Empty => Ok(true),
            Framing::Length(length) => self.read_length(length, excerpt_limit, &mut excerpt).await,
            Framing::Chunked => self.read_chunked(excerpt_limit, &mut excerpt).await,
            Framing::UntilClose => self
                .read_until_close(excerpt_limit, &mut excerpt)
                .await
                .map(|()| false),
        };
        let (complete, body_error) = match body {
            Ok(complete) => (complete, None),
            Err(error) => (false, Some(error)),
        };
        // Bytes after the response were not requested, so the connection is not reused.
        let reusable = complete && head.keep_alive && self.start == self.buffer.len();
        let response = Response {
            status: head.status,
            retry_after: head.retry_after,
            excerpt,
            body_error,
        };
        Ok((response, reusable))
    }

    async fn read_head(&mut self) -> Result<Head, ExchangeError> {
        let mut interim = 0;
        loop {
            if let Some(head) = self.parse_head()? {
                if is_final(head.status) {
                    return Ok(head);
                }
                interim += 1;
                if interim > MAX_INTERIM_RESPONSES {
                    return Err(ExchangeError::Invalid(format!(
                        "more than {MAX_INTERIM_RESPONSES} interim 1xx responses"
                    )));
                }
                continue;
            }
            if self.buffer.len() - self.start > MAX_HEAD_BYTES {
                return Err(head_too_long());
            }
            if self.fill().await? == 0 {
                return Err(self.closed("the connection closed before a full response head"));
            }
        }
    }

    /// Parses a head from the buffered bytes and consumes it, or returns `None` when it is
    /// not complete yet.
    fn parse_head(&mut self) -> Result<Option<Head>, ExchangeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = response
            .parse(&self.buffer[self.start..])
            .map_err(|error| ExchangeError::Invalid(error.to_string()))?;
        let httparse::Status::Complete(length) = parsed else {
            return Ok(None);
        };
        // A head that arrived in one read may be complete past the limit.
        if length > MAX_HEAD_BYTES {
            return Err(head_too_long());
        }
        let status = response.code.unwrap_or_default();
        let http11 = response.version == Some(1);

        let mut retry_after = None;
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut transfer_encoding = false;
        let mut close = !http11;
        for header in response.headers.iter() {
            // Only the headers below are read, so the others skip the UTF-8 check.
            const READ: [&str; 4] = [
                "content-length",
                "transfer-encoding",
                "connection",
                "retry-after",
            ];
            if !READ
                .iter()
                .any(|name| header.name.eq_ignore_ascii_case(name))
            {
                continue;
            }
            let value = String::from_utf8_lossy(header.value);
            let value = value.trim();
            if header.name.eq_ignore_ascii_case("content-length") {
                // Digits only: `parse` would also take a leading `+`, which a proxy on the way
                // may read differently.
                let length = value
                    .bytes()
                    .all(|byte| byte.is_ascii_digit())
                    .then(|| value.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        ExchangeError::Invalid(format!("content-length {value:?} is not a number"))
                    })?;
                if content_length.is_some_and(|earlier| earlier != length) {
                    return Err(ExchangeError::Invalid(
                        "two different content-length headers".to_owned(),
                    ));
                }
                content_length = Some(length);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if header.name.eq_ignore_ascii_case("connection") {
                for option in value.split(',') {
                    let option = option.trim();
                    if option.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if option.eq_ignore_ascii_case("keep-alive") && !http11 {
                        close = false;
                    }
                }
            } else if header.name.eq_ignore_ascii_case("retry-after") {
                retry_after = Some(value.to_owned());
            }
        }

        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if transfer_encoding {
            Framing::UntilClose
        } else if let Some(length) = content_length {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        self.start += length;
        Ok(Some(Head {
            status,
            retry_after,
            framing,
            // A body framed both ways may be read differently by a proxy on the way, and a
            // switched protocol is not HTTP anymore: neither connection is reused.
            keep_alive: !close && status != 101 && !(transfer_encoding && content_length.is_some()),
        }))
    }

    /// Takes up to `limit` buffered bytes, reading when none are buffered.
    async fn take(&mut self, limit: usize) -> Result<&[u8], ExchangeError> {
        if self.start == self.buffer.len() && self.fill().await? == 0 {
            return Ok(&[]);
        }
        let end = self.start + limit.min(self.buffer.len() - self.start);
        let bytes = &self.buffer[self.start..end];
        self.start = end;
        Ok(bytes)
    }

    /// Reads a body of `length` bytes. Returns whether it was read to its end: a body longer
    /// than the excerpt is left unread, and its connection closed.
    async fn read_length(
        &mut self,
        length: u64,
        excerpt_limit: usize,
        excerpt: &mut Vec<u8>,
    ) -> Result<bool, ExchangeError> {
        let expected = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(excerpt_limit);
        let mut read = 0;
        while read < expected {
            let bytes = self.take(expected - read).await?;
            if bytes.is_empty() {
                return Err(self.closed(&format!(
                    "the connection closed after {read} of the body's {length} bytes"
                )));
            }
            read += bytes.len();
            excerpt.extend_from_slice(bytes);
        }
        Ok(length <= excerpt_limit as u64)
    }

    async fn read_until_close(
        &mut self,
        excerpt_limit: usize,
        excerpt: &mut Vec<u8>,
    ) -> Result<(), ExchangeError> {
        while excerpt.len() < excerpt_limit {
            let bytes = self.take(excerpt_limit - excerpt.len()).await?;
            if bytes.is_empty() {
                return Ok(());
            }
            excerpt.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Reads a chunked body, trailers included. Returns whether it was read to its end: a body
    /// longer than the excerpt is left unread, and its connection closed.
    async fn read_chunked(
        &mut self,
        excerpt_limit: usize,
        excerpt: &mut Vec<u8>,
    ) -> Result<bool, ExchangeError> {
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            // Hex digits only: `from_str_radix` would also take a leading `+`.
            let size = size_text
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit())
                .then(|| u64::from_str_radix(size_text, 16).ok())
                .flatten()
                .ok_or_else(|| {
                    ExchangeError::Invalid(format!(
                        "chunk size {size_text:?} is not hexadecimal or does not fit in 64 bits"
                    ))
                })?;
            if size == 0 {
                // Trailers, up to the empty line that ends the body, as long as a head at most.
                let mut trailer_bytes = 0;
                loop {
                    let line = self.read_line().await?;
                    if line.is_empty() {
                        return Ok(true);
                    }
                    trailer_bytes += line.len() + 2;
                    if trailer_bytes > MAX_HEAD_BYTES {
                        return Err(ExchangeError::Invalid(format!(
                            "the trailers are longer than {} KiB",
                            MAX_HEAD_BYTES / 1024
                        )));
                    }
                }
            }
            let room = excerpt_limit - excerpt.len();
            if size > room as u64 {
                self.read_length(room as u64, room, excerpt).await?;
                return Ok(false);
            }
            self.read_length(size, room, excerpt).await?;
            if !self.read_line().await?.is_empty() {
                return Err(ExchangeError::Invalid(
                    "a chunk is longer than its size".to_owned(),
                ));
            }
        }
    }

    /// Reads one CRLF-terminated line of a chunked body, without the line end.
    async fn read_line(&mut self) -> Result<String, ExchangeError> {
        loop {
            let buffered = &self.buffer[self.start..];
            let end = buffered.iter().position(|&byte| byte == b'\n');
            // The limit applies whether the line arrived in one read or in many.
            if end.unwrap_or(buffered.len()) > MAX_LINE_BYTES {
                return Err(ExchangeError::Invalid(format!(
                    "a line of the chunked body is longer than {} KiB",
                    MAX_LINE_BYTES / 1024
                )));
            }
            if let Some(end) = end {
                let line = String::from_utf8_lossy(&buffered[..end])
                    .trim_end_matches('\r')
                    .to_owned();
                self.start += end + 1;
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(self.closed("the connection closed inside a chunked body"));
            }
        }
    }
}

#[cfg(test)]
mod hostile;

#[cfg(test)]
mod tests {
    use super::hostile::read_request;
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const LIMIT: usize = 4096;

    /// Serves each accepted connection: reads a request and writes the next response, for each of
    /// `answers`, then closes its sending side. Counts connections.
    async fn serve(answers: Vec<&'static [u8]>) -> (url::Url, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answers = answers.clone();
                tokio::spawn(async move {
                    for answer in answers {
                        if read_request(&mut stream).await.is_none() {
                            return;
                        }
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    // Closing the sending side ends a body framed by the connection's end.
                    let _ = stream.shutdown().await;
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                });
            }
        });
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/hook?x=1#part")).unwrap();
        (url, connections)
    }

    #[test]
    fn decimals_match_display() {
        for number in [0, 7, 10, 99, 443, 8080, 65_535, u64::MAX] {
            let mut bytes = b"x".to_vec();
            push_decimal(&mut bytes, number);
            assert_eq!(bytes, format!("x{number}").into_bytes());
        }
    }

    fn client() -> Http1Client {
        Http1Client::new(
            Duration::from_secs(2),
            Arc::new(|ip: IpAddr| ip.is_loopback()),
        )
    }

    async fn post(client: &Http1Client, url: &url::Url) -> Result<Response, ExchangeError> {
        let request = Request {
            url,
            headers: &[("content-type", "application/json")],
            body: b"{}",
        };
        client.post(&request, false, LIMIT).await
    }

    #[tokio::test]
    async fn keep_alive_reuses_the_connection() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (url, connections) = serve(vec![ok, ok, ok]).await;
        let client = client();
        for _ in 0..3 {
            let response = post(&client, &url).await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(response.excerpt, b"ok");
            assert!(response.body_error.is_none());
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn chunked_body_after_interim_response() {
        let answer: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\nretry-after: 7\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\ntrailer: 1\r\n\r\n";
        let (url, connections) = serve(vec![answer, answer]).await;
        let client = client();
        for _ in 0..2 {
            let response = post(&client, &url).await.unwrap();
            assert_eq!(response.status, 202);
            assert_eq!(response.excerpt, b"abcde");
            assert_eq!(response.retry_after.as_deref(), Some("7"));
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn close_and_unframed_bodies_end_the_connection() {
        let close: &[u8] =
            b"HTTP/1.1 500 Oops\r\nconnection: close\r\ncontent-length: 4\r\n\r\nfail";
        let (url, connections) = serve(vec![close]).await;
        let client = client();
        assert_eq!(post(&client, &url).await.unwrap().status, 500);
        assert_eq!(post(&client, &url).await.unwrap().excerpt, b"fail");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);

        let old: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        let (url, connections) = serve(vec![old]).await;
        for _ in 0..2 {
            let response = post(&client, &url).await.unwrap();
            assert_eq!(response.excerpt, b"until close");
            assert!(response.body_error.is_none());
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn long_body_is_cut_at_the_excerpt() {
        let long: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n{}",
                "y".repeat(10_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let chunked: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2710\r\n{}\r\n0\r\n\r\n",
                "z".repeat(10_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let client = client();
        for (answer, byte) in [(long, b'y'), (chunked, b'z')] {
            let (url, connections) = serve(vec![answer, answer]).await;
            for _ in 0..2 {
                let response = post(&client, &url).await.unwrap();
                assert_eq!(response.excerpt.len(), LIMIT);
                assert!(response.excerpt.iter().all(|&seen| seen == byte));
                assert!(response.body_error.is_none());
            }
            // The rest of a cut body is not read, so its connection is not reused.
            assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn broken_responses_are_errors() {
        let client = client();
        // One more interim response than the client reads before it gives up.
        let interim_flood: &'static [u8] = Box::leak(
            format!(
                "{}HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                "HTTP/1.1 103 Early Hints\r\n\r\n".repeat(MAX_INTERIM_RESPONSES + 1)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let cases: [(&'static [u8], &str); 6] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
                "after 5 of the body's 10 bytes",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
                "not a number",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                "two different",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "not hexadecimal",
            ),
            (b"SMTP ready\r\n\r\n", "invalid HTTP response"),
            (interim_flood, "more than 16 interim 1xx responses"),
        ];
        for (answer, expected) in cases {
            let (url, _) = serve(vec![answer]).await;
            let error = match post(&client, &url).await {
                Ok(response) => response.body_error.map(|error| error.to_string()),
                Err(error) => Some(error.to_string()),
            };
            let error = error.unwrap_or_default();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[tokio::test]
    async fn silent_close_is_before_any_response() {
        let (url, _) = serve(vec![]).await;
        let error = post(&client(), &url).await.unwrap_err();
        assert!(
            matches!(error, ExchangeError::BeforeResponse(_)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn request_names_host_port_and_length() {
        let url = url::Url::parse("http://example.com:8080/a/b?c=d#frag").unwrap();
        let request = Request {
            url: &url,
            headers: &[("x-belter-event", "csat.received")],
            body: b"{\"a\":1}",
        };
        let sent = String::from_utf8(request_bytes(&request, "example.com", url.port())).unwrap();
        assert_eq!(
            sent,
            "POST /a/b?c=d HTTP/1.1\r\nhost: example.com:8080\r\nx-belter-event: csat.received\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
        let url = url::Url::parse("http://[::1]/").unwrap();
        let request = Request {
            url: &url,
            headers: &[],
            body: b"",
        };
        let sent = String::from_utf8(request_bytes(&request, "[::1]", url.port())).unwrap();
        assert!(
            sent.starts_with("POST / HTTP/1.1\r\nhost: [::1]\r\n"),
            "{sent}"
        );
    }

    #[tokio::test]
    async fn blocked_literal_address_is_not_dialled() {
        let url = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let client = Http1Client::new(Duration::from_secs(2), Arc::new(|_| false));
        let error = post(&client, &url).await.unwrap_err();
        assert!(matches!(error, ExchangeError::Blocked { .. }), "{error:?}");
    }
}
