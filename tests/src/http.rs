//! A minimal HTTP/1.1 client for the ingest API, so tests can send any header or body, including
//! wrong ones that a typed client would not build. It connects only to loopback addresses.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Time one request may take, connection and body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with its body read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

impl HttpResponse {
    /// Parses the body as JSON.
    ///
    /// # Panics
    ///
    /// Panics when the body is not JSON, showing it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "response body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Returns the `error` field of a JSON error body, or the whole body as text when it has none.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|body| body["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

/// Sends a POST with exactly the given headers (plus `Host`) and body.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<HttpResponse> {
    tokio::time::timeout(REQUEST_TIMEOUT, send(Method::POST, url, headers, body))
        .await
        .with_context(|| format!("POST {url} timed out after {REQUEST_TIMEOUT:?}"))?
}

/// Sends a GET with exactly the given headers (plus `Host`).
pub async fn get(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
    tokio::time::timeout(REQUEST_TIMEOUT, send(Method::GET, url, headers, Vec::new()))
        .await
        .with_context(|| format!("GET {url} timed out after {REQUEST_TIMEOUT:?}"))?
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<HttpResponse> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    let authority = uri
        .authority()
        .with_context(|| format!("URL {url:?} has no host"))?
        .as_str()
        .to_owned();
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("URL {url:?} must name an IP address and port"))?;
    if !addr.ip().is_loopback() {
        bail!("rejected target {addr}: tests send only to loopback addresses");
    }

    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    // The connection task ends once the response is read.
    tokio::spawn(connection);

    let path = uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body)))?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("request to {url} failed"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the response body failed")?
        .to_bytes();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
