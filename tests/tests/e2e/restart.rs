//! Restarts with work queued: nothing accepted is lost across SIGTERM or SIGKILL.

use std::collections::BTreeSet;
use std::time::Duration;

use belter_common::api::DeliveryQuery;
use belter_common::client::ControlClient;
use belter_common::headers;
use belter_common::records::{AttemptTrigger, DeliveryStatus, EndpointState, EventSelection};
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::endpoint::{subscribe, subscribe_with};
use belter_tests::queue::{behind_slow_attempt, SlowQueue};
use belter_tests::wait::{wait_for_attempts, wait_for_pending, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// Events queued one by one before a restart.
const SINGLE_EVENTS: usize = 5;

/// Events queued in one batch request before a restart, which share one due entry.
const BATCH_EVENTS: usize = 5;

/// Events queued before a restart.
const QUEUED_EVENTS: usize = SINGLE_EVENTS + BATCH_EVENTS;

/// How the daemon is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// Queues events for a paused endpoint, stops the daemon, starts it again, resumes the endpoint
/// and checks that every delivery arrives once.
async fn queued_deliveries_survive(stop: Stop) {
    let mut daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let created = subscribe_with(&daemon.client(), &receiver, EventSelection::All, true).await;
    let mut ids = BTreeSet::new();
    for _ in 0..SINGLE_EVENTS {
        let answer = daemon
            .ingest_accepted(sample_body(EventType::FrustrationDetected))
            .await;
        ids.extend(answer.deliveries);
    }
    let batch = daemon
        .ingest_batch_accepted(&[sample_body(EventType::CsatReceived); BATCH_EVENTS])
        .await;
    ids.extend(batch.events.into_iter().flat_map(|event| event.deliveries));

    match stop {
        Stop::Term => {
            let status = daemon.stop().await;
            assert!(
                status.success(),
                "belterd exited with {status} after SIGTERM"
            );
        }
        Stop::Kill => {
            daemon.kill().await;
        }
    }
    daemon.start_again().await;
    let client = daemon.client();
    // A clean stop keeps the count; after a kill the daemon counts its queue again.
    wait_for_pending(&client, QUEUED_EVENTS as u64, WAIT_TIMEOUT).await;
    let endpoint = client
        .get_endpoint(&created.endpoint.id)
        .await
        .expect("endpoint kept");
    let page = client
        .list_deliveries(&DeliveryQuery::default())
        .await
        .expect("list deliveries");
    client
        .resume_endpoint(&created.endpoint.id)
        .await
        .expect("resume");
    let requests = receiver
        .wait_for_requests(QUEUED_EVENTS, WAIT_TIMEOUT)
        .await;

    assert_eq!(endpoint.state, EndpointState::Paused, "{stop:?}");
    let listed: BTreeSet<DeliveryId> = page.deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(listed, ids, "{stop:?}");
    let received: BTreeSet<String> = requests
        .iter()
        .filter_map(|request| request.header(headers::DELIVERY).map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(received, expected, "{stop:?}");
    for request in &requests {
        assert_eq!(request.signature_valid, Some(true), "{stop:?}");
    }
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    receiver
        .expect_no_more_than(QUEUED_EVENTS, Duration::from_millis(300))
        .await;
    wait_for_pending(&client, 0, WAIT_TIMEOUT).await;
}

#[tokio::test]
async fn sigterm_keeps_queued() {
    queued_deliveries_survive(Stop::Term).await;
}

#[tokio::test]
async fn sigkill_keeps_queued() {
    queued_deliveries_survive(Stop::Kill).await;
}

/// Has the receiver respond 200 at once, starts the stopped daemon again, and waits until every
/// delivery of `ids` succeeded. Returns the new control client.
async fn start_and_deliver(
    daemon: &mut DaemonProcess,
    receiver: &Receiver,
    ids: &[DeliveryId],
) -> ControlClient {
    receiver.set_reply(Reply::Status(200));
    daemon.start_again().await;
    let client = daemon.client();
    for id in ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    client
}

/// Queues deliveries behind a slow attempt, so they wait in memory, stops the daemon, starts it
/// again and checks that each one arrives.
async fn deliveries_in_memory_survive(stop: Stop) {
    let SlowQueue {
        mut daemon,
        receiver,
        ids,
        ..
    } = behind_slow_attempt(QUEUED_EVENTS, Duration::from_millis(800)).await;

    match stop {
        Stop::Term => {
            let status = daemon.stop().await;
            assert!(status.success(), "belterd exited with {status}");
        }
        Stop::Kill => {
            daemon.kill().await;
        }
    }
    let client = start_and_deliver(&mut daemon, &receiver, &ids).await;
    let received: BTreeSet<String> = receiver
        .requests()
        .iter()
        .filter_map(|request| request.header(headers::DELIVERY).map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(received, expected, "{stop:?}");
    wait_for_pending(&client, 0, WAIT_TIMEOUT).await;
}

#[tokio::test]
async fn sigterm_keeps_deliveries_in_memory() {
    deliveries_in_memory_survive(Stop::Term).await;
}

#[tokio::test]
async fn sigkill_keeps_deliveries_in_memory() {
    deliveries_in_memory_survive(Stop::Kill).await;
}

/// A replay of a delivery that waits in memory leaves a single due entry, so the count of
/// waiting deliveries after a kill matches the deliveries themselves.
#[tokio::test]
async fn sigkill_after_replay_counts_each_delivery_once() {
    let SlowQueue {
        mut daemon,
        receiver,
        ids,
        ..
    } = behind_slow_attempt(2, Duration::from_secs(3)).await;
    let waiting = &ids[1];
    daemon.client().replay(waiting).await.expect("replay");
    // Longer than a sweep of the indexer and sled's own flush.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    daemon.kill().await;
    let client = start_and_deliver(&mut daemon, &receiver, &ids).await;
    wait_for_pending(&client, 0, WAIT_TIMEOUT).await;
}

/// The due entry that a batch's deliveries to a paused endpoint share stays after they are
/// delivered, until the endpoint's due index is read again. A kill then leaves it, and the
/// count of waiting deliveries at the next start leaves out the deliveries that ended.
#[tokio::test]
async fn sigkill_after_batch_delivered_counts_nothing() {
    let mut daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let csat_only = EventSelection::Only(vec![EventType::CsatReceived]);
    let created = subscribe_with(&daemon.client(), &receiver, csat_only, true).await;
    let batch = daemon
        .ingest_batch_accepted(&[sample_body(EventType::CsatReceived); BATCH_EVENTS])
        .await;
    let ids: Vec<DeliveryId> = batch
        .events
        .into_iter()
        .flat_map(|event| event.deliveries)
        .collect();
    let client = daemon.client();
    client
        .resume_endpoint(&created.endpoint.id)
        .await
        .expect("resume");
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    // This event, which no endpoint receives, makes the outcomes durable before the kill.
    daemon
        .ingest_accepted(sample_body(EventType::FrustrationDetected))
        .await;

    daemon.kill().await;
    daemon.start_again().await;

    wait_for_pending(&daemon.client(), 0, WAIT_TIMEOUT).await;
    receiver
        .expect_no_more_than(BATCH_EVENTS, Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn sigkill_keeps_pending_retry() {
    let options = DaemonOptions {
        retry_schedule: "1s".to_owned(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let receiver = Receiver::start().await;
    receiver.set_replies(vec![Reply::Status(500), Reply::Status(200)]);
    let csat_only = EventSelection::Only(vec![EventType::CsatReceived]);
    subscribe_with(&daemon.client(), &receiver, csat_only, false).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    wait_for_attempts(&daemon.client(), id, 1).await;
    // Attempt results are written without their own flush. An ingest returns 202 only after a flush
    // of the whole store, so this event, which no endpoint receives, makes the failed first
    // attempt durable before the kill.
    daemon
        .ingest_accepted(sample_body(EventType::FrustrationDetected))
        .await;

    daemon.kill().await;
    daemon.start_again().await;
    let detail = wait_for_status(&daemon.client(), id, DeliveryStatus::Succeeded).await;
    let requests = receiver.wait_for_requests(2, WAIT_TIMEOUT).await;

    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.attempts[0].status_code, Some(500));
    assert_eq!(detail.attempts[1].trigger, AttemptTrigger::Retry);
    assert_eq!(requests[1].header(headers::DELIVERY), Some(id.as_str()));
    assert_eq!(requests[1].header(headers::ATTEMPT), Some("2"));
}

#[tokio::test]
async fn sigkill_counts_pending_retry() {
    let options = DaemonOptions {
        retry_schedule: "1h".to_owned(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let receiver = Receiver::with_reply(Reply::Status(500)).await;
    let csat_only = EventSelection::Only(vec![EventType::CsatReceived]);
    subscribe_with(&daemon.client(), &receiver, csat_only, false).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    wait_for_attempts(&daemon.client(), &answer.deliveries[0], 1).await;
    // This event makes the failed attempt durable, as in the test above.
    daemon
        .ingest_accepted(sample_body(EventType::FrustrationDetected))
        .await;

    daemon.kill().await;
    daemon.start_again().await;

    // The retry is due in an hour, after the start, and still counts as waiting.
    wait_for_pending(&daemon.client(), 1, WAIT_TIMEOUT).await;
}

#[tokio::test]
async fn sigterm_during_attempt() {
    let mut daemon = DaemonProcess::start().await;
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(300),
        status: 200,
    })
    .await;
    subscribe(&daemon.client(), &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = &answer.deliveries[0];
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    let status = daemon.stop().await;
    daemon.start_again().await;
    let detail = wait_for_status(&daemon.client(), id, DeliveryStatus::Succeeded).await;

    assert!(
        status.success(),
        "belterd exited with {status} after SIGTERM"
    );
    assert!(detail.attempts.iter().any(|attempt| attempt.succeeded));
}

#[tokio::test]
async fn endpoint_health_survives_restart() {
    let mut daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let failing = Receiver::with_reply(Reply::Status(500)).await;
    let created = subscribe(&client, &failing).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Failed).await;
    let before = client
        .get_endpoint(&created.endpoint.id)
        .await
        .expect("endpoint");

    daemon.stop().await;
    daemon.start_again().await;
    let after = daemon
        .client()
        .get_endpoint(&created.endpoint.id)
        .await
        .expect("endpoint after restart");

    assert_eq!(
        before.consecutive_failures, 3,
        "first attempt and two retries"
    );
    assert_eq!(after.consecutive_failures, before.consecutive_failures);
    assert_eq!(after.recent_failures, before.recent_failures);
}

/// A batch whose events the event log lost ends each delivery once, as failed, with the cause
/// in its attempt. Its deliveries are not handed out again and again.
#[tokio::test]
async fn lost_event_group_fails_its_deliveries_once() {
    let mut daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let created = subscribe_with(&daemon.client(), &receiver, EventSelection::All, true).await;
    let batch = daemon
        .ingest_batch_accepted(&[sample_body(EventType::CsatReceived); BATCH_EVENTS])
        .await;
    let ids: BTreeSet<DeliveryId> = batch
        .events
        .into_iter()
        .flat_map(|event| event.deliveries)
        .collect();
    assert!(daemon.stop().await.success());
    // As if the disk lost the groups: every segment of the event log is cut to nothing.
    let log_dir = daemon.data_dir().join("store").join("event-log");
    for entry in std::fs::read_dir(&log_dir).expect("event log directory") {
        let path = entry.expect("segment").path();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(0))
            .expect("truncate segment");
    }

    daemon.start_again().await;
    let client = daemon.client();
    client
        .resume_endpoint(&created.endpoint.id)
        .await
        .expect("resume");
    let query = DeliveryQuery {
        status: Some(DeliveryStatus::Failed),
        ..DeliveryQuery::default()
    };
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    let failed = loop {
        let page = client.list_deliveries(&query).await.expect("list");
        if page.deliveries.len() == ids.len() || tokio::time::Instant::now() > deadline {
            break page.deliveries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Time for a loop that hands the deliveries out again to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = client.list_deliveries(&query).await.expect("list again");

    let listed: BTreeSet<DeliveryId> = failed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(listed, ids);
    for delivery in &again.deliveries {
        assert_eq!(delivery.attempt_count, 1, "{}", delivery.id);
        let error = delivery.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("body is missing"), "{error}");
    }
    assert_eq!(receiver.count(), 0, "nothing was sent");
}
