//! Delivery requests as receivers see them: body, headers, signature, and the attempt record.

use belter_common::headers::{self, user_agent};
use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::samples::sample_body;
use belter_common::timestamp::is_rfc3339;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::receiver::HOOK_PATH;
use belter_tests::wait::{wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonProcess, Receiver, Reply};
use hyper::Method;
use serde_json::Value;

#[tokio::test]
async fn samples_delivered_signed() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let mut accepted = Vec::new();
    for kind in EventType::ALL {
        accepted.push((kind, daemon.ingest_accepted(sample_body(kind)).await));
    }

    let requests = receiver
        .wait_for_requests(EventType::ALL.len(), WAIT_TIMEOUT)
        .await;

    assert_eq!(requests.len(), EventType::ALL.len());
    for (kind, answer) in accepted {
        let delivery_id = answer.deliveries[0].as_str();
        let request = requests
            .iter()
            .find(|request| request.header(headers::DELIVERY) == Some(delivery_id))
            .unwrap_or_else(|| panic!("no request for {kind} delivery {delivery_id}"));
        let sample: Value = serde_json::from_str(sample_body(kind)).expect("sample is JSON");
        let body = request.json();
        let mut keys: Vec<&str> = body
            .as_object()
            .expect("body is an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();

        assert_eq!(request.signature_valid, Some(true), "{kind}");
        assert_eq!(request.method, Method::POST, "{kind}");
        assert_eq!(request.path, HOOK_PATH, "{kind}");
        assert_eq!(
            request.header("content-type"),
            Some("application/json"),
            "{kind}"
        );
        assert_eq!(
            request.header(headers::EVENT),
            Some(kind.as_str()),
            "{kind}"
        );
        assert_eq!(
            request.header(headers::EVENT_ID),
            Some(answer.event_id.as_str()),
            "{kind}"
        );
        assert_eq!(request.header(headers::ATTEMPT), Some("1"), "{kind}");
        assert_eq!(
            request.header("user-agent"),
            Some(user_agent().as_str()),
            "{kind}"
        );
        assert_eq!(keys, ["created_at", "data", "event", "id"], "{kind}");
        assert_eq!(body["id"], answer.event_id.as_str(), "{kind}");
        assert_eq!(body["event"], kind.as_str(), "{kind}");
        assert!(
            body["created_at"].as_str().is_some_and(is_rfc3339),
            "{kind}: created_at {}",
            body["created_at"]
        );
        assert_eq!(body["data"], sample["data"], "{kind}");
    }
}

#[tokio::test]
async fn delivery_body_is_stored_body() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::EvaluationCompleted))
        .await;
    let id = &answer.deliveries[0];

    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let detail = wait_for_status(&client, id, DeliveryStatus::Succeeded).await;

    let body = String::from_utf8_lossy(&requests[0].body);
    assert_eq!(body, detail.payload.get());
    assert!(body.starts_with(r#"{"id":"evt_"#), "{body}");
}

#[tokio::test]
async fn attempt_is_recorded() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Body {
        status: 200,
        body: "thanks".to_owned(),
    })
    .await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];

    let detail = wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(detail.delivery.attempt_count, 1);
    assert_eq!(detail.delivery.last_status_code, Some(200));
    assert_eq!(detail.delivery.next_attempt_at, None);
    assert_eq!(detail.attempts.len(), 1);
    let attempt = &detail.attempts[0];
    assert_eq!(attempt.number, 1);
    assert_eq!(attempt.trigger, AttemptTrigger::First);
    assert!(attempt.succeeded);
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.failure, None);
    assert_eq!(attempt.response_body.as_deref(), Some("thanks"));
    assert_eq!(
        Some(attempt.signature.as_str()),
        requests[0].header(headers::SIGNATURE)
    );
    let sent_delivery_header = detail
        .request_headers
        .iter()
        .find(|header| header.name == headers::DELIVERY)
        .map(|header| header.value.as_str());
    assert_eq!(sent_delivery_header, Some(id.as_str()));
}

#[tokio::test]
async fn response_body_cut_at_4_kib() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Body {
        status: 200,
        body: "x".repeat(10_000),
    })
    .await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;

    let detail = wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Succeeded).await;

    let excerpt = detail.attempts[0].response_body.clone().unwrap_or_default();
    assert_eq!(excerpt.len(), 4_096);
}

#[tokio::test]
async fn concurrent_load_sends_each_once() {
    const POSTERS: usize = 16;
    const EVENTS_PER_POSTER: usize = 100;
    let daemon = std::sync::Arc::new(DaemonProcess::start().await);
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;

    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..POSTERS {
        let daemon = std::sync::Arc::clone(&daemon);
        posters.spawn(async move {
            for _ in 0..EVENTS_PER_POSTER {
                daemon
                    .ingest_accepted(sample_body(EventType::CsatReceived))
                    .await;
            }
        });
    }
    while let Some(joined) = posters.join_next().await {
        joined.expect("poster task");
    }
    let total = POSTERS * EVENTS_PER_POSTER;
    let requests = receiver.wait_for_requests(total, WAIT_TIMEOUT).await;
    receiver
        .expect_no_more_than(total, std::time::Duration::from_millis(500))
        .await;

    let mut seen = std::collections::BTreeMap::new();
    for request in &requests {
        let id = request
            .header(headers::DELIVERY)
            .unwrap_or_default()
            .to_owned();
        let attempt = request
            .header(headers::ATTEMPT)
            .unwrap_or_default()
            .to_owned();
        seen.entry(id).or_insert_with(Vec::new).push(attempt);
    }
    let repeated: Vec<_> = seen
        .iter()
        .filter(|(_, attempts)| attempts.len() > 1)
        .collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
    assert_eq!(seen.len(), total);
}
