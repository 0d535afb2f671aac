//! End-to-end throughput: several keep-alive posters send events as fast as belterd accepts
//! them, and every event goes to one endpoint on a fast receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use belter_common::records::EventSelection;
use serde::Serialize;

use super::baseline::{micros_per, per_second, ratio, BaselineResult};
use crate::daemon::{endpoint_request, Daemon, DaemonSettings};
use crate::ingest::{post_closed_loop, IngestClient, PostCounts, PostLimit};
use crate::memory::PeakMemory;
use crate::options::Options;
use crate::payload::{batch_body, ingest_body, EVENT_TYPE};
use crate::progress::{note, Ticker};
use crate::receiver::{Behaviour, Receiver};
use crate::speed;
use crate::system::{CpuMeter, CpuUse, WakeupMeter, Wakeups};

/// Shortest wait after posting stops for belterd to deliver every accepted event. Posting
/// accepts events several times faster than belterd delivers them, so the drain takes several
/// times the posting time.
const MIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Drain timeout as a multiple of the posting time, used when longer than [`MIN_DRAIN_TIMEOUT`].
const DRAIN_TIMEOUT_PER_POSTING: u32 = 12;

/// Results of one saturating phase, seen from one receiver.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// Time spent posting, in seconds.
    pub post_secs: f64,
    /// Events accepted with 202.
    pub accepted: u64,
    /// Events rejected or failed.
    pub rejected: u64,
    /// Accepted events per second of posting.
    pub accepted_per_sec: f64,
    /// Deliveries the receiver got.
    pub delivered: u64,
    /// Deliveries per second from the first post to the last delivery.
    pub delivered_per_sec: f64,
    /// Deliveries per second while posting went on.
    pub delivered_while_posting_per_sec: f64,
    /// Whether every accepted event was delivered before the drain timeout.
    pub drained: bool,
    /// Time from the first post to the last delivery, in seconds.
    pub delivery_secs: f64,
    /// Deliveries whose signature did not verify.
    pub bad_signatures: u64,
    /// Peak resident memory of belterd during the phase, in MiB.
    pub rss_peak_mib: f64,
    /// CPU used from the first post to the last delivery, in cores.
    pub cpu: CpuUse,
    /// belterd's CPU per delivered event, in µs.
    pub daemon_cpu_us_per_event: f64,
    /// The bench's CPU (posters and receiver) per delivered event, in µs.
    pub bench_cpu_us_per_event: f64,
    /// CPU used while posting went on, in cores.
    pub posting_cpu: CpuUse,
    /// belterd's CPU per accepted event while posting went on, in µs. It covers ingest and the
    /// deliveries made meanwhile.
    pub daemon_cpu_us_per_accepted: f64,
    /// CPU used from the end of posting to the last delivery, in cores.
    pub drain_cpu: CpuUse,
    /// Deliveries per second after posting ended.
    pub drain_per_sec: f64,
    /// belterd's CPU per delivery after posting ended, in µs: the cost of delivering alone.
    pub daemon_cpu_us_per_drained: f64,
    /// The bench's CPU per delivery after posting ended, in µs: mostly its receiver's.
    pub bench_cpu_us_per_drained: f64,
    /// The speed probe's median while posting, in µs; lower is faster.
    pub posting_speed_probe_us: Option<f64>,
    /// The speed probe's median after posting, in µs.
    pub drain_speed_probe_us: Option<f64>,
    /// The machine's wake-ups per delivery after posting ended.
    pub drain_wakeups: Wakeups,
}

/// Results of the throughput scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    /// Concurrent posters.
    pub posters: usize,
    /// The phase's numbers.
    #[serde(flatten)]
    pub phase: PhaseResult,
    /// The baseline measured again right after the phase, in requests per second.
    pub baseline_after_per_sec: f64,
    /// The speed probe's median during that baseline, in µs; lower is faster.
    pub baseline_after_speed_probe_us: Option<f64>,
    /// CPU of the client and receiver per request in that baseline, in µs.
    pub baseline_after_cpu_us_per_request: f64,
    /// The machine's wake-ups per request in that baseline.
    pub baseline_after_wakeups: Wakeups,
    /// Delivered per second over the mean of the baseline before and after the phase.
    pub delivered_over_baseline: f64,
    /// The baselines' mean CPU per request over the CPU per delivered event of belterd and the
    /// bench together. It estimates the delivered share that the two cores allow when both
    /// phases keep them busy, and it moves less with the machine's speed than the rates do.
    pub cpu_ratio: f64,
}

/// Runs the throughput scenario.
pub async fn run(options: &Options, baseline: &BaselineResult) -> anyhow::Result<ThroughputResult> {
    let mut daemon = Daemon::start(
        &options.belterd,
        DaemonSettings::with_concurrency(options.concurrency),
    )
    .await?;
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    let created = daemon
        .client()
        .create_endpoint(&endpoint_request(
            &receiver.url("/hook"),
            EventSelection::All,
            "belter-bench fast receiver",
            false,
        )?)
        .await?;
    receiver.set_secret("/hook", &created.secret);
    let drain_timeout = MIN_DRAIN_TIMEOUT.max(options.duration * DRAIN_TIMEOUT_PER_POSTING);
    let phase = saturate("throughput", &daemon, &receiver, options, drain_timeout).await?;
    daemon.stop().await?;
    // Removing the store before `settle` keeps its deletion out of the next measurements.
    drop(daemon);
    // The machine's speed can drift within minutes, so the phase is compared with a baseline on
    // each side of it.
    crate::system::settle().await;
    let after = super::baseline::run(options, false).await?;
    let baseline_mean = (baseline.requests_per_sec + after.requests_per_sec) / 2.0;
    let event_cpu_us = phase.daemon_cpu_us_per_event + phase.bench_cpu_us_per_event;
    let result = ThroughputResult {
        posters: options.concurrency,
        baseline_after_per_sec: after.requests_per_sec,
        baseline_after_speed_probe_us: after.speed_probe_us,
        baseline_after_cpu_us_per_request: after.cpu_us_per_request,
        baseline_after_wakeups: after.wakeups,
        delivered_over_baseline: ratio(phase.delivered_per_sec, baseline_mean),
        cpu_ratio: ratio(
            (baseline.cpu_us_per_request + after.cpu_us_per_request) / 2.0,
            event_cpu_us,
        ),
        phase,
    };
    note(
        "throughput",
        &format!(
            "accepted {:.0}/s, delivered {:.0}/s ({:.0} % of the baselines' mean)",
            result.phase.accepted_per_sec,
            result.phase.delivered_per_sec,
            result.delivered_over_baseline * 100.0
        ),
    );
    Ok(result)
}

/// Posts events as fast as `daemon` accepts them for the run's duration, then waits until
/// `receiver` got one delivery per accepted event or `drain_timeout` passed.
pub async fn saturate(
    scenario: &'static str,
    daemon: &Daemon,
    receiver: &Arc<Receiver>,
    options: &Options,
    drain_timeout: Duration,
) -> anyhow::Result<PhaseResult> {
    let (url, body, events_per_post) = if options.batch > 1 {
        let url = format!("{}/batch", daemon.ingest_url());
        (
            url,
            batch_body(EVENT_TYPE, options.batch),
            options.batch as u64,
        )
    } else {
        (daemon.ingest_url().to_owned(), ingest_body(EVENT_TYPE), 1)
    };
    let client = IngestClient::new(&url, &daemon.token()?)?;
    let memory = daemon.pid().map(PeakMemory::start);
    let counts = Arc::new(PostCounts::default());
    let before = receiver.count();
    let ticker = {
        let counts = Arc::clone(&counts);
        let receiver = Arc::clone(receiver);
        Ticker::start(scenario, move |elapsed| {
            let accepted = counts.accepted();
            let delivered = receiver.count() - before;
            let seconds = elapsed.as_secs_f64();
            format!(
                "{seconds:.0}s: accepted {accepted} ({:.0}/s), delivered {delivered} ({:.0}/s), backlog {}",
                accepted as f64 / seconds,
                delivered as f64 / seconds,
                accepted.saturating_sub(delivered),
            )
        })
    };
    let cpu_meter = CpuMeter::start(daemon.pid());
    let started = Instant::now();
    post_closed_loop(
        &client,
        options.concurrency,
        PostLimit::for_duration(options.duration),
        Arc::clone(&counts),
        events_per_post,
        move |_| body.clone(),
    )
    .await;
    let post_time = started.elapsed();
    let posting_cpu = cpu_meter.read(post_time);
    let posting_speed_probe_us = speed::median_us(started, Instant::now());
    let drain_started = Instant::now();
    let drain_meter = CpuMeter::start(daemon.pid());
    let drain_wakeup_meter = WakeupMeter::start();
    let delivered_while_posting = receiver.count() - before;
    let accepted = counts.accepted();
    let drained = receiver
        .wait_for_count(before + accepted, drain_timeout)
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu_meter.read(elapsed);
    let drain_cpu = drain_meter.read(elapsed.saturating_sub(post_time));
    let drain_speed_probe_us = speed::median_us(drain_started, Instant::now());
    drop(ticker);

    let delivered = receiver.count() - before;
    let delivery_time = receiver.last_at().map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });
    let delivered_per_sec = per_second(delivered, delivery_time);
    let drain_per_sec = per_second(
        delivered - delivered_while_posting,
        elapsed.saturating_sub(post_time),
    );
    let accepted_per_sec = per_second(accepted, post_time);
    let drain_wakeups = drain_wakeup_meter.per(delivered - delivered_while_posting);
    Ok(PhaseResult {
        post_secs: post_time.as_secs_f64(),
        accepted,
        rejected: counts.rejected(),
        accepted_per_sec,
        delivered,
        delivered_per_sec,
        delivered_while_posting_per_sec: per_second(delivered_while_posting, post_time),
        drained,
        delivery_secs: delivery_time.as_secs_f64(),
        bad_signatures: receiver.bad_signatures(),
        rss_peak_mib: memory.map_or(0.0, |memory| memory.peak_mib()),
        cpu,
        daemon_cpu_us_per_event: micros_per(cpu.daemon_cores, delivered_per_sec),
        bench_cpu_us_per_event: micros_per(cpu.bench_cores, delivered_per_sec),
        posting_cpu,
        daemon_cpu_us_per_accepted: micros_per(posting_cpu.daemon_cores, accepted_per_sec),
        drain_cpu,
        drain_per_sec,
        daemon_cpu_us_per_drained: micros_per(drain_cpu.daemon_cores, drain_per_sec),
        bench_cpu_us_per_drained: micros_per(drain_cpu.bench_cores, drain_per_sec),
        posting_speed_probe_us,
        drain_speed_probe_us,
        drain_wakeups,
    })
}
