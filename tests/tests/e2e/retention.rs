//! Pruning of deliveries, attempts and events past the retention period.

use std::time::Duration;

use belter_common::client::ControlClient;
use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::DeliveryId;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::{poll_until, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};
use hyper::StatusCode;

#[tokio::test]
async fn old_deliveries_are_pruned() {
    let options = DaemonOptions {
        extra_args: ["--retention", "2s", "--retention-interval", "200ms"]
            .map(String::from)
            .to_vec(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;

    let error = poll_until("delivery pruned", Duration::from_secs(10), || async {
        match client.get_delivery(id).await {
            Err(error) => Ok(error),
            Ok(detail) => Err(format!("still stored as {:?}", detail.delivery.status)),
        }
    })
    .await;
    let page = client
        .list_deliveries(&Default::default())
        .await
        .expect("list deliveries");
    let replay = client
        .replay(id)
        .await
        .expect_err("pruned delivery replayed");

    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert!(error.to_string().contains("past retention"), "{error}");
    assert!(page.deliveries.is_empty(), "{:?}", page.deliveries);
    assert_eq!(replay.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn young_deliveries_are_kept() {
    let options = DaemonOptions {
        extra_args: ["--retention", "1h", "--retention-interval", "100ms"]
            .map(String::from)
            .to_vec(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;

    // Several sweeps run in this time; none may touch a delivery inside the period.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let detail = client.get_delivery(id).await.expect("delivery kept");

    assert_eq!(detail.attempts.len(), 1);
}

/// Starts a daemon that prunes after `retention`, with an attempt timeout of 5 s, longer than
/// the receivers' delays, and no retry due within a test.
async fn prune_during_attempt_daemon(retention: &str) -> DaemonProcess {
    let options = DaemonOptions {
        retry_schedule: "1h".to_owned(),
        attempt_timeout: "5s".to_owned(),
        extra_args: ["--retention", retention, "--retention-interval", "100ms"]
            .map(String::from)
            .to_vec(),
        ..DaemonOptions::default()
    };
    DaemonProcess::start_with(options).await
}

async fn wait_until_pruned(client: &ControlClient, id: &DeliveryId) {
    poll_until("delivery pruned", WAIT_TIMEOUT, || async {
        match client.get_delivery(id).await {
            Err(_) => Ok(()),
            Ok(detail) => Err(format!("still stored as {:?}", detail.delivery.status)),
        }
    })
    .await;
}

async fn pending_count(client: &ControlClient) -> u64 {
    client.stats(None).await.expect("stats").pending
}

/// A new delivery waits in memory without its due entry while its attempt runs. The sweep
/// prunes it, then the attempt fails and schedules a retry that nothing stores, so nothing is
/// pending any more.
#[tokio::test]
async fn pruned_during_failed_attempt_not_pending() {
    let daemon = prune_during_attempt_daemon("1s").await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(1_800),
        status: 500,
    })
    .await;
    subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    wait_until_pruned(&client, id).await;
    // The attempt ends 1.8 s after it started, and its outcome is written right after.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    assert_eq!(pending_count(&client).await, 0);
}

/// A delivery whose due entry the indexer wrote while its attempt ran is pruned, and then the
/// attempt succeeds. The count drops once, so a later delivery still counts as pending.
#[tokio::test]
async fn pruned_during_successful_attempt_counted_once() {
    let daemon = prune_during_attempt_daemon("3s").await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(3_500),
        status: 200,
    })
    .await;
    let created = subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    wait_until_pruned(&client, id).await;
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after_prune = pending_count(&client).await;
    client
        .pause_endpoint(&created.endpoint.id)
        .await
        .expect("pause");
    daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let queued = pending_count(&client).await;

    assert_eq!(after_prune, 0);
    assert_eq!(queued, 1, "the paused endpoint's new delivery");
}
