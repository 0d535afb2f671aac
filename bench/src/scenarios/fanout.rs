//! Fan-out: one event to 100 endpoints, in rounds. Each round posts one event and waits until
//! all of its deliveries arrived, so rounds measure the time to deliver all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use belter_common::records::EventSelection;
use serde::Serialize;

use super::baseline::{per_second, BaselineResult};
use crate::daemon::{endpoint_request, Daemon, DaemonSettings};
use crate::ingest::IngestClient;
use crate::options::Options;
use crate::payload::{ingest_body, EVENT_TYPE};
use crate::percentiles::{millis_between, Spread};
use crate::progress::note;
use crate::receiver::{Behaviour, Receiver};

/// Endpoints that every event goes to.
pub const FANOUT_ENDPOINTS: usize = 100;

/// Maximum rounds in one run, whatever the duration.
const MAX_ROUNDS: usize = 1_000;

/// Time one round's deliveries have to arrive.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

/// Results of the fan-out scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Endpoints per event.
    pub endpoints: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Rounds whose deliveries did not all arrive within the round timeout.
    pub incomplete_rounds: usize,
    /// Deliveries received.
    pub deliveries: u64,
    /// Time from the 202 to the last of a round's deliveries. Deliveries may start before the
    /// client has read the 202, so the time to the first can be negative.
    pub time_to_all: Option<Spread>,
    /// Time from the 202 to the first of a round's deliveries.
    pub time_to_first: Option<Spread>,
    /// Deliveries per second, over the rounds' time from post to last delivery.
    pub deliveries_per_sec: f64,
    /// Deliveries per second over the baseline's requests per second.
    pub over_baseline: f64,
    /// Deliveries whose signature did not verify.
    pub bad_signatures: u64,
}

/// Runs the fan-out scenario.
pub async fn run(options: &Options, baseline: &BaselineResult) -> anyhow::Result<FanoutResult> {
    let mut daemon = Daemon::start(
        &options.belterd,
        DaemonSettings::with_concurrency(options.concurrency),
    )
    .await?;
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    let control = daemon.client();
    for index in 0..FANOUT_ENDPOINTS {
        let path = format!("/hook/{index}");
        let created = control
            .create_endpoint(&endpoint_request(
                &receiver.url(&path),
                EventSelection::All,
                &format!("belter-bench fan-out {index}"),
                false,
            )?)
            .await?;
        receiver.set_secret(&path, &created.secret);
    }
    let client = IngestClient::new(daemon.ingest_url(), &daemon.token()?)?;
    let body = ingest_body(EVENT_TYPE);
    note(
        "fanout",
        &format!(
            "one event to {FANOUT_ENDPOINTS} endpoints per round, for {:?}",
            options.duration
        ),
    );

    let started = Instant::now();
    let mut to_all_ms = Vec::new();
    let mut to_first_ms = Vec::new();
    let mut busy = Duration::ZERO;
    let mut incomplete_rounds = 0;
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && started.elapsed() < options.duration {
        rounds += 1;
        let before = receiver.count();
        receiver.reset_first();
        let posted = Instant::now();
        let answer = client.post_accepted(body.clone()).await?;
        let accepted = Instant::now();
        let expected = before + answer.deliveries.len() as u64;
        if !receiver.wait_for_count(expected, ROUND_TIMEOUT).await {
            incomplete_rounds += 1;
            continue;
        }
        let last = receiver.last_at().unwrap_or(accepted);
        to_all_ms.push(millis_between(accepted, last));
        if let Some(first) = receiver.first_at() {
            to_first_ms.push(millis_between(accepted, first));
        }
        busy += last.saturating_duration_since(posted);
    }
    daemon.stop().await?;
    let deliveries = receiver.count();
    let deliveries_per_sec = per_second(deliveries, busy);
    let result = FanoutResult {
        endpoints: FANOUT_ENDPOINTS,
        rounds,
        incomplete_rounds,
        deliveries,
        time_to_all: Spread::of(&to_all_ms),
        time_to_first: Spread::of(&to_first_ms),
        deliveries_per_sec,
        over_baseline: deliveries_per_sec / baseline.requests_per_sec,
        bad_signatures: receiver.bad_signatures(),
    };
    if let Some(to_all) = &result.time_to_all {
        note(
            "fanout",
            &format!(
                "{rounds} rounds: all {FANOUT_ENDPOINTS} delivered in p50 {:.1} ms, max {:.1} ms; {:.0} deliveries/s",
                to_all.p50_ms, to_all.max_ms, result.deliveries_per_sec
            ),
        );
    }
    Ok(result)
}
