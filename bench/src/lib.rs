//! `belter-bench`: measures belterd end to end on this machine against a baseline of signed
//! POSTs from a plain client, and compares the results with the project's targets. Every
//! server it starts and every request it sends stays on the loopback interface.

pub mod daemon;
pub mod ingest;
pub mod memory;
pub mod options;
pub mod payload;
pub mod percentiles;
pub mod progress;
pub mod receiver;
pub mod report;
pub mod scenarios;
pub mod speed;
pub mod system;
pub mod targets;

use belter_common::Timestamp;

use crate::options::{Options, Scenario};
use crate::progress::note;
use crate::report::{Report, Results, ScenarioError};
use crate::scenarios::{backlog, baseline, fanout, isolation, latency, throughput};

/// Runs the selected scenarios in order. A scenario that fails is recorded in the report's
/// errors and the others still run. Only a failed baseline ends the run, because every ratio
/// needs it.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let started_at = Timestamp::now().to_rfc3339();
    let mut results = Results::default();
    let mut errors = Vec::new();
    let mut record = |scenario: &str, error: anyhow::Error| {
        note(scenario, &format!("failed: {error:#}"));
        errors.push(ScenarioError {
            scenario: scenario.to_owned(),
            error: format!("{error:#}"),
        });
    };

    speed::start();
    system::settle().await;
    let baseline = baseline::run(&options, true).await?;
    if options.runs(Scenario::Throughput) {
        system::settle().await;
        match throughput::run(&options, &baseline).await {
            Ok(result) => results.throughput = Some(result),
            Err(error) => record("throughput", error),
        }
    }
    if options.runs(Scenario::Latency) {
        system::settle().await;
        match latency::run(&options).await {
            Ok(result) => results.latency = Some(result),
            Err(error) => record("latency", error),
        }
    }
    if options.runs(Scenario::Fanout) {
        system::settle().await;
        match fanout::run(&options, &baseline).await {
            Ok(result) => results.fanout = Some(result),
            Err(error) => record("fanout", error),
        }
    }
    if options.runs(Scenario::Isolation) {
        system::settle().await;
        match isolation::run(&options).await {
            Ok(result) => results.isolation = Some(result),
            Err(error) => record("isolation", error),
        }
    }
    if options.runs(Scenario::Backlog) || options.runs(Scenario::Query) {
        system::settle().await;
        match backlog::run(&options, &baseline).await {
            Ok(outcome) => {
                results.backlog = outcome.backlog;
                results.query = outcome.query;
            }
            Err(error) => record("backlog", error),
        }
    }
    results.baseline = Some(baseline);

    speed::stop();
    let targets = targets::check(&results);
    Ok(Report {
        started_at,
        version: env!("CARGO_PKG_VERSION"),
        machine: system::Machine::current(),
        options,
        results,
        targets,
        errors,
    })
}
