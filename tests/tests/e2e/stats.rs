//! Totals from the stats route and the per-endpoint counters.

use belter_common::api::CreatedEndpoint;
use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// A daemon with one retry that delivered one event to a healthy and a failing endpoint, and
/// waited until both deliveries were final.
struct Outcomes {
    daemon: DaemonProcess,
    healthy: CreatedEndpoint,
    failing: CreatedEndpoint,
    _receivers: [Receiver; 2],
}

async fn deliver_to_healthy_and_failing() -> Outcomes {
    let options = DaemonOptions {
        retry_schedule: "50ms".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let healthy_receiver = Receiver::start().await;
    let failing_receiver = Receiver::with_reply(Reply::Status(500)).await;
    let healthy = subscribe(&client, &healthy_receiver).await;
    let failing = subscribe(&client, &failing_receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    for id in &answer.deliveries {
        let detail = client.get_delivery(id).await.expect("get delivery");
        let expected = if detail.delivery.endpoint_id == healthy.endpoint.id {
            DeliveryStatus::Succeeded
        } else {
            DeliveryStatus::Failed
        };
        wait_for_status(&client, id, expected).await;
    }
    Outcomes {
        daemon,
        healthy,
        failing,
        _receivers: [healthy_receiver, failing_receiver],
    }
}

#[tokio::test]
async fn stats_count_outcomes() {
    let outcomes = deliver_to_healthy_and_failing().await;

    let stats = outcomes.daemon.client().stats(None).await.expect("stats");

    assert_eq!(stats.ok, 1);
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.gave_up, 1);
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.endpoints, 2);
    assert_eq!(stats.window_secs, 24 * 3600);
}

#[tokio::test]
async fn stats_window_is_parsed() {
    let outcomes = deliver_to_healthy_and_failing().await;

    let stats = outcomes
        .daemon
        .client()
        .stats(Some("15m"))
        .await
        .expect("stats");

    assert_eq!(stats.window_secs, 15 * 60);
    assert_eq!(stats.ok, 1);
}

#[tokio::test]
async fn endpoint_counts_failures() {
    let outcomes = deliver_to_healthy_and_failing().await;
    let client = outcomes.daemon.client();

    let healthy = client
        .get_endpoint(&outcomes.healthy.endpoint.id)
        .await
        .expect("get endpoint");
    let failing = client
        .get_endpoint(&outcomes.failing.endpoint.id)
        .await
        .expect("get endpoint");

    assert_eq!(healthy.consecutive_failures, 0);
    assert!(healthy.last_success_at.is_some());
    assert_eq!(failing.consecutive_failures, 2);
    assert_eq!(failing.recent_failures, 2);
    assert_eq!(failing.last_success_at, None);
}
