//! The delivery address policy. Without an allow list no endpoint reaches loopback, private,
//! link-local or metadata addresses, by any spelling of the address or through a name that
//! resolves to one. `--allow-network 127.0.0.0/8` opens loopback and nothing else.
//!
//! The metadata and private addresses are only used while the policy blocks them. The daemon
//! either rejects such an endpoint when it is created, or records `blocked_by_policy` on the
//! attempt, which it does before connecting.

use std::time::Duration;

use belter_common::records::{DeliveryStatus, FailureKind};
use belter_common::samples::sample_body;
use belter_common::{EndpointId, EventType};
use belter_tests::raw::unix_request;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver};
use hyper::{Method, StatusCode};

/// Time a receiver is watched for requests that must not come.
const QUIET: Duration = Duration::from_millis(500);

/// Where a target ended up.
#[derive(Debug)]
enum Outcome {
    /// The control API rejected the endpoint with this message.
    Rejected(String),
    /// The endpoint was created.
    Created(EndpointId),
}

/// Creates an endpoint for every event type at `url`, or returns why the daemon rejected it.
async fn try_create(daemon: &DaemonProcess, url: &str) -> Outcome {
    let body = serde_json::json!({ "url": url }).to_string();
    let response = unix_request(
        &daemon.socket_path(),
        Method::POST,
        "/v1/endpoints",
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await
    .unwrap_or_else(|error| panic!("create endpoint {url}: {error:#}"));
    if response.status == StatusCode::CREATED {
        let id = response.json()["endpoint"]["id"]
            .as_str()
            .and_then(|id| EndpointId::parse(id).ok())
            .expect("endpoint id");
        return Outcome::Created(id);
    }
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{url}: {}",
        response.error_message()
    );
    Outcome::Rejected(response.error_message())
}

/// URLs that reach the receiver's port on loopback, spelled in different ways.
fn loopback_spellings(port: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://LocalHost:{port}/hook"),
        // 127.0.0.1 as one decimal number and in hexadecimal: URL parsers read both as IPv4.
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
    ]
}

/// URLs that must stay blocked unless their range is allowed, for a receiver's port.
fn internal_targets(port: u16) -> Vec<String> {
    vec![
        format!("http://[::1]:{port}/hook"),
        format!("http://0.0.0.0:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
    ]
}

/// An endpoint the daemon created, with its URL.
type Created = (String, EndpointId);

/// Creates endpoints for `urls`. Returns the created ones and the number that the control API
/// rejected because the address is internal.
async fn create_all(daemon: &DaemonProcess, urls: &[String]) -> (Vec<Created>, usize) {
    let mut created = Vec::new();
    let mut rejected = 0;
    for url in urls {
        match try_create(daemon, url).await {
            Outcome::Created(id) => created.push((url.clone(), id)),
            Outcome::Rejected(message) => {
                assert!(
                    message.contains("internal"),
                    "{url} rejected for another reason: {message}"
                );
                rejected += 1;
            }
        }
    }
    (created, rejected)
}

/// Posts one event and checks that the delivery to each of `created`, the only endpoints, failed
/// as `blocked_by_policy` on every attempt, without a status from a receiver.
async fn assert_deliveries_blocked(daemon: &DaemonProcess, created: &[Created]) {
    let client = daemon.client();
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    assert_eq!(answer.deliveries.len(), created.len());

    for id in &answer.deliveries {
        let detail = wait_for_status(&client, id, DeliveryStatus::Failed).await;
        let (url, _) = created
            .iter()
            .find(|(_, endpoint)| *endpoint == detail.delivery.endpoint_id)
            .expect("delivery of a created endpoint");
        assert!(!detail.attempts.is_empty(), "{url}");
        for attempt in &detail.attempts {
            let error = attempt.error.clone().unwrap_or_default();
            assert_eq!(
                attempt.failure,
                Some(FailureKind::BlockedByPolicy),
                "{url}: {error}"
            );
            assert!(error.contains("blocked by policy"), "{url}: {error}");
            assert_eq!(attempt.status_code, None, "{url}");
        }
    }
}

#[tokio::test]
async fn default_policy_blocks_internal() {
    let options = DaemonOptions {
        allow_networks: Vec::new(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let receiver = Receiver::start().await;
    let port = receiver.addr().port();
    let mut urls = loopback_spellings(port);
    urls.extend(internal_targets(port));
    // An IPv4-mapped IPv6 address is loopback too; with 127.0.0.0/8 allowed it would be open.
    urls.push(format!("http://[::ffff:127.0.0.1]:{port}/hook"));

    let (created, rejected) = create_all(&daemon, &urls).await;
    assert_deliveries_blocked(&daemon, &created).await;

    receiver.expect_no_more_than(0, QUIET).await;
    println!(
        "{rejected} of {} internal URLs rejected at creation, the rest blocked at delivery",
        urls.len()
    );
}

#[tokio::test]
async fn allowlist_opens_loopback_only() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let port = receiver.addr().port();
    let allowed = loopback_spellings(port);
    let mut endpoints = Vec::new();
    for url in &allowed {
        match try_create(&daemon, url).await {
            Outcome::Created(id) => endpoints.push(id),
            Outcome::Rejected(message) => panic!("{url} rejected: {message}"),
        }
    }
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    for id in &answer.deliveries {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    for id in endpoints {
        client.delete_endpoint(&id).await.expect("delete endpoint");
    }

    assert_eq!(answer.deliveries.len(), allowed.len());
    assert_eq!(receiver.count(), allowed.len());
    let (created, _) = create_all(&daemon, &internal_targets(port)).await;
    assert_deliveries_blocked(&daemon, &created).await;
    receiver.expect_no_more_than(allowed.len(), QUIET).await;
}

#[tokio::test]
async fn policy_checked_at_connect() {
    let mut daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let port = receiver.addr().port();
    let urls = [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ];
    let (created, rejected) = create_all(&daemon, &urls).await;
    assert_eq!(rejected, 0, "loopback rejected while it is allowed");

    daemon.stop().await;
    daemon.options_mut().allow_networks.clear();
    daemon.start_again().await;
    assert_deliveries_blocked(&daemon, &created).await;

    receiver.expect_no_more_than(0, QUIET).await;
}
