//! The live stream of delivery changes and attempt results.

use std::collections::HashSet;

use belter_common::records::{DeliveryStatus, StreamEvent, StreamKind};
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::endpoint::subscribe;
use belter_tests::queue::{busy_paused_queue, delete_while_busy, BusyQueue};
use belter_tests::wait::WAIT_TIMEOUT;
use belter_tests::{DaemonProcess, Receiver};

#[tokio::test]
async fn stream_shows_attempt() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let mut stream = client.stream().await.expect("open stream");

    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = answer.deliveries[0].clone();
    let mut seen: Vec<StreamEvent> = Vec::new();
    let collect = async {
        while let Some(line) = stream.next().await {
            let event = line.expect("valid stream line");
            let ours = event
                .delivery
                .as_ref()
                .is_some_and(|delivery| delivery.id == id);
            if !ours {
                continue;
            }
            let finished = event.kind == StreamKind::AttemptFinished;
            seen.push(event);
            if finished {
                return;
            }
        }
    };
    let finished = tokio::time::timeout(WAIT_TIMEOUT, collect).await;

    let kinds: Vec<StreamKind> = seen.iter().map(|event| event.kind).collect();
    assert!(
        finished.is_ok(),
        "no attempt_finished for {id}; saw {kinds:?}"
    );
    assert_eq!(
        kinds,
        [
            StreamKind::DeliveryCreated,
            StreamKind::AttemptStarted,
            StreamKind::AttemptFinished
        ]
    );
    let last = seen.last().expect("attempt_finished");
    let attempt = last.attempt.as_ref().expect("attempt in attempt_finished");
    assert_eq!(attempt.status_code, Some(200));
    assert!(attempt.succeeded);
    let delivery = last
        .delivery
        .as_ref()
        .expect("delivery in attempt_finished");
    assert_eq!(delivery.status, DeliveryStatus::Succeeded);
}

/// Deletes an endpoint with a queue while its attempts end one after another, so the outcome
/// writer may cancel the queue before the delete does. The stream reports each delivery's end
/// either way.
#[tokio::test]
async fn stream_shows_busy_endpoint_cancels() {
    let BusyQueue {
        daemon,
        receiver,
        endpoint_id,
        ids,
        ..
    } = busy_paused_queue(0, 10).await;
    let client = daemon.client();
    let mut stream = client.stream().await.expect("open stream");
    delete_while_busy(&client, &receiver, &endpoint_id).await;

    let mut open: HashSet<DeliveryId> = ids.iter().cloned().collect();
    let ended = async {
        while let Some(line) = stream.next().await {
            let event = line.expect("valid stream line");
            assert!(event.missed.is_none(), "the stream lagged");
            let Some(delivery) = event.delivery else {
                continue;
            };
            if matches!(
                delivery.status,
                DeliveryStatus::Succeeded | DeliveryStatus::Cancelled
            ) {
                open.remove(&delivery.id);
                if open.is_empty() {
                    return;
                }
            }
        }
    };
    let all_ended = tokio::time::timeout(WAIT_TIMEOUT, ended).await.is_ok();

    assert!(
        all_ended,
        "{} deliveries never ended on the stream",
        open.len()
    );
}
