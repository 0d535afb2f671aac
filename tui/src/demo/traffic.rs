//! The demo's sample traffic: the seven event types in turn, one event at a fixed interval, for
//! at most `MAX_EVENTS` events.

use std::time::Duration;

use belter_common::client::ControlClient;
use belter_common::samples::sample_body;
use belter_common::EventType;
use tokio::task::JoinHandle;

/// Time between two sample events.
const EVENT_INTERVAL: Duration = Duration::from_millis(800);

/// Events posted in one demo, about 40 minutes at `EVENT_INTERVAL`.
const MAX_EVENTS: usize = 3_000;

/// Posts sample events to the daemon on the control socket until `MAX_EVENTS` or until aborted.
pub(super) fn spawn(client: ControlClient) -> JoinHandle<()> {
    tokio::spawn(async move {
        for number in 0..MAX_EVENTS {
            let kind = EventType::ALL[number % EventType::ALL.len()];
            let body = sample_body(kind).as_bytes().to_vec();
            if let Err(error) = client.post_event(body, None).await {
                tracing::warn!(%error, event = %kind, "demo event not accepted");
            }
            tokio::time::sleep(EVENT_INTERVAL).await;
        }
        tracing::info!(events = MAX_EVENTS, "demo traffic finished");
    })
}
