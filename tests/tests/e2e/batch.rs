//! The batch ingest route: many events in one request, all stored or none.

use std::collections::BTreeSet;
use std::time::Duration;

use belter_common::api::{DeliveryQuery, IngestBatchResponse};
use belter_common::headers;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::http::{post, HttpResponse};
use belter_tests::wait::WAIT_TIMEOUT;
use belter_tests::{DaemonProcess, Receiver, Reply};
use hyper::StatusCode;
use serde_json::{json, Value};

/// Parses the sample event of `kind` as a JSON value.
fn sample(kind: EventType) -> Value {
    serde_json::from_str(sample_body(kind)).expect("sample is JSON")
}

/// Posts `body` to the batch route with the token and, when given, an idempotency key.
async fn post_batch(daemon: &DaemonProcess, body: &Value, key: Option<&str>) -> HttpResponse {
    post_batch_bytes(daemon, body.to_string().into_bytes(), key).await
}

/// Posts `body` to the batch route without a key, checks for a 202, and returns its ids.
async fn post_accepted_batch(daemon: &DaemonProcess, body: &Value) -> IngestBatchResponse {
    let response = post_batch(daemon, body, None).await;
    assert_eq!(
        response.status,
        StatusCode::ACCEPTED,
        "{}",
        response.error_message()
    );
    serde_json::from_slice(&response.body).expect("typed ids")
}

/// Posts `body` unchanged to the batch route, with the headers of [`post_batch`].
async fn post_batch_bytes(
    daemon: &DaemonProcess,
    body: Vec<u8>,
    key: Option<&str>,
) -> HttpResponse {
    let authorization = format!("Bearer {}", daemon.token());
    let mut request_headers = vec![
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(key) = key {
        request_headers.push(("idempotency-key", key));
    }
    let url = format!("{}/batch", daemon.ingest_url());
    post(&url, &request_headers, body)
        .await
        .unwrap_or_else(|error| panic!("batch request failed: {error:#}"))
}

/// Counts the deliveries the daemon stores.
async fn delivery_count(daemon: &DaemonProcess) -> usize {
    let query = DeliveryQuery {
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    let page = daemon
        .client()
        .list_deliveries(&query)
        .await
        .expect("list deliveries");
    page.deliveries.len()
}

#[tokio::test]
async fn batch_events_are_all_delivered() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let kinds = [
        EventType::CsatReceived,
        EventType::FrustrationDetected,
        EventType::ConversationImported,
    ];
    let body = json!({ "events": kinds.iter().map(|kind| sample(*kind)).collect::<Vec<_>>() });

    let answer = post_accepted_batch(&daemon, &body).await;

    assert_eq!(answer.events.len(), kinds.len());
    let requests = receiver.wait_for_requests(kinds.len(), WAIT_TIMEOUT).await;
    let expected: BTreeSet<String> = answer
        .events
        .iter()
        .flat_map(|event| event.deliveries.iter().map(ToString::to_string))
        .collect();
    let received: BTreeSet<String> = requests
        .iter()
        .filter_map(|request| request.header(headers::DELIVERY).map(str::to_owned))
        .collect();
    assert_eq!(received, expected);
    for request in &requests {
        assert_eq!(request.signature_valid, Some(true));
    }
    let received_kinds: BTreeSet<&str> = requests
        .iter()
        .filter_map(|request| request.header(headers::EVENT))
        .collect();
    let sent_kinds: BTreeSet<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(received_kinds, sent_kinds);
}

/// Batches that overflow the endpoint's ready lane still deliver every event. The deliveries
/// that do not fit are written with their due entry, and the due index hands them over.
#[tokio::test]
async fn batches_past_lane_capacity_all_arrive() {
    const BATCHES: usize = 3;
    const PER_BATCH: usize = 1_000;
    let daemon = DaemonProcess::start().await;
    // Slow responses keep most of a batch's deliveries in the lane while the next batch arrives,
    // so the lane of 1,024 deliveries cannot take the second and third batches.
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(20),
        status: 200,
    })
    .await;
    subscribe(&daemon.client(), &receiver).await;
    let body = json!({ "events": vec![sample(EventType::CsatReceived); PER_BATCH] });

    let mut expected = BTreeSet::new();
    for _ in 0..BATCHES {
        let answer = post_accepted_batch(&daemon, &body).await;
        expected.extend(
            answer
                .events
                .iter()
                .flat_map(|event| event.deliveries.iter().map(ToString::to_string)),
        );
    }

    assert_eq!(expected.len(), BATCHES * PER_BATCH);
    let requests = receiver
        .wait_for_requests(expected.len(), WAIT_TIMEOUT)
        .await;
    let received: BTreeSet<String> = requests
        .iter()
        .filter_map(|request| request.header(headers::DELIVERY).map(str::to_owned))
        .collect();
    assert_eq!(received.len(), expected.len());
    assert_eq!(received, expected);
}

#[tokio::test]
async fn invalid_event_rejects_whole_batch() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let mut broken = sample(EventType::CsatReceived);
    broken["data"]
        .as_object_mut()
        .expect("data is an object")
        .remove("rating");
    let body = json!({ "events": [sample(EventType::CsatReceived), broken] });

    let response = post_batch(&daemon, &body, None).await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = response.error_message();
    assert!(
        message.starts_with("events[1] is invalid, so nothing of the batch was stored: "),
        "{message}"
    );
    assert!(message.contains("data.rating"), "{message}");
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn repeated_data_key_rejects_batch() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let repeated = r#"{"event":"csat.received","data":{"conversation_id":"c","rating":99,"rating":1,"via":"api"}}"#;
    // `json!` cannot hold a repeated key, so the body is written as text.
    let body = format!(
        r#"{{"events":[{},{},{repeated}]}}"#,
        sample_body(EventType::CsatReceived),
        sample_body(EventType::FrustrationDetected),
    );

    let response = post_batch_bytes(&daemon, body.into_bytes(), None).await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.error_message(),
        "events[2] is invalid, so nothing of the batch was stored: data.rating appears more than once: send each key once"
    );
    assert_eq!(delivery_count(&daemon).await, 0);
    receiver
        .expect_no_more_than(0, std::time::Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn batch_shape_errors_name_the_fix() {
    let daemon = DaemonProcess::start().await;
    let cases = [
        (json!({ "events": [] }), "events is empty"),
        (json!([sample(EventType::CsatReceived)]), "\"events\""),
        (json!({}), "events is required"),
        (json!({ "events": {} }), "invalid type: map"),
        (
            json!({ "events": [sample(EventType::CsatReceived)], "extra": 1 }),
            "unknown field `extra`",
        ),
        (
            json!({ "events": [sample(EventType::CsatReceived), {
                "event": "csat.received",
                "created_at": "2026-12-01T00:00:00Z",
                "data": sample(EventType::CsatReceived)["data"],
            }] }),
            "events[1] is invalid, so nothing of the batch was stored: unknown field \"created_at\"",
        ),
    ];
    for (body, expected) in cases {
        let response = post_batch(&daemon, &body, None).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = response.error_message();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let too_many = json!({ "events": vec![sample(EventType::CsatReceived); 1_001] });
    let response = post_batch(&daemon, &too_many, None).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.error_message().contains("at most 1000"),
        "{}",
        response.error_message()
    );
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn oversized_event_in_batch_is_rejected() {
    let daemon = DaemonProcess::start().await;
    let mut large = sample(EventType::CsatReceived);
    large["data"]["comment"] = Value::String("x".repeat(300 * 1024));
    let body = json!({ "events": [sample(EventType::CsatReceived), large] });

    let response = post_batch(&daemon, &body, None).await;

    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = response.error_message();
    assert!(message.starts_with("events[1] is "), "{message}");
    assert!(message.contains("262144"), "{message}");
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn repeated_batch_key_replays_answer() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let body = json!({ "events": [sample(EventType::CsatReceived), sample(EventType::SentimentAnalyzed)] });

    let first = post_batch(&daemon, &body, Some("batch-1")).await;
    let second = post_batch(&daemon, &body, Some("batch-1")).await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(first.body, second.body);
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|value| value.to_str().ok()),
        Some("true")
    );
    assert_eq!(delivery_count(&daemon).await, 2);
}
