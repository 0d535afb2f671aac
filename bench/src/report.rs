//! The report of a run: every scenario's results, the target checks, and the machine, written
//! as JSON and printed as a table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::options::Options;
use crate::percentiles::Spread;
use crate::scenarios::backlog::{BacklogResult, QueryResult, QueryTiming};
use crate::scenarios::baseline::{ratio, BaselineResult};
use crate::scenarios::fanout::FanoutResult;
use crate::scenarios::isolation::IsolationResult;
use crate::scenarios::latency::LatencyResult;
use crate::scenarios::throughput::ThroughputResult;
use crate::system::{CpuUse, Machine, Wakeups};
use crate::targets::TargetCheck;

/// The results of each scenario that ran.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// Signed POSTs without belterd.
    pub baseline: Option<BaselineResult>,
    /// Events as fast as accepted.
    pub throughput: Option<ThroughputResult>,
    /// Events at a fixed rate.
    pub latency: Option<LatencyResult>,
    /// One event to 100 endpoints.
    pub fanout: Option<FanoutResult>,
    /// A fast endpoint beside a dead one.
    pub isolation: Option<IsolationResult>,
    /// Memory, disk, restart and drain with a backlog.
    pub backlog: Option<BacklogResult>,
    /// Page queries over the backlog's deliveries.
    pub query: Option<QueryResult>,
}

/// A scenario that failed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioError {
    /// The scenario's name.
    pub scenario: String,
    /// The error with its causes.
    pub error: String,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started, RFC 3339.
    pub started_at: String,
    /// The bench's version.
    pub version: &'static str,
    /// The machine.
    pub machine: Machine,
    /// The run's settings.
    pub options: Options,
    /// Each scenario's results.
    pub results: Results,
    /// The targets and whether each passed.
    pub targets: Vec<TargetCheck>,
    /// Scenarios that failed to run.
    pub errors: Vec<ScenarioError>,
}

/// One table row: scenario, metric, value, and the value relative to the baseline.
type Row = (&'static str, String, String, String);

fn spread_text(spread: Option<Spread>) -> String {
    match spread {
        Some(spread) => format!(
            "p50 {:.2} / p99 {:.2} / max {:.2} ms",
            spread.p50_ms, spread.p99_ms, spread.max_ms
        ),
        None => "no samples".to_owned(),
    }
}

/// Formats speed probe medians as `a / b / c`, with `-` for a phase without a timing.
fn probe_text(medians: &[Option<f64>]) -> String {
    medians
        .iter()
        .map(|median| median.map_or("-".to_owned(), |micros| format!("{micros:.0}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn percent(ratio: f64) -> String {
    format!("{:.0} %", ratio * 100.0)
}

/// CPU per item of belterd and of the bench, with the cores each used.
fn cpu_split(daemon_us: f64, bench_us: f64, cpu: CpuUse) -> String {
    format!(
        "{daemon_us:.0} / {bench_us:.0} µs ({:.2} / {:.2} cores)",
        cpu.daemon_cores, cpu.bench_cores
    )
}

/// Formats wake-ups per item as `context switches / function-call interrupts`, with `-` for a
/// missing count.
fn wakeup_text(wakeups: Wakeups) -> String {
    let count = |count: Option<f64>| count.map_or("-".to_owned(), |count| format!("{count:.3}"));
    format!(
        "{} / {}",
        count(wakeups.context_switches),
        count(wakeups.call_interrupts)
    )
}

fn row(scenario: &'static str, metric: &str, value: String, relative: String) -> Row {
    (scenario, metric.to_owned(), value, relative)
}

fn query_row(timing: &QueryTiming) -> Row {
    row(
        "query",
        &format!("{} ({} rows)", timing.query, timing.returned),
        spread_text(timing.time),
        String::new(),
    )
}

impl Report {
    fn rows(&self) -> Vec<Row> {
        let results = &self.results;
        let mut rows = Vec::new();
        if let Some(baseline) = &results.baseline {
            rows.push(row(
                "baseline",
                "signed POSTs/s",
                format!("{:.0}", baseline.requests_per_sec),
                "100 %".to_owned(),
            ));
            rows.push(row(
                "baseline",
                "request time",
                spread_text(baseline.latency),
                String::new(),
            ));
            rows.push(row(
                "baseline",
                "CPU, client / receiver",
                format!(
                    "{:.2} / {:.2} cores, {:.0} µs per request",
                    baseline.client_cores, baseline.receiver_cores, baseline.cpu_us_per_request
                ),
                String::new(),
            ));
            rows.push(row(
                "baseline",
                "speed probe, µs (lower is faster)",
                probe_text(&[baseline.speed_probe_us]),
                String::new(),
            ));
            rows.push(row(
                "baseline",
                "wake-ups per request: switches / CPU calls",
                wakeup_text(baseline.wakeups),
                String::new(),
            ));
            if let Some(in_process) = &baseline.in_process {
                rows.push(row(
                    "baseline",
                    "client in the bench's process, POSTs/s",
                    format!(
                        "{:.0}, {:.0} µs CPU per request",
                        in_process.requests_per_sec, in_process.cpu_us_per_request
                    ),
                    percent(ratio(
                        in_process.requests_per_sec,
                        baseline.requests_per_sec,
                    )),
                ));
            }
        }
        if let Some(throughput) = &results.throughput {
            let phase = &throughput.phase;
            rows.push(row(
                "throughput",
                "accepted events/s",
                format!("{:.0}", phase.accepted_per_sec),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "baseline again, after the phase",
                format!("{:.0}", throughput.baseline_after_per_sec),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "speed probe, µs: posting / drain / baseline after",
                probe_text(&[
                    phase.posting_speed_probe_us,
                    phase.drain_speed_probe_us,
                    throughput.baseline_after_speed_probe_us,
                ]),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "delivered/s, over the baselines' mean",
                format!("{:.0}", phase.delivered_per_sec),
                percent(throughput.delivered_over_baseline),
            ));
            if !phase.drained {
                rows.push(row(
                    "throughput",
                    "delivered before the drain timeout",
                    format!("{} of {} accepted", phase.delivered, phase.accepted),
                    String::new(),
                ));
            }
            rows.push(row(
                "throughput",
                "peak RSS",
                format!("{:.1} MiB", phase.rss_peak_mib),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "CPU per event, belterd / bench",
                cpu_split(
                    phase.daemon_cpu_us_per_event,
                    phase.bench_cpu_us_per_event,
                    phase.cpu,
                ),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "baseline CPU per request over that sum",
                String::new(),
                percent(throughput.cpu_ratio),
            ));
            rows.push(row(
                "throughput",
                "while posting, belterd's CPU per accepted event",
                format!(
                    "{:.0} µs ({:.2} cores)",
                    phase.daemon_cpu_us_per_accepted, phase.posting_cpu.daemon_cores
                ),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "after posting, delivered/s",
                format!("{:.0}", phase.drain_per_sec),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "after posting, CPU per delivery, belterd / bench",
                cpu_split(
                    phase.daemon_cpu_us_per_drained,
                    phase.bench_cpu_us_per_drained,
                    phase.drain_cpu,
                ),
                String::new(),
            ));
            rows.push(row(
                "throughput",
                "wake-ups: drain per delivery | baseline after",
                format!(
                    "{} | {}",
                    wakeup_text(phase.drain_wakeups),
                    wakeup_text(throughput.baseline_after_wakeups)
                ),
                String::new(),
            ));
        }
        if let Some(latency) = &results.latency {
            let at = format!("at {}/s", latency.rate_per_sec);
            rows.push(row(
                "latency",
                &format!("post to 202 {at}"),
                spread_text(latency.accepted_latency),
                String::new(),
            ));
            rows.push(row(
                "latency",
                &format!("202 to receiver {at}"),
                spread_text(latency.delivery_latency),
                String::new(),
            ));
            rows.push(row(
                "latency",
                &format!("CPU per event {at}, µs: belterd / bench"),
                cpu_split(
                    latency.daemon_cpu_us_per_event,
                    latency.bench_cpu_us_per_event,
                    latency.cpu,
                ),
                String::new(),
            ));
        }
        if let Some(fanout) = &results.fanout {
            rows.push(row(
                "fanout",
                &format!("deliveries/s, {} endpoints", fanout.endpoints),
                format!("{:.0}", fanout.deliveries_per_sec),
                percent(fanout.over_baseline),
            ));
            rows.push(row(
                "fanout",
                "202 to all delivered",
                spread_text(fanout.time_to_all),
                String::new(),
            ));
        }
        if let Some(isolation) = &results.isolation {
            rows.push(row(
                "isolation",
                &format!(
                    "fast endpoint delivered/s alone, mean of {}",
                    isolation.alone.len()
                ),
                format!("{:.0}", isolation.alone_per_sec),
                String::new(),
            ));
            rows.push(row(
                "isolation",
                &format!(
                    "beside a dead endpoint, mean of {}",
                    isolation.beside_dead.len()
                ),
                format!("{:.0}", isolation.beside_dead_per_sec),
                percent(isolation.ratio),
            ));
            rows.push(row(
                "isolation",
                "CPU per event alone / beside, belterd; bench",
                format!(
                    "{:.0} / {:.0} µs; {:.0} / {:.0} µs",
                    isolation.alone_cpu.daemon_us,
                    isolation.beside_dead_cpu.daemon_us,
                    isolation.alone_cpu.bench_us,
                    isolation.beside_dead_cpu.bench_us
                ),
                String::new(),
            ));
        }
        if let Some(backlog) = &results.backlog {
            let size = format!("{} pending", backlog.created);
            rows.push(row(
                "backlog",
                &format!("build, {size}"),
                format!(
                    "{:.0} events/s, {:.0} s",
                    backlog.build_events_per_sec, backlog.build_secs
                ),
                String::new(),
            ));
            rows.push(row(
                "backlog",
                "RSS after build / restarted",
                format!(
                    "{:.1} / {:.1} MiB",
                    backlog.rss_after_build_mib, backlog.rss_after_restart_peak_mib
                ),
                String::new(),
            ));
            rows.push(row(
                "backlog",
                "store on disk",
                format!(
                    "{:.1} MiB ({:.0} B per delivery)",
                    backlog.store_disk_mib, backlog.store_bytes_per_delivery
                ),
                String::new(),
            ));
            rows.push(row(
                "backlog",
                "restart to first delivery",
                backlog
                    .restart_to_first_delivery_ms
                    .map_or("none".to_owned(), |ms| format!("{ms:.0} ms")),
                String::new(),
            ));
            rows.push(row(
                "backlog",
                "drain/s",
                format!("{:.0}", backlog.drain_per_sec),
                percent(backlog.drain_over_baseline),
            ));
            rows.push(row(
                "backlog",
                "drain CPU per delivery, belterd / bench",
                cpu_split(
                    backlog.drain_daemon_cpu_us_per_delivery,
                    backlog.drain_bench_cpu_us_per_delivery,
                    backlog.drain_cpu,
                ),
                String::new(),
            ));
        }
        if let Some(query) = &results.query {
            rows.push(query_row(&query.failed_page));
            rows.push(query_row(&query.newest_page));
            rows.push(query_row(&query.no_match));
        }
        rows
    }

    /// Formats the result table and the target checks as plain text.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let header: Row = (
            "scenario",
            "metric".to_owned(),
            "value".to_owned(),
            "vs baseline".to_owned(),
        );
        let widths = std::iter::once(&header).chain(&rows).fold(
            [0usize; 3],
            |widths, (scenario, metric, value, _)| {
                [
                    widths[0].max(scenario.len()),
                    widths[1].max(metric.chars().count()),
                    widths[2].max(value.chars().count()),
                ]
            },
        );
        let mut text = String::new();
        for (scenario, metric, value, relative) in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                text,
                "{scenario:<w0$}  {metric:<w1$}  {value:<w2$}  {relative}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(text, "\ntargets:");
        }
        for check in &self.targets {
            let verdict = if check.pass { "pass" } else { "MISS" };
            let note = check
                .note
                .as_deref()
                .map(|note| format!(" ({note})"))
                .unwrap_or_default();
            let _ = writeln!(
                text,
                "  {verdict}  {}: {:.2} {}, target {}{note}",
                check.name, check.measured, check.unit, check.target
            );
        }
        for error in &self.errors {
            let _ = writeln!(text, "\nerror in {}: {}", error.scenario, error.error);
        }
        text
    }
}
