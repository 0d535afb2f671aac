//! Failed attempts: retries on the schedule, giving up, and how each kind of failure is recorded.

use std::time::Duration;

use belter_common::api::CreateEndpoint;
use belter_common::headers;
use belter_common::records::{AttemptTrigger, DeliveryStatus, EventSelection, FailureKind};
use belter_common::samples::sample_body;
use belter_common::{EventType, Timestamp};
use belter_tests::endpoint::subscribe;
use belter_tests::receiver::refused_url;
use belter_tests::wait::{wait_for_attempts, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// The retry delays of [`belter_tests::daemon::TEST_RETRY_SCHEDULE`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const SECOND_RETRY_DELAY: Duration = Duration::from_millis(200);

/// Attempts a delivery gets under the test schedule: the first and two retries.
const TEST_MAX_ATTEMPTS: u32 = 3;

fn csat() -> &'static str {
    sample_body(EventType::CsatReceived)
}

#[tokio::test]
async fn retries_until_success() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    receiver.set_replies(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(200),
    ]);
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];

    let detail = wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    let requests = receiver.wait_for_requests(3, WAIT_TIMEOUT).await;

    assert_eq!(detail.delivery.attempt_count, 3);
    let triggers: Vec<AttemptTrigger> = detail.attempts.iter().map(|a| a.trigger).collect();
    assert_eq!(
        triggers,
        [
            AttemptTrigger::First,
            AttemptTrigger::Retry,
            AttemptTrigger::Retry
        ]
    );
    let codes: Vec<Option<u16>> = detail.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
    let numbers: Vec<Option<&str>> = requests
        .iter()
        .map(|r| r.header(headers::ATTEMPT))
        .collect();
    assert_eq!(numbers, [Some("1"), Some("2"), Some("3")]);
    for request in &requests {
        assert_eq!(request.header(headers::DELIVERY), Some(id.as_str()));
        assert_eq!(request.signature_valid, Some(true));
        assert_eq!(request.body, requests[0].body);
    }
    let first_gap = requests[1].received_at - requests[0].received_at;
    let second_gap = requests[2].received_at - requests[1].received_at;
    assert!(
        first_gap >= FIRST_RETRY_DELAY,
        "first retry after {first_gap:?}"
    );
    assert!(
        second_gap >= SECOND_RETRY_DELAY,
        "second retry after {second_gap:?}"
    );
}

#[tokio::test]
async fn retries_give_up() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Status(500)).await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];

    let detail = wait_for_status(&client, id, DeliveryStatus::Failed).await;

    assert_eq!(detail.delivery.attempt_count, TEST_MAX_ATTEMPTS);
    assert_eq!(detail.attempts.len(), 3);
    assert_eq!(detail.delivery.next_attempt_at, None);
    assert_eq!(detail.delivery.last_status_code, Some(500));
    assert_eq!(detail.delivery.last_failure, Some(FailureKind::HttpStatus));
    receiver
        .expect_no_more_than(3, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn retry_waits_after_attempt_end() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let slow_failure = Duration::from_millis(400);
    let receiver = Receiver::start().await;
    receiver.set_replies(vec![
        Reply::Delayed {
            delay: slow_failure,
            status: 500,
        },
        Reply::Status(200),
    ]);
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;

    wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Succeeded).await;
    let requests = receiver.wait_for_requests(2, WAIT_TIMEOUT).await;

    let gap = requests[1].received_at - requests[0].received_at;
    assert!(
        gap >= slow_failure + FIRST_RETRY_DELAY,
        "retry {gap:?} after the first request"
    );
}

#[tokio::test]
async fn redirects_not_followed() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let target = Receiver::start().await;
    let mut redirecting = Vec::new();
    for status in [301, 302, 307, 308] {
        let receiver = Receiver::with_reply(Reply::Redirect {
            status,
            location: target.url(),
        })
        .await;
        let created = subscribe(&client, &receiver).await;
        redirecting.push((status, created.endpoint.id, receiver));
    }
    let answer = daemon.ingest_accepted(csat()).await;

    for id in &answer.deliveries {
        let detail = wait_for_status(&client, id, DeliveryStatus::Failed).await;
        let (status, _, receiver) = redirecting
            .iter()
            .find(|(_, endpoint_id, _)| *endpoint_id == detail.delivery.endpoint_id)
            .expect("delivery to a redirecting endpoint");

        assert_eq!(detail.attempts[0].status_code, Some(*status));
        assert!(!detail.attempts[0].succeeded, "{status}");
        assert_eq!(
            detail.attempts[0].failure,
            Some(FailureKind::HttpStatus),
            "{status}"
        );
        assert_eq!(receiver.count(), 3, "{status}");
    }
    assert_eq!(target.count(), 0);
}

#[tokio::test]
async fn slow_receiver_times_out() {
    let options = DaemonOptions {
        retry_schedule: "10s".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_secs(4),
        status: 200,
    })
    .await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;

    let detail = wait_for_attempts(&client, &answer.deliveries[0], 1).await;

    let attempt = &detail.attempts[0];
    assert!(!attempt.succeeded);
    assert_eq!(attempt.failure, Some(FailureKind::Timeout));
    assert_eq!(attempt.status_code, None);
    assert!(
        attempt.latency_ms >= 1_000,
        "latency {} ms",
        attempt.latency_ms
    );
    assert!(
        attempt.latency_ms < 3_000,
        "latency {} ms",
        attempt.latency_ms
    );
    assert_eq!(detail.delivery.status, DeliveryStatus::Pending);
}

#[tokio::test]
async fn closed_connection_recorded() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Close).await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;

    let detail = wait_for_attempts(&client, &answer.deliveries[0], 1).await;

    assert_eq!(detail.attempts[0].failure, Some(FailureKind::Reset));
    assert_eq!(detail.attempts[0].status_code, None);
    assert!(receiver.count() >= 1);
}

#[tokio::test]
async fn closing_receiver_resent_once() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Close).await;
    let created = subscribe(&client, &receiver).await;
    let before = client.get_endpoint(&created.endpoint.id).await.unwrap();
    assert_eq!(before.resends_paused_until, None);
    let answer = daemon.ingest_accepted(csat()).await;

    let detail = wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Failed).await;

    assert_eq!(detail.attempts.len(), TEST_MAX_ATTEMPTS as usize);
    // The first attempt sends twice, because a reset may come from a stale pooled connection.
    // Its resend on a new connection is reset too, so the later attempts send once.
    receiver
        .expect_no_more_than(TEST_MAX_ATTEMPTS as usize + 1, Duration::from_millis(500))
        .await;
    let attempt_numbers: Vec<_> = receiver
        .requests()
        .iter()
        .map(|request| request.header(headers::ATTEMPT).unwrap_or("").to_owned())
        .collect();
    assert_eq!(attempt_numbers, ["1", "1", "2", "3"]);
    let after = client.get_endpoint(&created.endpoint.id).await.unwrap();
    let until = after
        .resends_paused_until
        .expect("the endpoint shows the resend pause");
    assert!(until > Timestamp::now(), "{until} is in the future");
}

#[tokio::test]
async fn refused_connection_recorded() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let request = CreateEndpoint {
        url: refused_url().await,
        event_types: EventSelection::All,
        description: "nothing listens here".to_owned(),
        paused: false,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };
    client
        .create_endpoint(&request)
        .await
        .expect("create endpoint");
    let answer = daemon.ingest_accepted(csat()).await;

    let detail = wait_for_attempts(&client, &answer.deliveries[0], 1).await;

    assert_eq!(
        detail.attempts[0].failure,
        Some(FailureKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let retry_after = Duration::from_secs(1);
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let mut receivers = Vec::new();
    for status in [429, 503] {
        let receiver = Receiver::start().await;
        receiver.set_replies(vec![
            Reply::RetryAfter {
                status,
                seconds: retry_after.as_secs(),
            },
            Reply::Status(200),
        ]);
        subscribe(&client, &receiver).await;
        receivers.push((status, receiver));
    }
    let answer = daemon.ingest_accepted(csat()).await;

    for id in &answer.deliveries {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    for (status, receiver) in &receivers {
        let requests = receiver.wait_for_requests(2, WAIT_TIMEOUT).await;
        let gap = requests[1].received_at - requests[0].received_at;
        assert!(
            gap >= retry_after,
            "{status}: retry {gap:?} after the first"
        );
    }
}

#[tokio::test]
async fn loopback_name_blocked_by_default() {
    let options = DaemonOptions {
        allow_networks: Vec::new(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    // A host name passes creation; the policy stops it once it resolves to loopback.
    let url = format!("http://localhost:{}/hook", receiver.addr().port());
    let request = CreateEndpoint {
        url,
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };
    client.create_endpoint(&request).await.expect("create");
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];

    let detail = wait_for_status(&client, id, DeliveryStatus::Failed).await;

    assert_eq!(
        detail.attempts.len(),
        1,
        "a blocked delivery is not retried"
    );
    assert_eq!(
        detail.attempts[0].failure,
        Some(FailureKind::BlockedByPolicy)
    );
    let error = detail.attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("blocked by policy"), "{error}");
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn loopback_address_rejected_at_creation() {
    let options = DaemonOptions {
        allow_networks: Vec::new(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let request = CreateEndpoint {
        url: "http://127.0.0.1:9/hook".to_owned(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };

    let error = daemon
        .client()
        .create_endpoint(&request)
        .await
        .expect_err("internal address accepted");

    assert_eq!(
        error.status(),
        Some(hyper::StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert!(error.to_string().contains("allow_networks"), "{error}");
}
