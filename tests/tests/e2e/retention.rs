//! Pruning of deliveries, attempts and events past the retention period.

use std::time::Duration;

use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::{poll_until, wait_for_status};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver};
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
