//! A typed async client for the control API, which `belterd` serves as HTTP/1.1 on a Unix socket.
//! The console and the `belter` CLI use it; scripts may use it or plain `curl --unix-socket`.

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::api::{
    CreateEndpoint, CreatedEndpoint, DeliveryPage, DeliveryQuery, ErrorBody, IngestResponse,
    IngestToken, ReplayRequest, ReplayResponse, RotateIngestToken, RotateSecret, StatsQuery,
    UpdateEndpoint,
};
use crate::ids::{DeliveryId, EndpointId, RuleId};
use crate::records::{
    DeliveryDetail, Endpoint, EndpointSecret, EventTypeInfo, Health, Stats, StreamEvent,
};
use crate::rules::{CreateRule, ThresholdRule};

/// Longest line the stream reader accepts, in bytes, so a broken peer cannot grow the buffer
/// without bound.
const MAX_STREAM_LINE_BYTES: usize = 4 * 1024 * 1024;

/// A failed control API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is missing or nobody listens on it.
    #[error("cannot connect to belterd at {path}: {source}. Is belterd running? Start it with `belterd`, or pass the socket path with --socket")]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
        /// The connect error.
        source: std::io::Error,
    },
    /// The daemon answered with an error status.
    #[error("belterd returned {status}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The `error` field of the response.
        message: String,
    },
    /// The connection failed after it was made.
    #[error("control connection to belterd failed: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("invalid control request: {0}")]
    Request(#[from] hyper::http::Error),
    /// A body could not be encoded or decoded.
    #[error("invalid JSON from belterd: {0}")]
    Json(#[from] serde_json::Error),
    /// A query string could not be encoded.
    #[error("invalid query: {0}")]
    Query(#[from] serde_urlencoded::ser::Error),
    /// A stream line was longer than the reader accepts.
    #[error("stream line longer than {MAX_STREAM_LINE_BYTES} bytes")]
    LineTooLong,
}

impl ClientError {
    /// The HTTP status, when the daemon answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the daemon could not be reached at all.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }
}

/// An ingest response to a request with an idempotency key.
#[derive(Debug, Clone)]
pub struct PostedEvent {
    /// The response, which is the first one when `repeated`.
    pub response: IngestResponse,
    /// Whether the key was used before, so nothing new was stored.
    pub repeated: bool,
}

/// A client of one daemon's control socket. Each call opens a new connection, so the client is
/// cheap to clone and survives daemon restarts.
#[derive(Debug, Clone)]
pub struct ControlClient {
    socket: PathBuf,
}

impl ControlClient {
    /// A client for the socket at `socket`. Nothing is connected until the first call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Fetches the daemon's health.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get_json("/healthz").await
    }

    /// Lists every event type with its schema.
    pub async fn event_types(&self) -> Result<Vec<EventTypeInfo>, ClientError> {
        self.get_json("/v1/event-types").await
    }

    /// Posts an event, as a local service would, without the ingest token.
    pub async fn post_event(
        &self,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<IngestResponse, ClientError> {
        let mut headers = Vec::new();
        if let Some(key) = idempotency_key {
            headers.push((crate::headers::IDEMPOTENCY_KEY, key.to_owned()));
        }
        let (status, bytes) = self
            .send(Method::POST, "/v1/events", Some(body), &headers)
            .await?;
        decode(status, &bytes)
    }

    /// Posts one event, as [`ControlClient::post_event`] does, and also returns whether the
    /// response repeats the first response to the same idempotency key.
    pub async fn post_event_keyed(
        &self,
        body: Vec<u8>,
        idempotency_key: &str,
    ) -> Result<PostedEvent, ClientError> {
        let headers = [(crate::headers::IDEMPOTENCY_KEY, idempotency_key.to_owned())];
        let response = self
            .request(Method::POST, "/v1/events", Some(body), &headers)
            .await?;
        let repeated = response
            .headers()
            .get(crate::headers::IDEMPOTENT_REPLAYED)
            .is_some_and(|value| value == "true");
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(PostedEvent {
            response: decode(status, &bytes)?,
            repeated,
        })
    }

    /// Lists every endpoint.
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.get_json("/v1/endpoints").await
    }

    /// Fetches one endpoint.
    pub async fn get_endpoint(&self, id: &EndpointId) -> Result<Endpoint, ClientError> {
        self.get_json(&format!("/v1/endpoints/{id}")).await
    }

    /// Creates an endpoint and returns it with its secret.
    pub async fn create_endpoint(
        &self,
        request: &CreateEndpoint,
    ) -> Result<CreatedEndpoint, ClientError> {
        self.send_json(Method::POST, "/v1/endpoints", request).await
    }

    /// Changes an endpoint's URL, event types or description.
    pub async fn update_endpoint(
        &self,
        id: &EndpointId,
        request: &UpdateEndpoint,
    ) -> Result<Endpoint, ClientError> {
        self.send_json(Method::PATCH, &format!("/v1/endpoints/{id}"), request)
            .await
    }

    /// Deletes an endpoint; its pending deliveries are cancelled and their history kept.
    pub async fn delete_endpoint(&self, id: &EndpointId) -> Result<Endpoint, ClientError> {
        let (status, bytes) = self
            .send(Method::DELETE, &format!("/v1/endpoints/{id}"), None, &[])
            .await?;
        decode(status, &bytes)
    }

    /// Pauses an endpoint: its deliveries queue until it is resumed.
    pub async fn pause_endpoint(&self, id: &EndpointId) -> Result<Endpoint, ClientError> {
        self.post_empty(&format!("/v1/endpoints/{id}/pause")).await
    }

    /// Resumes a paused endpoint.
    pub async fn resume_endpoint(&self, id: &EndpointId) -> Result<Endpoint, ClientError> {
        self.post_empty(&format!("/v1/endpoints/{id}/resume")).await
    }

    /// Fetches an endpoint's signing secret.
    pub async fn endpoint_secret(&self, id: &EndpointId) -> Result<EndpointSecret, ClientError> {
        self.get_json(&format!("/v1/endpoints/{id}/secret")).await
    }

    /// Replaces an endpoint's signing secret at once and returns the new one.
    pub async fn rotate_secret(&self, id: &EndpointId) -> Result<EndpointSecret, ClientError> {
        self.post_empty(&format!("/v1/endpoints/{id}/rotate-secret"))
            .await
    }

    /// Replaces an endpoint's signing secret; during `grace` (such as `24h`) deliveries carry a
    /// signature with the old secret too, so receivers can switch without rejecting any.
    pub async fn rotate_secret_with_grace(
        &self,
        id: &EndpointId,
        grace: &str,
    ) -> Result<EndpointSecret, ClientError> {
        let request = RotateSecret {
            grace: Some(grace.to_owned()),
        };
        self.send_json(
            Method::POST,
            &format!("/v1/endpoints/{id}/rotate-secret"),
            &request,
        )
        .await
    }

    /// Replaces the ingest token; during `grace` (such as `1h`) the old one is still accepted.
    pub async fn rotate_ingest_token(
        &self,
        grace: Option<&str>,
    ) -> Result<IngestToken, ClientError> {
        let request = RotateIngestToken {
            grace: grace.map(str::to_owned),
        };
        self.send_json(Method::POST, "/v1/ingest-token/rotate", &request)
            .await
    }

    /// Lists every threshold rule.
    pub async fn list_rules(&self) -> Result<Vec<ThresholdRule>, ClientError> {
        self.get_json("/v1/rules").await
    }

    /// Creates a threshold rule; it applies to the next accepted evaluation.
    pub async fn create_rule(&self, request: &CreateRule) -> Result<ThresholdRule, ClientError> {
        self.send_json(Method::POST, "/v1/rules", request).await
    }

    /// Deletes a threshold rule.
    pub async fn delete_rule(&self, id: &RuleId) -> Result<ThresholdRule, ClientError> {
        let (status, bytes) = self
            .send(Method::DELETE, &format!("/v1/rules/{id}"), None, &[])
            .await?;
        decode(status, &bytes)
    }

    /// Lists one page of deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<DeliveryPage, ClientError> {
        let query_string = serde_urlencoded::to_string(query)?;
        let path = if query_string.is_empty() {
            "/v1/deliveries".to_owned()
        } else {
            format!("/v1/deliveries?{query_string}")
        };
        self.get_json(&path).await
    }

    /// Fetches one delivery with its payload, request headers and attempts.
    pub async fn get_delivery(&self, id: &DeliveryId) -> Result<DeliveryDetail, ClientError> {
        self.get_json(&format!("/v1/deliveries/{id}")).await
    }

    /// Queues one delivery for a new attempt now.
    pub async fn replay(&self, id: &DeliveryId) -> Result<ReplayResponse, ClientError> {
        self.post_empty(&format!("/v1/deliveries/{id}/replay"))
            .await
    }

    /// Queues many deliveries, by id or by filter, or counts them with `dry_run`.
    pub async fn replay_many(
        &self,
        request: &ReplayRequest,
    ) -> Result<ReplayResponse, ClientError> {
        self.send_json(Method::POST, "/v1/replay", request).await
    }

    /// Fetches totals over a window such as `24h`.
    pub async fn stats(&self, window: Option<&str>) -> Result<Stats, ClientError> {
        let query = StatsQuery {
            window: window.map(str::to_owned),
        };
        let query_string = serde_urlencoded::to_string(&query)?;
        let path = if query_string.is_empty() {
            "/v1/stats".to_owned()
        } else {
            format!("/v1/stats?{query_string}")
        };
        self.get_json(&path).await
    }

    /// Opens the live stream of delivery changes and attempt results.
    pub async fn stream(&self) -> Result<EventStream, ClientError> {
        let response = self.request(Method::GET, "/v1/stream", None, &[]).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await?.to_bytes();
            return Err(api_error(status, &bytes));
        }
        Ok(EventStream {
            body: response.into_body(),
            buffer: BytesMut::new(),
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, bytes) = self.send(Method::GET, path, None, &[]).await?;
        decode(status, &bytes)
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, bytes) = self
            .send(Method::POST, path, Some(b"{}".to_vec()), &[])
            .await?;
        decode(status, &bytes)
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let encoded = serde_json::to_vec(body)?;
        let (status, bytes) = self.send(method, path, Some(encoded), &[]).await?;
        decode(status, &bytes)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.request(method, path, body, headers).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::NotRunning {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the response body is read or dropped.
        tokio::spawn(connection);

        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "belterd");
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok(sender.send_request(request).await?)
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    Ok(serde_json::from_slice(bytes)?)
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|body| body.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).trim().to_owned());
    ClientError::Api { status, message }
}

/// The live stream: one JSON line per delivery change or attempt result.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    buffer: BytesMut,
}

impl EventStream {
    /// Waits for the next stream event; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, ClientError>> {
        loop {
            if let Some(newline) = self.buffer.iter().position(|&byte| byte == b'\n') {
                let line = self.buffer.split_to(newline + 1);
                let trimmed = line.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                return Some(serde_json::from_slice(trimmed).map_err(ClientError::from));
            }
            if self.buffer.len() > MAX_STREAM_LINE_BYTES {
                return Some(Err(ClientError::LineTooLong));
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buffer.extend_from_slice(chunk);
                            let length = chunk.len();
                            data.advance(length);
                        }
                    }
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}
