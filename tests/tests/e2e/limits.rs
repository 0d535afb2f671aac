//! Concurrency limits on attempts in flight, measured at the receiver.

use std::time::Duration;

use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// Events sent at once. They outnumber the limit under test, so a broken limit shows as overlap.
const BURST: usize = 4;

/// How long each receiver keeps a request open, so attempts would overlap without a limit.
const HOLD: Duration = Duration::from_millis(300);

fn slow_reply() -> Reply {
    Reply::Delayed {
        delay: HOLD,
        status: 200,
    }
}

async fn daemon_with_limit(flag: &str) -> DaemonProcess {
    let options = DaemonOptions {
        extra_args: vec![flag.to_owned(), "1".to_owned()],
        ..DaemonOptions::default()
    };
    DaemonProcess::start_with(options).await
}

#[tokio::test]
async fn per_endpoint_limit_serializes() {
    let daemon = daemon_with_limit("--max-in-flight-per-endpoint").await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(slow_reply()).await;
    subscribe(&client, &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..BURST {
        let answer = daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
        ids.extend(answer.deliveries);
    }

    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }

    assert_eq!(receiver.count(), BURST);
    assert_eq!(receiver.max_in_flight(), 1);
}

#[tokio::test]
async fn global_limit_serializes() {
    let daemon = daemon_with_limit("--max-in-flight").await;
    let client = daemon.client();
    let mut receivers = Vec::new();
    for _ in 0..BURST {
        let receiver = Receiver::with_reply(slow_reply()).await;
        subscribe(&client, &receiver).await;
        receivers.push(receiver);
    }
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;

    let mut starts = Vec::new();
    for id in &answer.deliveries {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    for receiver in &receivers {
        let request = &receiver.requests()[0];
        starts.push(request.received_at);
    }
    starts.sort();

    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= HOLD, "two attempts started {gap:?} apart");
    }
}

#[tokio::test]
async fn default_limits_allow_overlap() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(slow_reply()).await;
    subscribe(&client, &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..BURST {
        let answer = daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
        ids.extend(answer.deliveries);
    }

    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }

    assert!(receiver.max_in_flight() > 1, "attempts never overlapped");
}
