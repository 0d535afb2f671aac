//! A queue of new deliveries that wait in memory. One endpoint runs one attempt at a time, at a
//! receiver that delays each response. The deliveries behind the first one then wait in their
//! ready lane before any due entry is written for them.

use std::time::Duration;

use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EndpointId, EventType};

use belter_common::client::ControlClient;
use belter_common::records::EventSelection;

use crate::endpoint::{subscribe, subscribe_with};
use crate::wait::WAIT_TIMEOUT;
use crate::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// A daemon with deliveries waiting behind a slow attempt.
pub struct SlowQueue {
    pub daemon: DaemonProcess,
    /// Delays each response by the given time, then responds 200.
    pub receiver: Receiver,
    pub endpoint_id: EndpointId,
    /// Every delivery, in the order the events were posted; the first one's attempt runs.
    pub ids: Vec<DeliveryId>,
}

/// Starts a daemon that runs one attempt per endpoint at a time, and posts `count`
/// `csat.received` events to one endpoint whose receiver delays each response by `hold`. Returns
/// once the first attempt has reached the receiver.
pub async fn behind_slow_attempt(count: usize, hold: Duration) -> SlowQueue {
    let options = DaemonOptions {
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), "1".to_owned()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: hold,
        status: 200,
    })
    .await;
    let created = subscribe(&daemon.client(), &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let answer = daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
        ids.extend(answer.deliveries);
    }
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    SlowQueue {
        daemon,
        receiver,
        endpoint_id: created.endpoint.id,
        ids,
    }
}

/// A daemon with batches of deliveries queued for a paused endpoint, in due groups.
pub struct BusyQueue {
    pub daemon: DaemonProcess,
    /// Delays each response by 10 ms, then responds 200.
    pub receiver: Receiver,
    /// The paused endpoint of `receiver`.
    pub endpoint_id: EndpointId,
    /// Every delivery the events made, to every endpoint.
    pub ids: Vec<DeliveryId>,
    /// Events posted; each one also made a delivery to every endpoint in `others`.
    pub events: usize,
}

/// Starts a daemon that runs 8 attempts per endpoint at a time, subscribes a paused endpoint
/// whose receiver delays each response by 10 ms, and `others` more paused endpoints whose
/// receivers respond at once. Then posts `batches` batches of 100 `csat.received` events.
pub async fn busy_paused_queue(others: usize, batches: usize) -> BusyQueue {
    let options = DaemonOptions {
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), "8".to_owned()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(10),
        status: 200,
    })
    .await;
    let created = subscribe_with(&client, &receiver, EventSelection::All, true).await;
    for _ in 0..others {
        let other = Receiver::start().await;
        subscribe_with(&client, &other, EventSelection::All, true).await;
    }
    let mut ids = Vec::new();
    let mut events = 0;
    for _ in 0..batches {
        let batch = daemon
            .ingest_batch_accepted(&[sample_body(EventType::CsatReceived); 100])
            .await;
        events += batch.events.len();
        ids.extend(batch.events.into_iter().flat_map(|event| event.deliveries));
    }
    BusyQueue {
        daemon,
        receiver,
        endpoint_id: created.endpoint.id,
        ids,
        events,
    }
}

/// Resumes the endpoint of a [`busy_paused_queue`], and deletes it once 50 of its deliveries
/// have reached `receiver`, while its attempts still run.
pub async fn delete_while_busy(
    client: &ControlClient,
    receiver: &Receiver,
    endpoint_id: &EndpointId,
) {
    client.resume_endpoint(endpoint_id).await.expect("resume");
    receiver.wait_for_requests(50, WAIT_TIMEOUT).await;
    client
        .delete_endpoint(endpoint_id)
        .await
        .expect("delete endpoint");
}
