//! The targets a run is compared with, and whether each one passed.

use serde::Serialize;

use crate::report::Results;

/// Backlog size the memory and restart targets are stated for.
pub const TARGET_BACKLOG: u64 = 1_000_000;

/// One target and how the run compares with it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// Name of the measured quantity.
    pub name: &'static str,
    /// The target as text, such as `>= 70 %`.
    pub target: String,
    /// The measured value, in `unit`.
    pub measured: f64,
    /// Unit of `measured`.
    pub unit: &'static str,
    /// Whether the measured value meets the target.
    pub pass: bool,
    /// Caveat of the comparison, such as a smaller backlog than the target's.
    pub note: Option<String>,
}

fn at_least(name: &'static str, measured: f64, minimum: f64, unit: &'static str) -> TargetCheck {
    TargetCheck {
        name,
        target: format!(">= {minimum} {unit}"),
        measured,
        unit,
        pass: measured >= minimum,
        note: None,
    }
}

fn below(name: &'static str, measured: f64, maximum: f64, unit: &'static str) -> TargetCheck {
    TargetCheck {
        name,
        target: format!("< {maximum} {unit}"),
        measured,
        unit,
        pass: measured < maximum,
        note: None,
    }
}

/// Checks every target whose scenario ran.
pub fn check(results: &Results) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    if let Some(throughput) = &results.throughput {
        checks.push(at_least(
            "delivered/s over the baselines' mean",
            throughput.delivered_over_baseline * 100.0,
            70.0,
            "%",
        ));
        checks.push(at_least(
            "accepted events/s",
            throughput.phase.accepted_per_sec,
            20_000.0,
            "events/s",
        ));
    }
    if let Some(spread) = results
        .latency
        .as_ref()
        .and_then(|latency| latency.delivery_latency)
    {
        let mut check = below("p99 202 to receiver", spread.p99_ms, 10.0, "ms");
        if let Some(latency) = &results.latency {
            check.note = Some(format!("at {} events/s", latency.rate_per_sec));
        }
        checks.push(check);
    }
    if let Some(isolation) = &results.isolation {
        checks.push(at_least("isolation", isolation.ratio * 100.0, 95.0, "%"));
    }
    let smaller_backlog = |created: u64| {
        (created < TARGET_BACKLOG).then(|| format!("measured with {created} deliveries, not 1M"))
    };
    if let Some(backlog) = &results.backlog {
        let mut memory = below(
            "RSS with backlog",
            backlog.rss_with_backlog_mib,
            150.0,
            "MiB",
        );
        memory.note = smaller_backlog(backlog.created);
        checks.push(memory);
        if let Some(restart) = backlog.restart_to_first_delivery_ms {
            let mut check = below("restart to first delivery", restart / 1000.0, 2.0, "s");
            check.note = smaller_backlog(backlog.created);
            checks.push(check);
        }
    }
    if let Some(time) = results
        .query
        .as_ref()
        .and_then(|query| query.failed_page.time)
    {
        let mut check = below("failed page query p50", time.p50_ms, 20.0, "ms");
        check.note = results
            .query
            .as_ref()
            .and_then(|query| smaller_backlog(query.deliveries_stored));
        checks.push(check);
    }
    checks
}
