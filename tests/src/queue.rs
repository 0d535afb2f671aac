//! A queue of new deliveries that wait in memory. One endpoint runs one attempt at a time, at a
//! receiver that delays each response. The deliveries behind the first one then wait in their
//! ready lane before any due entry is written for them.

use std::time::Duration;

use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EndpointId, EventType};

use crate::endpoint::subscribe;
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
