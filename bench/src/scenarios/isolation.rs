//! Isolation: a fast endpoint beside one whose receiver keeps every request open without a
//! response until belterd's attempt timeout. Both endpoints take every event, so each event is stored
//! with two deliveries in every run: with the held endpoint paused ("alone") or active. The ratio
//! of the fast endpoint's delivery rates is the cost of the dead neighbour. The runs go alone,
//! beside, beside, alone, twice, so a load on the machine that rises or falls steadily during the
//! scenario moves both means alike. belterd's CPU per delivered event, beside the bench's own, is
//! reported for both sides too: the bench's cost per event does not depend on the neighbour, so
//! where it moves between runs, the machine's speed moved.

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

/// Shortest wait after posting stops for the fast endpoint's deliveries. Its rate beside the dead
/// endpoint is compared with its rate alone over runs of the same length, so a run may end
/// before every event is delivered.
const MIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Order of the runs: `true` has the dead endpoint paused.
const RUNS: [bool; 8] = [true, false, false, true, true, false, false, true];

/// Results of the isolation scenario.
#[derive(Debug, Clone, Serialize)]
pub struct IsolationResult {
    /// The fast endpoint's runs with the dead one paused.
    pub alone: Vec<PhaseResult>,
    /// The fast endpoint's runs with the dead one active.
    pub beside_dead: Vec<PhaseResult>,
    /// Mean delivered per second of the `alone` runs.
    pub alone_per_sec: f64,
    /// Mean delivered per second of the `beside_dead` runs.
    pub beside_dead_per_sec: f64,
    /// Requests the dead receiver got over its active runs.
    pub dead_requests: u64,
    /// `beside_dead_per_sec` over `alone_per_sec`.
    pub ratio: f64,
    /// Mean CPU per delivered event of the `alone` runs.
    pub alone_cpu: CpuPerEvent,
    /// Mean CPU per delivered event of the `beside_dead` runs.
    pub beside_dead_cpu: CpuPerEvent,
}

/// Mean CPU per delivered event over several runs, in µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerEvent {
    /// belterd's.
    pub daemon_us: f64,
    /// The bench's: posters and receivers.
    pub bench_us: f64,
}

impl CpuPerEvent {
    fn mean(runs: &[PhaseResult]) -> Self {
        let count = runs.len().max(1) as f64;
        Self {
            daemon_us: runs
                .iter()
                .map(|run| run.daemon_cpu_us_per_event)
                .sum::<f64>()
                / count,
            bench_us: runs
                .iter()
                .map(|run| run.bench_cpu_us_per_event)
                .sum::<f64>()
                / count,
        }
    }
}

/// Runs the isolation scenario.
pub async fn run(options: &Options) -> anyhow::Result<IsolationResult> {
    let mut alone = Vec::new();
    let mut beside_dead = Vec::new();
    let mut dead_requests = 0;
    for (run, dead_paused) in RUNS.into_iter().enumerate() {
        let label = if dead_paused {
            "dead neighbour paused"
        } else {
            "dead neighbour active"
        };
        note(
            "isolation",
            &format!("run {} of {}: fast endpoint, {label}", run + 1, RUNS.len()),
        );
        let (result, requests) = phase(options, dead_paused).await?;
        if dead_paused {
            alone.push(result);
        } else {
            dead_requests += requests;
            beside_dead.push(result);
        }
    }
    let alone_per_sec = mean_delivered(&alone);
    let beside_dead_per_sec = mean_delivered(&beside_dead);
    let ratio = beside_dead_per_sec / alone_per_sec;
    note(
        "isolation",
        &format!(
            "fast endpoint {alone_per_sec:.0}/s alone, {beside_dead_per_sec:.0}/s beside the dead one ({:.0} %)",
            ratio * 100.0
        ),
    );
    Ok(IsolationResult {
        alone_cpu: CpuPerEvent::mean(&alone),
        beside_dead_cpu: CpuPerEvent::mean(&beside_dead),
        alone,
        beside_dead,
        alone_per_sec,
        beside_dead_per_sec,
        dead_requests,
        ratio,
    })
}

/// Computes the mean delivered per second of `runs`.
fn mean_delivered(runs: &[PhaseResult]) -> f64 {
    let total: f64 = runs.iter().map(|run| run.delivered_per_sec).sum();
    total / runs.len().max(1) as f64
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
    let drain_timeout = MIN_DRAIN_TIMEOUT.max(options.duration * 3);
    let result = saturate("isolation", &daemon, &fast, options, drain_timeout).await?;
    let dead_requests = dead.count();
    // Closing the held connections ends their attempts, so belterd stops without waiting for
    // the attempt timeout.
    drop(dead);
    daemon.stop().await?;
    Ok((result, dead_requests))
}
