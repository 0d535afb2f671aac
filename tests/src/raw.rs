//! Requests that the typed clients cannot send: any method, path and body on the control socket,
//! and hand-written HTTP/1.1 bytes on a loopback TCP port, such as a chunked body without
//! `Content-Length`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use belter_common::api::CreatedEndpoint;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::http::{HttpResponse, REQUEST_TIMEOUT};

/// Sends one request on the control socket with exactly these headers (plus `Host`) and body.
/// An error means that the connection failed or closed without a response.
pub async fn unix_request(
    socket: &Path,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<HttpResponse> {
    let exchange = async {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot connect to {}", socket.display()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake failed")?;
        // The connection task ends once the response is read.
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "belterd");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::from(body)))?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {path} on the control socket failed"))?;
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
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("request to {path} timed out after {REQUEST_TIMEOUT:?}"))?
}

/// Creates an endpoint for every event type at `url` on the control socket, from a JSON body
/// written by hand, so that it needs none of the optional fields of `CreateEndpoint`.
///
/// # Panics
///
/// Panics unless the daemon responds 201 Created with the endpoint and its secret.
pub async fn create_endpoint(socket: &Path, url: &str, paused: bool) -> CreatedEndpoint {
    let body = serde_json::json!({ "url": url, "paused": paused }).to_string();
    let response = unix_request(
        socket,
        Method::POST,
        "/v1/endpoints",
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await
    .unwrap_or_else(|error| panic!("create endpoint {url}: {error:#}"));
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "create endpoint {url}: {}",
        response.error_message()
    );
    serde_json::from_slice(&response.body).unwrap_or_else(|error| {
        panic!(
            "invalid endpoint response ({error}): {}",
            String::from_utf8_lossy(&response.body)
        )
    })
}

/// A response read from raw bytes: the status code and everything after the status line.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code of the status line.
    pub status: u16,
    /// Headers and body as text, decoded lossily.
    pub rest: String,
}

/// Writes `request` to a loopback address while reading the response, and returns the response
/// once the server closes the connection. The request should carry `Connection: close`.
///
/// The server may respond and close before it has read the whole request, as it does for a body
/// over the size limit. Writing then fails, which is ignored, and a reset that follows the
/// response still returns the response.
pub async fn tcp_exchange(addr: SocketAddr, request: Vec<u8>) -> anyhow::Result<RawResponse> {
    if !addr.ip().is_loopback() {
        bail!("rejected target {addr}: tests send only to loopback addresses");
    }
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            let _ = writer.flush().await;
            // The write half stays open until the response is read, so that the server does not
            // see a half-closed connection.
            writer
        });
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
        drop(writing.await);
        parse_response(&received)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("exchange with {addr} timed out after {REQUEST_TIMEOUT:?}"))?
}

fn parse_response(received: &[u8]) -> anyhow::Result<RawResponse> {
    let text = String::from_utf8_lossy(received);
    let (status_line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|tail| tail.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP/1.1 status line in {} bytes: {text:?}", text.len()))?;
    Ok(RawResponse {
        status,
        rest: rest.to_owned(),
    })
}

/// Encodes `body` as a chunked HTTP/1.1 body in chunks of `chunk_size` bytes, with the final
/// empty chunk.
pub fn chunked(body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(body.len() + body.len() / chunk_size.max(1) * 8 + 8);
    for chunk in body.chunks(chunk_size.max(1)) {
        encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_frames_body() {
        assert_eq!(
            chunked(b"abcde", 2),
            b"2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n"
        );
        assert_eq!(chunked(b"", 2), b"0\r\n\r\n");
    }

    #[test]
    fn status_line_parsed() {
        let response = parse_response(b"HTTP/1.1 413 Payload Too Large\r\nx: y\r\n\r\n{}").unwrap();
        assert_eq!(response.status, 413);
        assert!(response.rest.ends_with("{}"));
        assert!(parse_response(b"").is_err());
    }
}
