//! Receivers that fail below and above HTTP: every failure gets its own kind and a readable
//! error, ends within the attempt timeout, and is retried on the schedule.

use std::time::Duration;

use belter_common::records::{AttemptTrigger, DeliveryDetail, DeliveryStatus, FailureKind};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::faults::{Fault, FaultServer};
use belter_tests::raw::create_endpoint;
use belter_tests::receiver::refused_url;
use belter_tests::wait::{poll_until, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// Retry delays of the default test schedule, `100ms,200ms`.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

/// The attempt timeout of the default test options.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Maximum time an attempt may take beyond the attempt timeout, for a loaded machine.
const LATENCY_SLACK: Duration = Duration::from_millis(1_500);

/// Maximum time a retry may start after its due time, for a loaded machine.
const RETRY_SLACK: Duration = Duration::from_millis(1_500);

/// Size of the response body of the huge-body receiver: 10 MiB.
const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Bytes of the response body an attempt keeps.
const EXCERPT_BYTES: usize = 4 * 1024;

fn csat() -> &'static str {
    sample_body(EventType::CsatReceived)
}

/// One failing receiver and what its attempts must record.
struct FailureCase {
    name: &'static str,
    url: String,
    kind: FailureKind,
    status_code: Option<u16>,
    /// Text the error of every attempt must contain, in lowercase.
    error_text: &'static str,
}

/// Checks that a delivery failed after the first attempt and one retry per schedule delay. Each
/// retry must start its delay after the attempt before it ended, give or take [`RETRY_SLACK`]
/// and the schedule's jitter of up to a tenth.
fn assert_retried_on_schedule(name: &str, detail: &DeliveryDetail) {
    let triggers: Vec<AttemptTrigger> = detail.attempts.iter().map(|a| a.trigger).collect();
    assert_eq!(
        triggers,
        [
            AttemptTrigger::First,
            AttemptTrigger::Retry,
            AttemptTrigger::Retry
        ],
        "{name}"
    );
    for (pair, delay) in detail.attempts.windows(2).zip(RETRY_DELAYS) {
        let ended = pair[0].started_at.as_millis() + pair[0].latency_ms;
        let gap = Duration::from_millis(pair[1].started_at.as_millis().saturating_sub(ended));
        // Times are whole milliseconds, so the gap may read up to 2 ms short.
        assert!(
            gap + Duration::from_millis(2) >= delay,
            "{name}: retry {gap:?} after the attempt before it, expected {delay:?}"
        );
        assert!(
            gap <= delay + delay / 10 + RETRY_SLACK,
            "{name}: retry {gap:?} after the attempt before it, expected {delay:?}"
        );
    }
}

#[tokio::test]
async fn failures_classified() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let server_error = Receiver::with_reply(Reply::Status(500)).await;
    let client_error = Receiver::with_reply(Reply::Status(404)).await;
    let redirect = Receiver::with_reply(Reply::Redirect {
        status: 302,
        location: "http://127.0.0.1:9/elsewhere".to_owned(),
    })
    .await;
    let late = Receiver::with_reply(Reply::Delayed {
        delay: ATTEMPT_TIMEOUT + Duration::from_millis(500),
        status: 200,
    })
    .await;
    let stalled_body = FaultServer::start(Fault::StalledBody).await;
    let silent = FaultServer::start(Fault::Silent).await;
    let trickle = FaultServer::start(Fault::TrickleHead {
        interval: Duration::from_secs(1),
    })
    .await;
    let reset = FaultServer::start(Fault::ResetMidResponse).await;
    let cases = [
        FailureCase {
            name: "5xx",
            url: server_error.url(),
            kind: FailureKind::HttpStatus,
            status_code: Some(500),
            error_text: "http 500 internal server error",
        },
        FailureCase {
            name: "4xx",
            url: client_error.url(),
            kind: FailureKind::HttpStatus,
            status_code: Some(404),
            error_text: "http 404 not found",
        },
        FailureCase {
            name: "3xx",
            url: redirect.url(),
            kind: FailureKind::HttpStatus,
            status_code: Some(302),
            error_text: "redirects are not followed",
        },
        FailureCase {
            name: "2xx after the timeout",
            url: late.url(),
            kind: FailureKind::Timeout,
            status_code: None,
            error_text: "no complete answer within 1000 ms",
        },
        FailureCase {
            name: "body that stalls",
            url: stalled_body.url(),
            kind: FailureKind::Timeout,
            status_code: None,
            error_text: "no complete answer within 1000 ms",
        },
        FailureCase {
            name: "no answer",
            url: silent.url(),
            kind: FailureKind::Timeout,
            status_code: None,
            error_text: "no complete answer within 1000 ms",
        },
        FailureCase {
            name: "head a byte a second",
            url: trickle.url(),
            kind: FailureKind::Timeout,
            status_code: None,
            error_text: "no complete answer within 1000 ms",
        },
        FailureCase {
            name: "reset mid-response",
            url: reset.url(),
            kind: FailureKind::Reset,
            status_code: None,
            error_text: "connection closed before a full response",
        },
        FailureCase {
            name: "connection refused",
            url: refused_url().await,
            kind: FailureKind::ConnectionRefused,
            status_code: None,
            error_text: "connection refused",
        },
    ];
    let mut endpoints = Vec::new();
    for case in &cases {
        let created = create_endpoint(&daemon.socket_path(), &case.url, false).await;
        endpoints.push(created.endpoint.id);
    }

    let answer = daemon.ingest_accepted(csat()).await;
    let mut details = Vec::new();
    for id in &answer.deliveries {
        details.push(wait_for_status(&client, id, DeliveryStatus::Failed).await);
    }

    assert_eq!(details.len(), cases.len());
    for (case, endpoint) in cases.iter().zip(&endpoints) {
        let detail = details
            .iter()
            .find(|detail| detail.delivery.endpoint_id == *endpoint)
            .unwrap_or_else(|| panic!("{}: no delivery", case.name));
        assert_eq!(
            detail.delivery.last_failure,
            Some(case.kind),
            "{}",
            case.name
        );
        for attempt in &detail.attempts {
            let error = attempt.error.clone().unwrap_or_default();
            assert!(!attempt.succeeded, "{}", case.name);
            assert_eq!(attempt.failure, Some(case.kind), "{}: {error}", case.name);
            assert_eq!(attempt.status_code, case.status_code, "{}", case.name);
            assert!(
                error.to_lowercase().contains(case.error_text),
                "{}: error {error:?} lacks {:?}",
                case.name,
                case.error_text
            );
            assert!(
                Duration::from_millis(attempt.latency_ms) <= ATTEMPT_TIMEOUT + LATENCY_SLACK,
                "{}: attempt took {} ms",
                case.name,
                attempt.latency_ms
            );
        }
        assert_retried_on_schedule(case.name, detail);
    }
    assert_eq!(server_error.count(), 3);
    assert_eq!(late.count(), 3);
    assert_eq!(silent.connections(), 3);
    assert_eq!(stalled_body.requests().len(), 3);
    assert_eq!(trickle.requests().len(), 3);
    assert_eq!(reset.requests().len(), 3);
}

#[tokio::test]
async fn huge_response_cut_short() {
    let daemon = DaemonProcess::start().await;
    let server = FaultServer::start(Fault::HugeBody {
        bytes: HUGE_BODY_BYTES,
    })
    .await;
    create_endpoint(&daemon.socket_path(), &server.url(), false).await;

    let answer = daemon.ingest_accepted(csat()).await;
    let detail = wait_for_status(
        &daemon.client(),
        &answer.deliveries[0],
        DeliveryStatus::Succeeded,
    )
    .await;

    let attempt = &detail.attempts[0];
    let body = attempt.response_body.clone().unwrap_or_default();
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(body.len(), EXCERPT_BYTES);
    assert!(body.bytes().all(|byte| byte == b'y'));
    assert!(
        Duration::from_millis(attempt.latency_ms) < ATTEMPT_TIMEOUT,
        "reading the excerpt took {} ms",
        attempt.latency_ms
    );
    println!(
        "huge body: attempt took {} ms; the receiver handed {} of {HUGE_BODY_BYTES} bytes to the kernel",
        attempt.latency_ms,
        server.body_bytes_sent()
    );
}

#[tokio::test]
async fn idle_close_not_a_failure() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let idle = Duration::from_millis(300);
    let server = FaultServer::start(Fault::IdleClose { idle }).await;
    create_endpoint(&daemon.socket_path(), &server.url(), false).await;

    let first = daemon.ingest_accepted(csat()).await;
    let first = wait_for_status(&client, &first.deliveries[0], DeliveryStatus::Succeeded).await;
    server.wait_for_idle_closes(1, WAIT_TIMEOUT).await;
    let second = daemon.ingest_accepted(csat()).await;
    let second = wait_for_status(&client, &second.deliveries[0], DeliveryStatus::Succeeded).await;

    for detail in [&first, &second] {
        assert_eq!(detail.attempts.len(), 1, "{:?}", detail.attempts);
        assert!(detail.attempts[0].succeeded);
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].connection, 1);
    assert_eq!(requests[1].connection, 2);
}

#[tokio::test]
async fn stale_connection_retried_at_once() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let server = FaultServer::start(Fault::ResetReused).await;
    create_endpoint(&daemon.socket_path(), &server.url(), false).await;

    let first = daemon.ingest_accepted(csat()).await;
    let first = wait_for_status(&client, &first.deliveries[0], DeliveryStatus::Succeeded).await;
    let second = daemon.ingest_accepted(csat()).await;
    let second = wait_for_status(&client, &second.deliveries[0], DeliveryStatus::Succeeded).await;

    assert_eq!(server.reused_resets(), 1);
    assert_eq!(first.attempts.len(), 1, "{:?}", first.attempts);
    assert_eq!(second.attempts.len(), 1, "{:?}", second.attempts);
    assert!(second.attempts[0].succeeded);
}

#[tokio::test]
async fn recovery_keeps_endpoint_limit() {
    const LIMIT: usize = 2;
    const BACKLOG: usize = 12;
    let options = DaemonOptions {
        retry_schedule: "300ms,300ms,300ms,300ms,300ms".to_owned(),
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), LIMIT.to_string()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Status(503)).await;
    create_endpoint(&daemon.socket_path(), &receiver.url(), false).await;
    let mut ids = Vec::new();
    for _ in 0..BACKLOG {
        let answer = daemon.ingest_accepted(csat()).await;
        ids.extend(answer.deliveries);
    }
    receiver.wait_for_requests(BACKLOG, WAIT_TIMEOUT).await;

    receiver.set_reply(Reply::Delayed {
        delay: Duration::from_millis(150),
        status: 200,
    });
    poll_until("the backlog to be delivered", WAIT_TIMEOUT, || async {
        let mut left = 0;
        for id in &ids {
            let detail = client.get_delivery(id).await.map_err(|e| e.to_string())?;
            if detail.delivery.status != DeliveryStatus::Succeeded {
                left += 1;
            }
        }
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} of {BACKLOG} not delivered"))
        }
    })
    .await;

    assert_eq!(receiver.max_in_flight(), LIMIT);
}

#[tokio::test]
async fn unresolvable_name_fails_as_dns() {
    // The daemon runs in a network namespace with only loopback, so its DNS query for the name
    // cannot leave the machine and fails at once.
    let options = DaemonOptions {
        own_network_namespace: true,
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    // The .invalid top-level domain never resolves (RFC 6761).
    create_endpoint(&daemon.socket_path(), "http://nohost.invalid/hook", false).await;

    // The ingest port is inside the namespace, so the event goes through the control socket.
    let answer = client
        .post_event(csat().as_bytes().to_vec(), None)
        .await
        .expect("post the event on the control socket");
    let detail = wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Failed).await;

    assert_eq!(detail.delivery.last_failure, Some(FailureKind::Dns));
    assert!(detail.attempts.len() > 1, "a DNS failure is retried");
    let error = detail.attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("host name did not resolve"), "{error}");
}

#[tokio::test]
async fn full_store_answers_503() {
    let options = DaemonOptions {
        data_dir_limit_bytes: Some(4 * 1024 * 1024),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let paused = belter_tests::endpoint::subscribe_with(
        &client,
        &receiver,
        belter_common::records::EventSelection::All,
        true,
    )
    .await;
    let comment = "x".repeat(200_000);
    let body = serde_json::json!({
        "event": "csat.received",
        "data": {"conversation_id": "c1", "rating": 4, "via": "api", "comment": comment},
    })
    .to_string();

    let mut accepted = Vec::new();
    let mut rejected = None;
    for _ in 0..100 {
        match client.post_event(body.clone().into_bytes(), None).await {
            Ok(answer) => accepted.extend(answer.deliveries),
            Err(error) => {
                rejected = Some(error);
                break;
            }
        }
    }
    let error = rejected.expect("a 4 MiB data directory filled up");
    let health = client.health().await;
    let mut listed = Vec::new();
    let mut query = belter_common::api::DeliveryQuery {
        limit: Some(1_000),
        ..Default::default()
    };
    loop {
        let page = client
            .list_deliveries(&query)
            .await
            .expect("the log is served");
        listed.extend(page.deliveries.into_iter().map(|delivery| delivery.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let stats = client.stats(None).await.expect("stats are served");

    assert_eq!(
        error.status(),
        Some(hyper::StatusCode::SERVICE_UNAVAILABLE),
        "{error}"
    );
    assert!(
        !accepted.is_empty(),
        "events were accepted before the disk filled"
    );
    assert!(health.is_ok(), "{health:?}");
    assert_eq!(
        stats.pending,
        listed.len() as u64,
        "the waiting count matches the stored deliveries"
    );
    for id in &accepted {
        assert!(
            listed.contains(id),
            "acknowledged delivery {id} missing from the log"
        );
    }
    assert_eq!(
        paused.endpoint.state,
        belter_common::records::EndpointState::Paused
    );
    let stopped = daemon.stop().await;
    assert!(
        stopped.success(),
        "SIGTERM on a full disk ended with {stopped}"
    );
}
