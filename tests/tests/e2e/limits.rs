//! Concurrency limits on attempts in flight, measured at the receiver.

use std::time::Duration;

use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::{wait_for_status, WAIT_TIMEOUT};
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

#[tokio::test]
async fn global_limit_takes_endpoints_in_turn() {
    let daemon = daemon_with_limit("--max-in-flight").await;
    let client = daemon.client();
    let reply = Reply::Delayed {
        delay: Duration::from_millis(50),
        status: 200,
    };
    let first = Receiver::with_reply(reply.clone()).await;
    let second = Receiver::with_reply(reply).await;
    subscribe(&client, &first).await;
    subscribe(&client, &second).await;

    // The events go in one batch, so both lanes contain all their deliveries before the first
    // attempt ends.
    let events = vec![sample_body(EventType::CsatReceived); BURST * 2];
    let answer = daemon.ingest_batch_accepted(&events).await;
    for id in answer.events.iter().flat_map(|event| &event.deliveries) {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }

    // The scheduler starts the endpoints in turn when one global slot is free, so neither
    // endpoint gets all its deliveries before the other gets its first.
    let first_and_last = |receiver: &Receiver| {
        let times: Vec<_> = receiver
            .requests()
            .iter()
            .map(|request| request.received_at)
            .collect();
        assert_eq!(times.len(), BURST * 2);
        (times.iter().min().copied(), times.iter().max().copied())
    };
    let (first_start, first_end) = first_and_last(&first);
    let (second_start, second_end) = first_and_last(&second);
    assert!(
        second_start < first_end,
        "the first endpoint got every delivery before the second got one"
    );
    assert!(
        first_start < second_end,
        "the second endpoint got every delivery before the first got one"
    );
}

#[tokio::test]
async fn busy_endpoint_refills_to_its_limit() {
    // With a limit of 16 an ended attempt wakes the scheduler once two slots are free. Without
    // that wake-up the free slots wait for the scheduler's idle pass every 5 s, and the backlog
    // would not reach the receiver within the wait timeout.
    const LIMIT: usize = 16;
    const EVENTS: usize = 200;
    let options = DaemonOptions {
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), LIMIT.to_string()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(50),
        status: 200,
    })
    .await;
    subscribe(&client, &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..EVENTS / 100 {
        let batch = daemon
            .ingest_batch_accepted(&[sample_body(EventType::CsatReceived); 100])
            .await;
        ids.extend(batch.events.into_iter().flat_map(|event| event.deliveries));
    }

    receiver.wait_for_requests(EVENTS, WAIT_TIMEOUT).await;
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    assert_eq!(receiver.count(), EVENTS);
    assert_eq!(receiver.max_in_flight(), LIMIT);
}
