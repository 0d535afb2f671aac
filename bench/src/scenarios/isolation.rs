//! Isolation: a fast endpoint beside one whose receiver keeps every request open without a
//! response until belterd's attempt timeout. Both endpoints take every event, so each event is stored
//! with two deliveries in both runs: first with the held endpoint paused ("alone"), then with it
//! active. The ratio of the fast endpoint's delivery rates is the cost of the dead neighbour.

use std::sync::Arc;
use std::time::Duration;

use belter_common::records::EventSelection;
use serde::Serialize;

use super::throughput::{saturate, PhaseResult};
use crate::daemon::{endpoint_request, Daemon, DaemonSettings};
use crate::options::Options;
use crate::progress::note;
use crate::receiver::{Behaviour, Receiver};

/// How long the dead receiver keeps a request open. It is longer than belterd's 15 s attempt
/// timeout, so belterd always gives up first.
const HOLD: Duration = Duration::from_secs(60);

/// Results of the isolation scenario.
#[derive(Debug, Clone, Serialize)]
pub struct IsolationResult {
    /// The fast endpoint with the dead one paused.
    pub alone: PhaseResult,
    /// The fast endpoint with the dead one active.
    pub beside_dead: PhaseResult,
    /// Requests the dead receiver got while active.
    pub dead_requests: u64,
    /// The fast endpoint's delivered per second beside the dead one over alone.
    pub ratio: f64,
}

/// Runs the isolation scenario.
pub async fn run(options: &Options) -> anyhow::Result<IsolationResult> {
    note("isolation", "fast endpoint, dead neighbour paused");
    let (alone, _) = phase(options, true).await?;
    note("isolation", "fast endpoint, dead neighbour active");
    let (beside_dead, dead_requests) = phase(options, false).await?;
    let ratio = beside_dead.delivered_per_sec / alone.delivered_per_sec;
    note(
        "isolation",
        &format!(
            "fast endpoint {:.0}/s alone, {:.0}/s beside the dead one ({:.0} %)",
            alone.delivered_per_sec,
            beside_dead.delivered_per_sec,
            ratio * 100.0
        ),
    );
    Ok(IsolationResult {
        alone,
        beside_dead,
        dead_requests,
        ratio,
    })
}

/// One saturating run on a fresh daemon; returns the fast endpoint's numbers and the requests
/// the dead receiver got.
async fn phase(options: &Options, dead_paused: bool) -> anyhow::Result<(PhaseResult, u64)> {
    let mut daemon = Daemon::start(
        &options.belterd,
        DaemonSettings::with_concurrency(options.concurrency),
    )
    .await?;
    let fast = Arc::new(Receiver::start(Behaviour::Answer).await?);
    let dead = Receiver::start(Behaviour::Hold(HOLD)).await?;
    let control = daemon.client();
    let created = control
        .create_endpoint(&endpoint_request(
            &fast.url("/hook"),
            EventSelection::All,
            "belter-bench fast receiver",
            false,
        )?)
        .await?;
    fast.set_secret("/hook", &created.secret);
    control
        .create_endpoint(&endpoint_request(
            &dead.url("/hook"),
            EventSelection::All,
            "belter-bench receiver that never answers",
            dead_paused,
        )?)
        .await?;
    let result = saturate("isolation", &daemon, &fast, options).await?;
    let dead_requests = dead.count();
    // Closing the held connections ends their attempts, so belterd stops without waiting for
    // the attempt timeout.
    drop(dead);
    daemon.stop().await?;
    Ok((result, dead_requests))
}
