//! One HTTP attempt of a delivery: the signed request, the deadline over the whole exchange, the
//! response excerpt, and a readable classification of every failure.

use std::error::Error as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use belter_common::records::{FailureKind, Header};
use belter_common::signing::SigningKey;
use belter_common::{headers, signing};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::address_policy::{AddressPolicy, PolicyResolver, BLOCKED};
use crate::retry::parse_retry_after;

/// Bytes of the response body kept with an attempt; the rest is not read.
pub(crate) const RESPONSE_EXCERPT_BYTES: usize = 4 * 1024;

/// Idle pooled connections kept per receiver host.
const MAX_IDLE_PER_HOST: usize = 256;

/// The request of one attempt.
#[derive(Debug)]
pub(crate) struct AttemptRequest<'a> {
    pub(crate) url: &'a str,
    /// `url` parsed, when the caller has it, so an attempt does not parse it again.
    pub(crate) parsed_url: Option<&'a url::Url>,
    pub(crate) body: Bytes,
    /// Signing secrets: the current one, then earlier ones within their grace period.
    pub(crate) secrets: Vec<&'a str>,
    /// Prepared key of the current secret, when the caller has one. A key of a secret that is
    /// not in `secrets` is ignored.
    pub(crate) signing_key: Option<&'a SigningKey>,
    pub(crate) event_type: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) delivery_id: &'a str,
    pub(crate) attempt: u32,
    /// Whether to add the Standard Webhooks headers.
    pub(crate) standard_webhooks: bool,
}

/// The signature headers of one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Signatures {
    /// `X-Webhook-Signature`: one `v1=<hex>` per secret, space-separated.
    pub(crate) belter: String,
    /// `webhook-timestamp` (seconds) and `webhook-signature`, for Standard Webhooks endpoints.
    pub(crate) standard: Option<(u64, String)>,
}

impl Signatures {
    /// Signs `body` for an attempt at `timestamp_secs` with every secret.
    pub(crate) fn compute(request: &AttemptRequest<'_>, timestamp_secs: u64) -> Self {
        let standard = request.standard_webhooks.then(|| {
            let signatures: Vec<String> = request
                .secrets
                .iter()
                .filter_map(|secret| {
                    signing::standard_signature(
                        secret,
                        request.delivery_id,
                        timestamp_secs,
                        &request.body,
                    )
                })
                .collect();
            (timestamp_secs, signatures.join(" "))
        });
        Self {
            belter: sign_all(&request.secrets, request.signing_key, &request.body),
            standard,
        }
    }
}

/// The observed result of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptResult {
    pub(crate) latency_ms: u64,
    pub(crate) succeeded: bool,
    pub(crate) status_code: Option<u16>,
    pub(crate) failure: Option<FailureKind>,
    pub(crate) error: Option<String>,
    pub(crate) response_body: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) signatures: Signatures,
    /// Whether the request was sent a second time after a reset, and that send was reset too.
    /// Then the receiver closes new connections as well, not only a stale pooled one.
    pub(crate) resend_reset: bool,
}

/// Builds the HTTP client shared by every attempt: no redirects, no proxy, pooled connections,
/// and a resolver that drops addresses the policy blocks.
pub(crate) fn build_client(
    connect_timeout: Duration,
    policy: AddressPolicy,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(PolicyResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .retry(no_client_retry())
        .no_proxy()
        .user_agent(headers::user_agent())
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        // Shorter than the 5 s keep-alive of common servers such as Node's, so the pool rarely
        // keeps a connection that the receiver is about to close.
        .pool_idle_timeout(Duration::from_secs(4))
        .tcp_nodelay(true)
        .build()
}

/// Returns a retry policy that turns off the client's own retries, which belong to the delivery
/// schedule. With a limit of zero, the layer also skips copying each request before it is sent.
fn no_client_retry() -> reqwest::retry::Builder {
    reqwest::retry::never().max_retries_per_request(0)
}

/// Computes the signature header: one `v1=` signature per secret, space-separated. A secret
/// that `key` was prepared from is signed with it.
pub(crate) fn sign_all(secrets: &[&str], key: Option<&SigningKey>, body: &[u8]) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| match key.filter(|key| key.is_for(secret)) {
            Some(key) => key.sign(body),
            None => signing::sign(secret, body),
        })
        .collect();
    signatures.join(" ")
}

/// Lists the request headers of an attempt, as sent, signatures included.
pub(crate) fn request_headers(
    request: &AttemptRequest<'_>,
    signatures: &Signatures,
) -> Vec<Header> {
    let signed = signed_headers(request, signatures);
    let mut sent = vec![
        Header {
            name: "content-type".to_owned(),
            value: "application/json".to_owned(),
        },
        Header {
            name: "accept".to_owned(),
            value: "*/*".to_owned(),
        },
        Header {
            name: "user-agent".to_owned(),
            value: headers::user_agent(),
        },
    ];
    for (name, value) in signed.iter().filter(|(name, _)| **name != CONTENT_TYPE) {
        sent.push(Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        });
    }
    sent
}

/// Builds the headers that an attempt sets itself, all but `user-agent` and `accept`, which the
/// client adds. Names are static, so building them parses nothing.
fn signed_headers(request: &AttemptRequest<'_>, signatures: &Signatures) -> HeaderMap {
    let attempt = request.attempt.to_string();
    let mut pairs = vec![
        (headers::EVENT, request.event_type),
        (headers::EVENT_ID, request.event_id),
        (headers::DELIVERY, request.delivery_id),
        (headers::ATTEMPT, attempt.as_str()),
        (headers::SIGNATURE, signatures.belter.as_str()),
    ];
    let timestamp;
    if let Some((seconds, signature)) = &signatures.standard {
        timestamp = seconds.to_string();
        pairs.push((headers::WEBHOOK_ID, request.delivery_id));
        pairs.push((headers::WEBHOOK_TIMESTAMP, timestamp.as_str()));
        pairs.push((headers::WEBHOOK_SIGNATURE, signature.as_str()));
    }
    let mut map = HeaderMap::with_capacity(pairs.len() + 1);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in pairs {
        // belterd makes every value from ids, event types, numbers and hex or base64
        // signatures, so none is invalid. An invalid one would be left out.
        match HeaderValue::from_str(value) {
            Ok(value) => {
                map.insert(HeaderName::from_static(name), value);
            }
            Err(error) => {
                tracing::error!(delivery_id = request.delivery_id, header = name, %error, "invalid header value, sending the attempt without this header");
            }
        }
    }
    map
}

/// Sends one attempt. Success is a 2xx status whose exchange, excerpt read included, ends within
/// `timeout`; everything else is a failure with its kind. When a connection closes before any
/// response and `resend_allowed` returns true at that moment, the request goes once more at
/// once, on a new connection.
pub(crate) async fn send(
    client: &reqwest::Client,
    policy: &AddressPolicy,
    request: AttemptRequest<'_>,
    timeout: Duration,
    resend_allowed: &(dyn Fn() -> bool + Sync),
) -> AttemptResult {
    let timestamp_secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let signatures = Signatures::compute(&request, timestamp_secs);
    let started = Instant::now();
    // Parsed once for the policy check and both sends. A URL that does not parse goes to the
    // client as text, which fails the attempt with the client's own error.
    let parsed = match request.parsed_url {
        Some(url) => Some(url.clone()),
        None => url::Url::parse(request.url).ok(),
    };
    if let Some(message) = parsed
        .as_ref()
        .and_then(|url| literal_address_blocked(policy, url))
    {
        return AttemptResult {
            latency_ms: 0,
            succeeded: false,
            status_code: None,
            failure: Some(FailureKind::BlockedByPolicy),
            error: Some(message),
            response_body: None,
            retry_after: None,
            signatures,
            resend_reset: false,
        };
    }
    // Each send builds its request from its parts, so the first send, usually the only one,
    // copies neither the URL nor the headers.
    let build = |url: Option<url::Url>| {
        let builder = match url {
            Some(url) => client.post(url),
            None => client.post(request.url),
        };
        builder
            .headers(signed_headers(&request, &signatures))
            .body(request.body.clone())
    };
    let resent = AtomicBool::new(false);
    let exchange = async {
        let response = match build(parsed).send().await {
            // A pooled keep-alive connection that the receiver closed while idle fails before
            // any response arrives. The request is sent once more at once, on a new connection,
            // instead of counting as a failed attempt.
            // NOTE: attempts whose connection closes before the endpoint's resend pause starts
            // still resend, so a receiver that closes every connection can get up to
            // max_in_flight_per_endpoint first attempts twice.
            Err(error) if classify(&error).0 == FailureKind::Reset && resend_allowed() => {
                tracing::debug!(delivery_id = request.delivery_id, %error, "connection reset before a response, sending again");
                resent.store(true, Ordering::Relaxed);
                build(url::Url::parse(request.url).ok()).send().await?
            }
            other => other?,
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let excerpt = read_excerpt(response).await;
        Ok::<_, reqwest::Error>((status, retry_after, excerpt))
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut result = AttemptResult {
        latency_ms,
        succeeded: false,
        status_code: None,
        failure: None,
        error: None,
        response_body: None,
        retry_after: None,
        signatures,
        resend_reset: false,
    };
    match outcome {
        Err(_elapsed) => {
            result.failure = Some(FailureKind::Timeout);
            result.error = Some(format!(
                "timed out: no complete answer within {} ms",
                timeout.as_millis()
            ));
        }
        Ok(Err(error)) => {
            let (kind, message) = classify(&error);
            result.resend_reset = kind == FailureKind::Reset && resent.load(Ordering::Relaxed);
            result.failure = Some(kind);
            result.error = Some(message);
        }
        Ok(Ok((status, retry_after, excerpt))) => {
            result.status_code = Some(status.as_u16());
            result.response_body = Some(String::from_utf8_lossy(&excerpt.bytes).into_owned());
            match excerpt.error {
                Some(error) => {
                    let (kind, message) = classify(&error);
                    result.status_code = None;
                    result.failure = Some(kind);
                    result.error = Some(format!(
                        "response with status {} broke off: {message}",
                        status.as_u16()
                    ));
                }
                None if status.is_success() => result.succeeded = true,
                None => {
                    result.failure = Some(FailureKind::HttpStatus);
                    result.error = Some(status_error(status));
                    if status.as_u16() == 429 || status.as_u16() == 503 {
                        result.retry_after = retry_after;
                    }
                }
            }
        }
    }
    result
}

/// Checks a URL whose host is an IP address, which the client connects to without the
/// resolver, against the policy.
fn literal_address_blocked(policy: &AddressPolicy, url: &url::Url) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    if policy.permits(ip) {
        return None;
    }
    Some(AddressPolicy::blocked_message(&ip.to_string(), &[ip]))
}

fn status_error(status: reqwest::StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("unknown status");
    if status.is_redirection() {
        format!(
            "HTTP {} {reason}: redirects are not followed, point the endpoint at the final URL",
            status.as_u16()
        )
    } else {
        format!("HTTP {} {reason}", status.as_u16())
    }
}

/// The start of a response body, and the error that cut it short, if any.
struct Excerpt {
    bytes: Vec<u8>,
    error: Option<reqwest::Error>,
}

/// Reads up to [`RESPONSE_EXCERPT_BYTES`] of the body, then drops the response, which closes the
/// connection instead of reading a large body to its end.
async fn read_excerpt(mut response: reqwest::Response) -> Excerpt {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_EXCERPT_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(error) => {
                return Excerpt {
                    bytes,
                    error: Some(error),
                }
            }
        }
    }
    Excerpt { bytes, error: None }
}

/// Names the kind of a transport failure and describes it from the innermost cause.
fn classify(error: &reqwest::Error) -> (FailureKind, String) {
    let mut causes = Vec::new();
    let mut io_kind = None;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        causes.push(cause.to_string());
        source = cause.source();
    }
    let detail = causes.last().cloned().unwrap_or_else(|| error.to_string());
    let all = causes.join(": ").to_ascii_lowercase();

    let kind = if all.contains(BLOCKED) {
        FailureKind::BlockedByPolicy
    } else if error.is_timeout() {
        FailureKind::Timeout
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        FailureKind::ConnectionRefused
    } else if all.contains("dns error") || all.contains("failed to lookup address") {
        FailureKind::Dns
    } else if all.contains("certificate")
        || all.contains("tls")
        || all.contains("handshake")
        || all.contains("peer sent")
    {
        FailureKind::Tls
    } else if matches!(
        io_kind,
        Some(std::io::ErrorKind::ConnectionReset)
            | Some(std::io::ErrorKind::ConnectionAborted)
            | Some(std::io::ErrorKind::BrokenPipe)
            | Some(std::io::ErrorKind::UnexpectedEof)
    ) || all.contains("connection closed")
        || all.contains("incomplete message")
        || all.contains("reset")
    {
        FailureKind::Reset
    } else if error.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Other
    };
    let message = match kind {
        FailureKind::ConnectionRefused => format!("connection refused: {detail}"),
        FailureKind::Dns => format!("host name did not resolve: {detail}"),
        FailureKind::Tls => format!("TLS failed: {detail}"),
        FailureKind::Reset => format!("connection closed before a full response: {detail}"),
        FailureKind::Timeout => format!("timed out: {detail}"),
        _ => detail,
    };
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_ids_and_signature() {
        let request = AttemptRequest {
            url: "http://127.0.0.1:9/",
            parsed_url: None,
            body: Bytes::from_static(b"{}"),
            secrets: vec!["whsec_x"],
            signing_key: None,
            event_type: "csat.received",
            event_id: "evt_1",
            delivery_id: "del_1",
            attempt: 3,
            standard_webhooks: false,
        };
        let signatures = Signatures {
            belter: "v1=ab".to_owned(),
            standard: None,
        };
        let sent = request_headers(&request, &signatures);
        let value = |name: &str| {
            sent.iter()
                .find(|header| header.name == name)
                .map(|header| header.value.clone())
        };
        assert_eq!(value("x-belter-attempt").as_deref(), Some("3"));
        assert_eq!(value("x-belter-delivery").as_deref(), Some("del_1"));
        assert_eq!(value("x-webhook-signature").as_deref(), Some("v1=ab"));
        assert_eq!(value("content-type").as_deref(), Some("application/json"));
    }

    #[test]
    fn standard_headers_sign_each_secret() {
        let request = AttemptRequest {
            url: "http://127.0.0.1:9/",
            parsed_url: None,
            body: Bytes::from_static(b"{}"),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"],
            signing_key: None,
            event_type: "csat.received",
            event_id: "evt_1",
            delivery_id: "del_1",
            attempt: 1,
            standard_webhooks: true,
        };
        let signatures = Signatures::compute(&request, 1_614_265_330);
        let sent = request_headers(&request, &signatures);
        let value = |name: &str| {
            sent.iter()
                .find(|header| header.name == name)
                .map(|header| header.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(value("webhook-id"), "del_1");
        assert_eq!(value("webhook-timestamp"), "1614265330");
        assert_eq!(value("webhook-signature").split(' ').count(), 2);
        assert!(value("webhook-signature").starts_with("v1,"));
    }

    #[test]
    fn every_secret_signs() {
        let header = sign_all(&["whsec_new", "whsec_old"], None, b"{}");
        assert!(signing::verify("whsec_new", b"{}", &header));
        assert!(signing::verify("whsec_old", b"{}", &header));
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(
            sign_all(&["whsec_new"], None, b"{}"),
            signing::sign("whsec_new", b"{}")
        );
    }

    #[test]
    fn prepared_key_signs_its_secret_only() {
        let secrets = ["whsec_new", "whsec_old"];
        let plain = sign_all(&secrets, None, b"{}");
        let new_key = SigningKey::new("whsec_new");
        assert_eq!(sign_all(&secrets, Some(&new_key), b"{}"), plain);
        let old_key = SigningKey::new("whsec_old");
        assert_eq!(sign_all(&secrets, Some(&old_key), b"{}"), plain);
        // A key of a secret the endpoint no longer has is not used.
        let stale_key = SigningKey::new("whsec_stale");
        let header = sign_all(&secrets, Some(&stale_key), b"{}");
        assert_eq!(header, plain);
        assert!(!signing::verify("whsec_stale", b"{}", &header));
    }

    #[tokio::test]
    async fn refused_connection_is_classified() {
        // Bind and drop a listener so the port is very likely closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let policy = AddressPolicy::new(vec![crate::parse_network("127.0.0.0/8").unwrap()]);
        let client = build_client(Duration::from_secs(2), policy.clone()).unwrap();
        let url = format!("http://127.0.0.1:{port}/hook");
        let request = AttemptRequest {
            url: &url,
            parsed_url: None,
            body: Bytes::from_static(b"{}"),
            secrets: vec!["whsec_x"],
            signing_key: None,
            event_type: "csat.received",
            event_id: "evt_1",
            delivery_id: "del_1",
            attempt: 1,
            standard_webhooks: false,
        };
        let result = send(&client, &policy, request, Duration::from_secs(2), &|| true).await;
        assert!(!result.succeeded);
        assert_eq!(result.failure, Some(FailureKind::ConnectionRefused));
    }

    #[tokio::test]
    async fn internal_addresses_are_blocked() {
        let policy = AddressPolicy::default();
        let client = build_client(Duration::from_secs(2), policy.clone()).unwrap();
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://[::1]:9/",
        ] {
            let request = AttemptRequest {
                url,
                parsed_url: None,
                body: Bytes::from_static(b"{}"),
                secrets: vec!["whsec_x"],
                signing_key: None,
                event_type: "csat.received",
                event_id: "evt_1",
                delivery_id: "del_1",
                attempt: 1,
                standard_webhooks: false,
            };
            let result = send(&client, &policy, request, Duration::from_secs(2), &|| true).await;
            assert_eq!(result.failure, Some(FailureKind::BlockedByPolicy), "{url}");
            let error = result.error.unwrap_or_default();
            assert!(error.contains("blocked by policy"), "{url}: {error}");
        }
    }
}
