//! One HTTP attempt of a delivery: the signed request, the deadline over the whole exchange, the
//! response excerpt, and a readable classification of every failure.

use std::borrow::Cow;
use std::error::Error as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use belter_common::http1_client::{self, ExchangeError, Http1Client};
use belter_common::records::{FailureKind, Header};
use belter_common::signing::SigningKey;
use belter_common::{headers, signing};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::address_policy::{AddressPolicy, PolicyResolver, BLOCKED};
use crate::retry::parse_retry_after;

/// Bytes of the response body kept with an attempt; the rest is not read.
pub(crate) const RESPONSE_EXCERPT_BYTES: usize = 4 * 1024;

/// Idle pooled connections of the general client kept per receiver host.
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

/// The HTTP clients shared by every attempt: belterd's own HTTP/1.1 client for `http://`
/// endpoints, and a general client for `https://` ones.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryClient {
    general: reqwest::Client,
    plain: Http1Client,
    user_agent: String,
}

/// Builds the clients: no redirects, no proxy, pooled connections, and name resolution that
/// drops the addresses the policy blocks.
pub(crate) fn build_client(
    connect_timeout: Duration,
    policy: AddressPolicy,
) -> Result<DeliveryClient, reqwest::Error> {
    let general = reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(PolicyResolver {
            policy: policy.clone(),
        }))
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
        .build()?;
    Ok(DeliveryClient {
        general,
        plain: Http1Client::new(
            connect_timeout,
            std::sync::Arc::new(move |ip| policy.permits(ip)),
        ),
        user_agent: headers::user_agent(),
    })
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
    let user_agent = headers::user_agent();
    let mut sent: Vec<Header> = fixed_pairs(&user_agent)
        .into_iter()
        .map(|(name, value)| Header {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .collect();
    for (name, value) in signed_pairs(request, signatures) {
        sent.push(Header {
            name: name.to_owned(),
            value: value.into_owned(),
        });
    }
    sent
}

/// Lists the headers that every attempt sends before the signed ones.
fn fixed_pairs(user_agent: &str) -> [(&'static str, &str); 3] {
    [
        ("content-type", "application/json"),
        ("accept", "*/*"),
        ("user-agent", user_agent),
    ]
}

/// Lists the headers that carry the attempt's ids and signatures, in the order they are sent.
/// belterd makes every value from ids, event types, numbers and hex or base64 signatures, so
/// none contains a control character. One that did would be left out.
fn signed_pairs<'a>(
    request: &'a AttemptRequest<'_>,
    signatures: &'a Signatures,
) -> Vec<(&'static str, Cow<'a, str>)> {
    let mut pairs = vec![
        (headers::EVENT, Cow::Borrowed(request.event_type)),
        (headers::EVENT_ID, Cow::Borrowed(request.event_id)),
        (headers::DELIVERY, Cow::Borrowed(request.delivery_id)),
        (headers::ATTEMPT, Cow::Owned(request.attempt.to_string())),
        (
            headers::SIGNATURE,
            Cow::Borrowed(signatures.belter.as_str()),
        ),
    ];
    if let Some((seconds, signature)) = &signatures.standard {
        pairs.push((headers::WEBHOOK_ID, Cow::Borrowed(request.delivery_id)));
        pairs.push((headers::WEBHOOK_TIMESTAMP, Cow::Owned(seconds.to_string())));
        pairs.push((
            headers::WEBHOOK_SIGNATURE,
            Cow::Borrowed(signature.as_str()),
        ));
    }
    pairs.retain(|(name, value)| {
        let valid = value
            .bytes()
            .all(|byte| byte == b'\t' || (b' '..0x7f).contains(&byte));
        if !valid {
            tracing::error!(
                delivery_id = request.delivery_id,
                header = name,
                "invalid header value, sending the attempt without this header"
            );
        }
        valid
    });
    pairs
}

/// Builds the header map of the general client, all but `user-agent` and `accept`, which the
/// client adds. Names are static, so building them parses nothing.
fn signed_header_map(pairs: &[(&'static str, Cow<'_, str>)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len() + 1);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in pairs {
        // `signed_pairs` keeps printable ASCII only, which every header value accepts.
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    map
}

/// A receiver's response, whichever client sent the request.
struct ReceivedResponse {
    status: u16,
    retry_after: Option<Duration>,
    excerpt: Vec<u8>,
    /// The kind and description of what cut the body short, if anything.
    broke_off: Option<(FailureKind, String)>,
}

/// Sends one attempt. Success is a 2xx status whose exchange, excerpt read included, ends within
/// `timeout`; everything else is a failure with its kind. When a connection closes before any
/// response and `resend_allowed` returns true at that moment, the request goes once more at
/// once, on a new connection.
pub(crate) async fn send(
    client: &DeliveryClient,
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
    // general client as text, which fails the attempt with the client's own error.
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
    let resent = AtomicBool::new(false);
    let pairs = signed_pairs(&request, &signatures);
    let outcome = match parsed {
        Some(url) if url.scheme() == "http" => {
            let exchange = send_plain(client, &url, &request, &pairs, resend_allowed, &resent);
            tokio::time::timeout(timeout, exchange).await
        }
        other => {
            let exchange = send_general(client, other, &request, &pairs, resend_allowed, &resent);
            tokio::time::timeout(timeout, exchange).await
        }
    };
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
        Ok(Err((kind, message))) => {
            result.resend_reset = kind == FailureKind::Reset && resent.load(Ordering::Relaxed);
            result.failure = Some(kind);
            result.error = Some(message);
        }
        Ok(Ok(received)) => {
            let success = (200..300).contains(&received.status);
            result.status_code = Some(received.status);
            result.response_body = Some(String::from_utf8_lossy(&received.excerpt).into_owned());
            match received.broke_off {
                Some((kind, message)) => {
                    result.status_code = None;
                    result.failure = Some(kind);
                    result.error = Some(format!(
                        "response with status {} broke off: {message}",
                        received.status
                    ));
                }
                None if success => result.succeeded = true,
                None => {
                    result.failure = Some(FailureKind::HttpStatus);
                    result.error = Some(status_error(received.status));
                    if received.status == 429 || received.status == 503 {
                        result.retry_after = received.retry_after;
                    }
                }
            }
        }
    }
    result
}

/// Sends an attempt to an `http://` endpoint through belterd's own client.
async fn send_plain(
    client: &DeliveryClient,
    url: &url::Url,
    request: &AttemptRequest<'_>,
    pairs: &[(&'static str, Cow<'_, str>)],
    resend_allowed: &(dyn Fn() -> bool + Sync),
    resent: &AtomicBool,
) -> Result<ReceivedResponse, (FailureKind, String)> {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(pairs.len() + 3);
    all.extend(fixed_pairs(&client.user_agent));
    all.extend(pairs.iter().map(|(name, value)| (*name, value.as_ref())));
    let plain_request = http1_client::Request {
        url,
        headers: &all,
        body: &request.body,
    };
    let response = match client
        .plain
        .post(&plain_request, false, RESPONSE_EXCERPT_BYTES)
        .await
    {
        // A pooled keep-alive connection that the receiver closed while idle fails before
        // any response arrives. The request is sent once more at once, on a new connection,
        // instead of counting as a failed attempt.
        // NOTE: attempts whose connection closes before the endpoint's resend pause starts
        // still resend, so a receiver that closes every connection can get up to
        // max_in_flight_per_endpoint first attempts twice.
        Err(error @ ExchangeError::BeforeResponse(_)) if resend_allowed() => {
            tracing::debug!(delivery_id = request.delivery_id, %error, "connection closed before a response, sending again");
            resent.store(true, Ordering::Relaxed);
            client
                .plain
                .post(&plain_request, true, RESPONSE_EXCERPT_BYTES)
                .await
        }
        other => other,
    }
    .map_err(|error| classify_plain(&error))?;
    Ok(ReceivedResponse {
        status: response.status,
        retry_after: response
            .retry_after
            .as_deref()
            .and_then(|value| parse_retry_after(value, SystemTime::now())),
        excerpt: response.excerpt,
        broke_off: response.body_error.as_ref().map(classify_plain),
    })
}

/// Sends an attempt through the general client, which `https://` endpoints need.
async fn send_general(
    client: &DeliveryClient,
    url: Option<url::Url>,
    request: &AttemptRequest<'_>,
    pairs: &[(&'static str, Cow<'_, str>)],
    resend_allowed: &(dyn Fn() -> bool + Sync),
    resent: &AtomicBool,
) -> Result<ReceivedResponse, (FailureKind, String)> {
    // Each send builds its request from its parts, so the first send, usually the only one,
    // copies neither the URL nor the headers.
    let build = |url: Option<url::Url>| {
        let builder = match url {
            Some(url) => client.general.post(url),
            None => client.general.post(request.url),
        };
        builder
            .headers(signed_header_map(pairs))
            .body(request.body.clone())
    };
    let exchange = async {
        let response = match build(url).send().await {
            // The same resend as in `send_plain`, for the general client's errors.
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
        Ok::<_, reqwest::Error>(ReceivedResponse {
            status: status.as_u16(),
            retry_after,
            excerpt: excerpt.bytes,
            broke_off: excerpt.error.as_ref().map(classify),
        })
    };
    exchange.await.map_err(|error| classify(&error))
}

/// Names the kind of a failure of belterd's own client and describes it.
fn classify_plain(error: &ExchangeError) -> (FailureKind, String) {
    let kind = match error {
        ExchangeError::Resolve { .. } | ExchangeError::NoAddress { .. } => FailureKind::Dns,
        ExchangeError::Blocked { .. } => FailureKind::BlockedByPolicy,
        ExchangeError::Connect { .. }
            if error.io_kind() == Some(std::io::ErrorKind::ConnectionRefused) =>
        {
            FailureKind::ConnectionRefused
        }
        ExchangeError::Connect { .. } => FailureKind::Connect,
        ExchangeError::ConnectTimeout { .. } => FailureKind::Timeout,
        ExchangeError::BeforeResponse(_) | ExchangeError::MidResponse(_) => FailureKind::Reset,
        ExchangeError::Invalid(_) => FailureKind::Other,
    };
    let detail = match error {
        ExchangeError::Blocked { host, addresses } => {
            AddressPolicy::blocked_message(host, addresses)
        }
        other => other.to_string(),
    };
    (kind, describe(kind, detail))
}

/// Prefixes a failure's detail with what the kind means to an operator.
fn describe(kind: FailureKind, detail: String) -> String {
    match kind {
        FailureKind::ConnectionRefused => format!("connection refused: {detail}"),
        FailureKind::Dns => format!("host name did not resolve: {detail}"),
        FailureKind::Tls => format!("TLS failed: {detail}"),
        FailureKind::Reset => format!("connection closed before a full response: {detail}"),
        FailureKind::Timeout => format!("timed out: {detail}"),
        _ => detail,
    }
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

fn status_error(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("unknown status");
    if (300..400).contains(&status) {
        format!(
            "HTTP {status} {reason}: redirects are not followed, point the endpoint at the final URL"
        )
    } else {
        format!("HTTP {status} {reason}")
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
    (kind, describe(kind, detail))
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
