//! Hostile input on the ingest and control APIs: each request gets a 4xx with a short JSON error,
//! and afterwards the daemon is healthy, its log still lists, and a valid event is delivered.

use belter_common::api::DeliveryQuery;
use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::http::HttpResponse;
use belter_tests::raw::{chunked, create_endpoint, tcp_exchange, unix_request};
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// Depth of the deeply nested JSON cases.
const DEPTH: usize = 10_000;

/// Maximum length of an error message, in bytes: an error names the problem, it does not echo the
/// input back.
const MAX_ERROR_LEN: usize = 1_000;

/// Body limit of the size tests, in bytes.
const BODY_LIMIT: usize = 64 * 1024;

fn csat_sample() -> Value {
    serde_json::from_str(sample_body(EventType::CsatReceived)).expect("sample is JSON")
}

/// Returns the csat.received sample with `change` applied to it.
fn csat_with(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = csat_sample();
    change(&mut body);
    body.to_string().into_bytes()
}

fn deep_array() -> String {
    format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH))
}

fn deep_object() -> String {
    format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH))
}

/// Posts `body` to the ingest API with the token and a JSON content type.
async fn ingest_bytes(daemon: &DaemonProcess, body: Vec<u8>) -> HttpResponse {
    let authorization = format!("Bearer {}", daemon.token());
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
    ];
    daemon.ingest_with_headers(&headers, body).await
}

/// Checks that a response is a 4xx, or `expected` exactly when given, with a short JSON error.
fn assert_clear_rejection(name: &str, response: &HttpResponse, expected: Option<StatusCode>) {
    let status = response.status;
    match expected {
        Some(expected) => assert_eq!(status, expected, "{name}: {}", response.error_message()),
        None => assert!(
            status.is_client_error(),
            "{name}: got {status}: {}",
            response.error_message()
        ),
    }
    let body: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("{name}: error body is not JSON ({error})"));
    let message = body["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{name}: no error message in {body}");
    assert!(
        message.len() <= MAX_ERROR_LEN,
        "{name}: error message of {} bytes",
        message.len()
    );
}

/// Checks that the daemon responds to health requests and lists its log.
async fn assert_healthy(daemon: &DaemonProcess, after: &str) {
    let client = daemon.client();
    client
        .health()
        .await
        .unwrap_or_else(|error| panic!("health after {after}: {error}"));
    client
        .list_deliveries(&DeliveryQuery::default())
        .await
        .unwrap_or_else(|error| panic!("list deliveries after {after}: {error}"));
}

/// Checks that a valid event is still accepted and delivered.
async fn assert_still_delivers(daemon: &DaemonProcess) {
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    for id in &answer.deliveries {
        wait_for_status(&daemon.client(), id, DeliveryStatus::Succeeded).await;
    }
}

#[tokio::test]
async fn ingest_rejects_hostile_bodies() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    create_endpoint(&daemon.socket_path(), &receiver.url(), false).await;
    let deep_in_data = format!(
        r#"{{"event":"csat.received","data":{{"x":{}}}}}"#,
        deep_array()
    );
    let deep_object_in_data = format!(r#"{{"event":"csat.received","data":{}}}"#, deep_object());
    let bad = StatusCode::BAD_REQUEST;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    // (name, body, expected status; `None` accepts any 4xx)
    let cases: Vec<(&str, Vec<u8>, Option<StatusCode>)> = vec![
        ("empty body", Vec::new(), Some(bad)),
        (
            "truncated JSON",
            br#"{"event":"csat.rec"#.to_vec(),
            Some(bad),
        ),
        (
            "trailing garbage",
            br#"{"event":"x","data":{}} ]"#.to_vec(),
            Some(bad),
        ),
        (
            "invalid UTF-8 outside strings",
            b"\xff\xfe{}".to_vec(),
            Some(bad),
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"event\":\"csat.received\",\"data\":{\"conversation_id\":\"\xc3\x28\"}}".to_vec(),
            Some(bad),
        ),
        (
            "lone surrogate",
            br#"{"event":"csat.received","data":{"conversation_id":"\ud800","rating":4}}"#.to_vec(),
            Some(bad),
        ),
        (
            "number out of range",
            br#"{"event":"csat.received","data":{"conversation_id":"c","rating":1e400}}"#.to_vec(),
            Some(bad),
        ),
        ("array nested 10,000 deep", deep_array().into_bytes(), None),
        (
            "object nested 10,000 deep",
            deep_object().into_bytes(),
            None,
        ),
        ("array nested in data", deep_in_data.into_bytes(), Some(bad)),
        (
            "object nested in data",
            deep_object_in_data.into_bytes(),
            Some(bad),
        ),
        (
            "JSON string",
            br#""csat.received""#.to_vec(),
            Some(unprocessable),
        ),
        ("JSON null", b"null".to_vec(), Some(unprocessable)),
        (
            "unknown event type",
            csat_with(|body| body["event"] = json!("csat.exploded")),
            Some(unprocessable),
        ),
        (
            "event type with a NUL",
            csat_with(|body| body["event"] = json!("csat.received\u{0}")),
            Some(unprocessable),
        ),
        (
            "event type as a number",
            csat_with(|body| body["event"] = json!(7)),
            Some(unprocessable),
        ),
        (
            "data as an array",
            csat_with(|body| body["data"] = json!([1, 2])),
            Some(unprocessable),
        ),
        (
            "data as null",
            csat_with(|body| body["data"] = Value::Null),
            Some(unprocessable),
        ),
        (
            "rating as text",
            csat_with(|body| body["data"]["rating"] = json!("four")),
            Some(unprocessable),
        ),
        (
            "conversation id as an object",
            csat_with(|body| body["data"]["conversation_id"] = json!({"id": 1})),
            Some(unprocessable),
        ),
        (
            "repeated event key",
            br#"{"event":"csat.received","event":"csat.received","data":{}}"#.to_vec(),
            Some(unprocessable),
        ),
    ];

    for (name, body, expected) in &cases {
        let response = ingest_bytes(&daemon, body.clone()).await;
        assert_clear_rejection(name, &response, *expected);
        assert_healthy(&daemon, name).await;
    }

    assert_still_delivers(&daemon).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn ingest_keeps_large_valid_bodies() {
    let daemon = DaemonProcess::start().await;
    let long_comment = "é".repeat(100 * 1024);
    let many_ids: Vec<String> = (0..20_000).map(|n| n.to_string()).collect();
    let many_keys: serde_json::Map<String, Value> =
        (0..10_000).map(|n| (format!("k{n}"), json!(n))).collect();
    let cases = [
        (
            "200 KiB string",
            csat_with(|body| body["data"]["comment"] = json!(long_comment)),
        ),
        (
            "array of 20,000 items",
            csat_with(|body| body["data"]["related"] = json!(many_ids)),
        ),
        (
            "object of 10,000 keys",
            csat_with(|body| body["data"]["labels"] = Value::Object(many_keys)),
        ),
        (
            "NUL in a string",
            csat_with(|body| body["data"]["comment"] = json!("a\u{0}b")),
        ),
    ];
    let receiver = Receiver::start().await;
    create_endpoint(&daemon.socket_path(), &receiver.url(), false).await;

    for (name, body) in &cases {
        let response = ingest_bytes(&daemon, body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::ACCEPTED,
            "{name}: {}",
            response.error_message()
        );
        let answer = response.json();
        let id = answer["deliveries"][0].as_str().expect("a delivery id");
        let id = DeliveryId::parse(id).expect("a valid delivery id");
        let detail = wait_for_status(&daemon.client(), &id, DeliveryStatus::Succeeded).await;
        let sent: Value = serde_json::from_str(detail.payload.get()).expect("payload is JSON");
        let posted: Value = serde_json::from_slice(body).expect("body is JSON");
        assert_eq!(sent["data"], posted["data"], "{name}");
    }
    assert_eq!(receiver.count(), cases.len());
}

#[tokio::test]
async fn oversized_bodies_rejected() {
    let options = DaemonOptions {
        max_body_bytes: Some(BODY_LIMIT),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let token = daemon.token();
    let padding = "p".repeat(BODY_LIMIT * 2);
    let oversized = csat_with(|body| body["data"]["comment"] = json!(padding));
    let fitting = sample_body(EventType::CsatReceived).as_bytes().to_vec();
    let huge = vec![b' '; 4 * 1024 * 1024];
    let head = |framing: &str| {
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: belterd\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\nconnection: close\r\n{framing}\r\n"
        )
        .into_bytes()
    };
    let with_length = |body: &[u8]| {
        let mut request = head(&format!("content-length: {}\r\n", body.len()));
        request.extend_from_slice(body);
        request
    };
    let with_chunks = |body: &[u8]| {
        let mut request = head("transfer-encoding: chunked\r\n");
        request.extend_from_slice(&chunked(body, 8 * 1024));
        request
    };
    // (name, raw request, expected status)
    let cases = [
        (
            "over the limit with Content-Length",
            with_length(&oversized),
            413,
        ),
        ("over the limit, chunked", with_chunks(&oversized), 413),
        ("4 MiB of spaces, chunked", with_chunks(&huge), 413),
        ("within the limit, chunked", with_chunks(&fitting), 202),
    ];

    for (name, request, expected) in cases {
        let response = tcp_exchange(daemon.ingest_addr(), request)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        assert_eq!(response.status, expected, "{name}: {}", response.rest);
        assert_healthy(&daemon, name).await;
    }
}

#[tokio::test]
async fn control_rejects_bad_queries() {
    let daemon = DaemonProcess::start().await;
    let socket = daemon.socket_path();
    let long_id = format!("del_{}", "A".repeat(10_000));
    let unknown_delivery = "del_01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let unknown_endpoint = "ep_01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let bad = Some(StatusCode::BAD_REQUEST);
    let not_found = Some(StatusCode::NOT_FOUND);
    let unprocessable = Some(StatusCode::UNPROCESSABLE_ENTITY);
    // (method, path, body, expected status; `None` accepts any 4xx)
    let cases: Vec<(Method, String, &str, Option<StatusCode>)> = vec![
        (Method::GET, "/v1/deliveries/not-an-id".into(), "", bad),
        (Method::GET, format!("/v1/deliveries/{long_id}"), "", bad),
        (
            Method::GET,
            format!("/v1/deliveries/{unknown_delivery}"),
            "",
            not_found,
        ),
        (
            Method::GET,
            "/v1/deliveries/..%2F..%2Fetc%2Fpasswd".into(),
            "",
            bad,
        ),
        (Method::GET, "/v1/deliveries?cursor=garbage".into(), "", bad),
        (Method::GET, "/v1/deliveries?limit=0".into(), "", bad),
        (Method::GET, "/v1/deliveries?limit=-1".into(), "", bad),
        (Method::GET, "/v1/deliveries?limit=1001".into(), "", bad),
        (
            Method::GET,
            "/v1/deliveries?limit=99999999999999999999".into(),
            "",
            bad,
        ),
        (Method::GET, "/v1/deliveries?limit=ten".into(), "", bad),
        (Method::GET, "/v1/deliveries?status=bogus".into(), "", bad),
        (
            Method::GET,
            "/v1/deliveries?event=csat.exploded".into(),
            "",
            bad,
        ),
        (
            Method::GET,
            "/v1/deliveries?since=yesterday".into(),
            "",
            bad,
        ),
        (
            Method::GET,
            "/v1/deliveries?endpoint=not-an-id".into(),
            "",
            bad,
        ),
        (Method::GET, "/v1/stats?window=forever".into(), "", bad),
        (Method::GET, "/v1/stats?window=0s".into(), "", bad),
        (Method::GET, "/v1/endpoints/not-an-id".into(), "", bad),
        (
            Method::GET,
            format!("/v1/endpoints/{unknown_endpoint}"),
            "",
            not_found,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{unknown_endpoint}/pause"),
            "",
            not_found,
        ),
        (
            Method::POST,
            "/v1/deliveries/not-an-id/replay".into(),
            "",
            bad,
        ),
        (Method::POST, "/v1/replay".into(), "{not json", bad),
        (Method::POST, "/v1/replay".into(), "{}", None),
        (
            Method::POST,
            "/v1/replay".into(),
            r#"{"ids":["not-an-id"]}"#,
            None,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{unknown_endpoint}/rotate-secret"),
            r#"{"grace":"1h"}"#,
            not_found,
        ),
        (Method::GET, "/v1/no-such-route".into(), "", not_found),
        // serde reads a struct from an array of its fields in order; the API takes objects only.
        (
            Method::POST,
            "/v1/endpoints".into(),
            r#"["http://127.0.0.1:9/hook","*","from an array",true]"#,
            unprocessable,
        ),
        (
            Method::POST,
            "/v1/rules".into(),
            r#"["agent","agent_x","greeting",50]"#,
            unprocessable,
        ),
    ];

    for (method, path, body, expected) in &cases {
        let name = format!("{method} {}", path.chars().take(80).collect::<String>());
        let response = unix_request(
            &socket,
            method.clone(),
            path,
            &[("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await
        .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        assert_clear_rejection(&name, &response, *expected);
    }
    let client = daemon.client();
    let endpoints = client.list_endpoints().await.expect("list endpoints");
    assert!(endpoints.is_empty(), "created: {endpoints:?}");
    let rules = client.list_rules().await.expect("list rules");
    assert!(rules.is_empty(), "created: {rules:?}");
    assert_healthy(&daemon, "bad control requests").await;
}

#[tokio::test]
async fn endpoint_rejects_bad_urls() {
    let daemon = DaemonProcess::start().await;
    let socket = daemon.socket_path();
    let long_path = format!("https://hooks.invalid/{}", "a".repeat(3_000));
    // Hosts are under .invalid, so even a URL accepted by mistake could not reach anyone, and
    // every endpoint is created paused with no event posted.
    let urls = [
        "ftp://hooks.invalid/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://hooks.invalid:70/",
        "data:text/plain,hello",
        "http://user:pass@hooks.invalid/",
        "http://user@hooks.invalid/",
        "https://:pass@hooks.invalid/",
        "http://",
        "http:///hook",
        "http:/hooks.invalid/hook",
        "https:\\\\hooks.invalid\\hook",
        "http://hooks .invalid/",
        "http://[::1/",
        "http://[zz::1]/",
        "http://256.256.256.256/",
        "http://hooks.invalid:99999/",
        "http://hooks.invalid\u{0}/",
        "hooks.invalid/hook",
        "//hooks.invalid/hook",
        "",
        long_path.as_str(),
    ];

    for url in urls {
        let body = json!({ "url": url, "paused": true }).to_string();
        let response = unix_request(
            &socket,
            Method::POST,
            "/v1/endpoints",
            &[("content-type", "application/json")],
            body.into_bytes(),
        )
        .await
        .unwrap_or_else(|error| panic!("{url:?}: {error:#}"));
        let name: String = url.chars().take(60).collect();
        assert_clear_rejection(&name, &response, Some(StatusCode::UNPROCESSABLE_ENTITY));
    }

    let endpoints = daemon
        .client()
        .list_endpoints()
        .await
        .expect("list endpoints");
    assert!(endpoints.is_empty(), "created: {endpoints:?}");
    assert_healthy(&daemon, "bad endpoint URLs").await;
}

#[tokio::test]
async fn slow_headers_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let daemon = DaemonProcess::start().await;
    let mut slow = tokio::net::TcpStream::connect(daemon.ingest_addr())
        .await
        .expect("connect to ingest");
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nHost: belterd\r\n")
        .await
        .expect("send the first header lines");

    // belterd allows 10 s for the headers; the rest never comes.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut rest),
    )
    .await;
    let fresh = daemon.ingest(sample_body(EventType::CsatReceived)).await;

    assert!(closed.is_ok(), "the connection was still open after 20 s");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "closed after {:?}, before the header timeout",
        started.elapsed()
    );
    assert_eq!(fresh.status, StatusCode::ACCEPTED);
}
