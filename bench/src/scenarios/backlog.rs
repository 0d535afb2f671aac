//! The backlog: N events posted to a paused endpoint, so N deliveries wait in the store. One in
//! every [`FAILED_EVERY`] events also goes to an endpoint on a closed port, and with no retries
//! configured those deliveries fail, which gives the console's failed-status query something
//! to find. With the backlog built, this measures belterd's memory and store size, the page
//! queries, and, after resuming the endpoint, a restart until the first delivery and the drain
//! rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use belter_common::api::DeliveryQuery;
use belter_common::client::ControlClient;
use belter_common::records::{DeliveryStatus, EventSelection};
use belter_common::EventType;
use serde::Serialize;

use super::baseline::{micros_per, per_second, BaselineResult};
use crate::daemon::{endpoint_request, Daemon, DaemonSettings};
use crate::ingest::{post_closed_loop, IngestClient, PostCounts, PostLimit};
use crate::memory::PeakMemory;
use crate::options::{Options, Scenario};
use crate::payload::{batch_of, ingest_body};
use crate::percentiles::{millis_between, Spread};
use crate::progress::{note, Ticker};
use crate::receiver::{Behaviour, Receiver};
use crate::system::{disk_usage_bytes, resident_bytes, CpuMeter, CpuUse, MIB};

/// One event in this many is a `csat.received`, which the failing endpoint also takes.
pub const FAILED_EVERY: u64 = 100;

/// Maximum time the backlog build may take. It stops there and reports the size it reached.
const BUILD_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Time the failing endpoint's attempts have to end after the build.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Pause between two looks at the pending count while the failing attempts end.
const SETTLE_POLL: Duration = Duration::from_millis(200);

/// Time the first delivery has to arrive after a resume or a restart.
const FIRST_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs of each page query.
const QUERY_RUNS: usize = 20;

/// Runs of the query whose filter matches nothing, which reads the whole log each time.
const FULL_SCAN_QUERY_RUNS: usize = 5;

/// Maximum total time of one query kind. No further runs start past it.
const QUERY_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Results of the backlog scenario.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogResult {
    /// Pending deliveries requested with `--backlog`.
    pub requested: u64,
    /// Pending deliveries created: one per accepted event.
    pub created: u64,
    /// Time the build took, in seconds.
    pub build_secs: f64,
    /// Accepted events per second during the build, with the endpoint paused.
    pub build_events_per_sec: f64,
    /// Peak resident memory of belterd during the build, in MiB.
    pub rss_build_peak_mib: f64,
    /// Resident memory of belterd holding the backlog after the build, in MiB.
    pub rss_after_build_mib: f64,
    /// Peak resident memory of the restarted belterd while it drained, in MiB.
    pub rss_after_restart_peak_mib: f64,
    /// The larger of the two memory figures with the backlog held, in MiB.
    pub rss_with_backlog_mib: f64,
    /// Space the store takes on disk, in MiB.
    pub store_disk_mib: f64,
    /// Store space per created delivery, in bytes; each event and its attempts included.
    pub store_bytes_per_delivery: f64,
    /// Time from the resume to the first delivery, in ms.
    pub resume_to_first_delivery_ms: Option<f64>,
    /// Time belterd took to exit after SIGTERM, in seconds.
    pub stop_secs: f64,
    /// Time from spawning belterd again to its first health response, in ms.
    pub restart_to_healthy_ms: f64,
    /// Time from spawning belterd again to the first delivery, in ms.
    pub restart_to_first_delivery_ms: Option<f64>,
    /// Deliveries drained after the restart within the run's duration.
    pub drained: u64,
    /// Deliveries per second from the first to the last drained delivery.
    pub drain_per_sec: f64,
    /// Drain rate over the baseline's requests per second.
    pub drain_over_baseline: f64,
    /// CPU used from the first drained delivery to the end of the drain. No ingest runs then,
    /// so this is the cost of delivering alone.
    pub drain_cpu: CpuUse,
    /// belterd's CPU per drained delivery, in µs: reading the due index and the event,
    /// the attempt, and writing its outcome.
    pub drain_daemon_cpu_us_per_delivery: f64,
    /// The bench's CPU per drained delivery, in µs: its receiver.
    pub drain_bench_cpu_us_per_delivery: f64,
    /// Deliveries whose signature did not verify.
    pub bad_signatures: u64,
}

/// Timings of one page query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    /// The query string.
    pub query: String,
    /// Deliveries in the returned page.
    pub returned: usize,
    /// Time per query over the control socket, connection included.
    pub time: Option<Spread>,
}

/// Results of the query scenario.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Deliveries in the store, failed ones included.
    pub deliveries_stored: u64,
    /// The console's page: 50 newest failed deliveries of one event type.
    pub failed_page: QueryTiming,
    /// The 50 newest deliveries, unfiltered.
    pub newest_page: QueryTiming,
    /// A filter that matches nothing, so the whole log is read.
    pub no_match: QueryTiming,
}

/// The backlog's and the queries' results; each is present when its scenario was selected.
#[derive(Debug, Default)]
pub struct BacklogOutcome {
    /// The backlog scenario.
    pub backlog: Option<BacklogResult>,
    /// The query scenario.
    pub query: Option<QueryResult>,
}

/// Returns the event types of the backlog other than the failing endpoint's.
fn other_types() -> Vec<EventType> {
    EventType::ALL
        .into_iter()
        .filter(|kind| *kind != EventType::CsatReceived)
        .collect()
}

/// Builds the backlog, then runs the selected parts of the backlog and query scenarios.
pub async fn run(options: &Options, baseline: &BaselineResult) -> anyhow::Result<BacklogOutcome> {
    let settings = DaemonSettings {
        // No retries, so the failing endpoint's deliveries end as `failed` at once.
        retry_schedule: String::new(),
        ..DaemonSettings::with_concurrency(options.concurrency)
    };
    let mut daemon = Daemon::start(&options.belterd, settings).await?;
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    let control = daemon.client();
    let backlog_endpoint = control
        .create_endpoint(&endpoint_request(
            &receiver.url("/hook"),
            EventSelection::All,
            "belter-bench backlog",
            true,
        )?)
        .await?;
    receiver.set_secret("/hook", &backlog_endpoint.secret);
    let closed_port = closed_port()?;
    control
        .create_endpoint(&endpoint_request(
            &format!("http://127.0.0.1:{closed_port}/hook"),
            EventSelection::Only(vec![EventType::CsatReceived]),
            "belter-bench closed port",
            false,
        )?)
        .await?;

    let pid = daemon.pid().context("belterd is not running")?;
    let build_memory = PeakMemory::start(pid);
    let (created, build_time) = build(&daemon, options).await?;
    let failed = created.div_ceil(FAILED_EVERY);
    wait_for_pending(&control, created).await?;
    let rss_build_peak_mib = build_memory.peak_mib();
    drop(build_memory);
    let rss_after_build_mib = resident_bytes(pid).unwrap_or(0) as f64 / MIB;
    let store_bytes = disk_usage_bytes(&daemon.store_dir())? as f64;
    note(
        "backlog",
        &format!(
            "{created} pending, {failed} failed; RSS {rss_after_build_mib:.1} MiB, store {:.1} MiB",
            store_bytes / MIB
        ),
    );

    let mut outcome = BacklogOutcome::default();
    if options.runs(Scenario::Query) {
        outcome.query = Some(run_queries(&control, created + failed).await?);
    }
    if !options.runs(Scenario::Backlog) {
        daemon.stop().await?;
        return Ok(outcome);
    }

    let resumed = Instant::now();
    control
        .resume_endpoint(&backlog_endpoint.endpoint.id)
        .await?;
    let resume_to_first_delivery_ms = receiver
        .wait_for_count(1, FIRST_DELIVERY_TIMEOUT)
        .await
        .then(|| {
            receiver
                .first_at()
                .map(|first| millis_between(resumed, first))
        })
        .flatten();
    let stop_time = daemon.stop().await?;
    note(
        "backlog",
        &format!("stopped in {:.2} s, restarting", stop_time.as_secs_f64()),
    );

    let before = receiver.count();
    receiver.reset_first();
    let spawned = Instant::now();
    daemon.restart().await?;
    let restart_to_healthy = spawned.elapsed();
    let pid = daemon.pid().context("belterd is not running")?;
    let drain_memory = PeakMemory::start(pid);
    let restart_to_first_delivery_ms = receiver
        .wait_for_count(before + 1, FIRST_DELIVERY_TIMEOUT)
        .await
        .then(|| {
            receiver
                .first_at()
                .map(|first| millis_between(spawned, first))
        })
        .flatten();
    let drain_started = receiver.first_at().unwrap_or_else(Instant::now);
    let drain_cpu_meter = CpuMeter::start(Some(pid));
    let drain_cpu_started = Instant::now();
    let drained_before_meter = receiver.count();
    {
        let watched = Arc::clone(&receiver);
        let _ticker = Ticker::start("backlog", move |elapsed| {
            format!(
                "draining {:.0}s: {} of {created} delivered",
                elapsed.as_secs_f64(),
                watched.count()
            )
        });
        receiver.wait_for_count(created, options.duration).await;
    }
    let drained = receiver.count() - before;
    let drain_time = receiver.last_at().map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(drain_started)
    });
    let drain_per_sec = per_second(drained, drain_time);
    let metered_time = drain_cpu_started.elapsed();
    let drain_cpu = drain_cpu_meter.read(metered_time);
    let metered_per_sec = per_second(receiver.count() - drained_before_meter, metered_time);
    let rss_after_restart_peak_mib = drain_memory.peak_mib();

    let result = BacklogResult {
        requested: options.backlog,
        created,
        build_secs: build_time.as_secs_f64(),
        build_events_per_sec: per_second(created, build_time),
        rss_build_peak_mib,
        rss_after_build_mib,
        rss_after_restart_peak_mib,
        rss_with_backlog_mib: rss_after_build_mib.max(rss_after_restart_peak_mib),
        store_disk_mib: store_bytes / MIB,
        store_bytes_per_delivery: store_bytes / (created + failed).max(1) as f64,
        resume_to_first_delivery_ms,
        stop_secs: stop_time.as_secs_f64(),
        restart_to_healthy_ms: restart_to_healthy.as_secs_f64() * 1000.0,
        restart_to_first_delivery_ms,
        drained,
        drain_per_sec,
        drain_over_baseline: drain_per_sec / baseline.requests_per_sec,
        drain_cpu,
        drain_daemon_cpu_us_per_delivery: micros_per(drain_cpu.daemon_cores, metered_per_sec),
        drain_bench_cpu_us_per_delivery: micros_per(drain_cpu.bench_cores, metered_per_sec),
        bad_signatures: receiver.bad_signatures(),
    };
    note(
        "backlog",
        &format!(
            "restart to first delivery {:.0} ms, drain {:.0}/s",
            result.restart_to_first_delivery_ms.unwrap_or(f64::NAN),
            result.drain_per_sec
        ),
    );
    daemon.stop().await?;
    outcome.backlog = Some(result);
    Ok(outcome)
}

/// Posts `--backlog` events, or as many as fit in [`BUILD_TIME_LIMIT`]; returns the accepted
/// count and the time taken.
async fn build(daemon: &Daemon, options: &Options) -> anyhow::Result<(u64, Duration)> {
    let batch = options.batch as u64;
    let url = if batch > 1 {
        format!("{}/batch", daemon.ingest_url())
    } else {
        daemon.ingest_url().to_owned()
    };
    let client = IngestClient::new(&url, &daemon.token()?)?;
    let counts = Arc::new(PostCounts::default());
    let requested = options.backlog;
    let pid = daemon.pid();
    let _ticker = {
        let counts = Arc::clone(&counts);
        Ticker::start("backlog", move |elapsed| {
            let accepted = counts.accepted();
            let rate = accepted as f64 / elapsed.as_secs_f64();
            let left = requested.saturating_sub(accepted) as f64 / rate.max(1.0);
            let rss = pid.and_then(resident_bytes).unwrap_or(0) as f64 / MIB;
            format!(
                "building {accepted} of {requested} ({rate:.0}/s, about {left:.0} s left), RSS {rss:.1} MiB"
            )
        })
    };
    note(
        "backlog",
        &format!("posting {requested} events to a paused endpoint"),
    );
    let others = other_types();
    // Event number `n` of the build: one in FAILED_EVERY also goes to the failing endpoint.
    let kind_of = move |number: u64| {
        if number % FAILED_EVERY == 0 {
            EventType::CsatReceived
        } else {
            others[(number % others.len() as u64) as usize]
        }
    };
    let started = Instant::now();
    post_closed_loop(
        &client,
        options.concurrency,
        PostLimit {
            until: started + BUILD_TIME_LIMIT,
            max_posts: requested.div_ceil(batch),
        },
        Arc::clone(&counts),
        batch,
        move |post| {
            if batch == 1 {
                ingest_body(kind_of(post))
            } else {
                let kinds: Vec<EventType> =
                    (post * batch..(post + 1) * batch).map(&kind_of).collect();
                batch_of(&kinds)
            }
        },
    )
    .await;
    let elapsed = started.elapsed();
    if counts.rejected() > 0 {
        note(
            "backlog",
            &format!("{} posts were rejected", counts.rejected()),
        );
    }
    if counts.accepted() < requested {
        note(
            "backlog",
            &format!(
                "stopped at {} events after {BUILD_TIME_LIMIT:?}",
                counts.accepted()
            ),
        );
    }
    Ok((counts.accepted(), elapsed))
}

/// Waits until only the paused endpoint's `pending` deliveries wait, so the failing endpoint's
/// attempts are over.
async fn wait_for_pending(control: &ControlClient, pending: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let stats = control.stats(None).await?;
        if stats.pending <= pending {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} deliveries still pending {SETTLE_TIMEOUT:?} after the build, expected {pending}",
                stats.pending
            );
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Times the page queries over the stored deliveries.
async fn run_queries(control: &ControlClient, stored: u64) -> anyhow::Result<QueryResult> {
    note(
        "query",
        &format!("page queries over {stored} stored deliveries"),
    );
    let page = |status, event| DeliveryQuery {
        status,
        event,
        limit: Some(50),
        ..DeliveryQuery::default()
    };
    let failed_page = time_query(
        control,
        &page(Some(DeliveryStatus::Failed), Some(EventType::CsatReceived)),
        QUERY_RUNS,
    )
    .await?;
    let newest_page = time_query(control, &page(None, None), QUERY_RUNS).await?;
    let no_match = time_query(
        control,
        &page(
            Some(DeliveryStatus::Failed),
            Some(EventType::FrustrationDetected),
        ),
        FULL_SCAN_QUERY_RUNS,
    )
    .await?;
    for timing in [&failed_page, &newest_page, &no_match] {
        if let Some(time) = &timing.time {
            note(
                "query",
                &format!(
                    "{}: {} rows, p50 {:.1} ms, max {:.1} ms",
                    timing.query, timing.returned, time.p50_ms, time.max_ms
                ),
            );
        }
    }
    Ok(QueryResult {
        deliveries_stored: stored,
        failed_page,
        newest_page,
        no_match,
    })
}

async fn time_query(
    control: &ControlClient,
    query: &DeliveryQuery,
    runs: usize,
) -> anyhow::Result<QueryTiming> {
    let text = query_text(query);
    let started = Instant::now();
    let mut times_ms = Vec::with_capacity(runs);
    let mut returned = 0;
    for _ in 0..runs {
        let sent = Instant::now();
        let page = control
            .list_deliveries(query)
            .await
            .with_context(|| format!("query {text} failed"))?;
        times_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        returned = page.deliveries.len();
        if started.elapsed() > QUERY_TIME_LIMIT {
            break;
        }
    }
    Ok(QueryTiming {
        query: text,
        returned,
        time: Spread::of(&times_ms),
    })
}

/// Formats the query string as the console sends it.
fn query_text(query: &DeliveryQuery) -> String {
    let mut parts = Vec::new();
    if let Some(status) = query.status {
        parts.push(format!("status={}", status.as_str()));
    }
    if let Some(event) = query.event {
        parts.push(format!("event={event}"));
    }
    if let Some(limit) = query.limit {
        parts.push(format!("limit={limit}"));
    }
    parts.join("&")
}

/// Returns a loopback port with no listener: bound, then released.
// NOTE: another process could bind the port after its release; the failed count assumes none does.
fn closed_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}
