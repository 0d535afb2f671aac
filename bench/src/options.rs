//! The scenarios of a benchmark run and its settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// One measured scenario. The baseline always runs, because every other scenario is reported
/// as a ratio to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Signed POSTs straight from a plain client to the receiver, without belterd.
    Baseline,
    /// Events posted as fast as belterd accepts them, delivered to a fast receiver.
    Throughput,
    /// Events posted at a fixed rate; the time to the 202 and from the 202 to the receiver.
    Latency,
    /// One event to 100 endpoints.
    Fanout,
    /// A fast endpoint beside one that never responds.
    Isolation,
    /// A large backlog of pending deliveries: memory, disk, restart and drain.
    Backlog,
    /// The console's page queries over the backlog's stored deliveries.
    Query,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 7] = [
        Scenario::Baseline,
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::Fanout,
        Scenario::Isolation,
        Scenario::Backlog,
        Scenario::Query,
    ];
}

/// Settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The scenarios to run, sorted and without repeats; the baseline is always among them.
    pub scenarios: Vec<Scenario>,
    /// Length of each timed phase.
    #[serde(serialize_with = "serialize_secs")]
    pub duration: Duration,
    /// Requests in flight: baseline requests, ingest posters, and belterd's
    /// `--max-in-flight-per-endpoint`.
    pub concurrency: usize,
    /// Pending deliveries the backlog scenario creates.
    pub backlog: u64,
    /// Events per second the latency scenario posts.
    pub rate: u32,
    /// Events per ingest request of the throughput, isolation and backlog posters.
    pub batch: usize,
    /// The `belterd` binary.
    pub belterd: PathBuf,
}

impl Options {
    /// Checks whether `scenario` is selected.
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// Selects the scenarios for `requested`: every scenario for an empty list, and always the
    /// baseline.
    pub fn select(requested: &[Scenario]) -> Vec<Scenario> {
        let mut scenarios = if requested.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            requested.to_vec()
        };
        scenarios.push(Scenario::Baseline);
        scenarios.sort();
        scenarios.dedup();
        scenarios
    }
}

fn serialize_secs<S: serde::Serializer>(
    value: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_adds_baseline() {
        let selected = Options::select(&[Scenario::Query, Scenario::Throughput]);
        assert_eq!(
            selected,
            vec![Scenario::Baseline, Scenario::Throughput, Scenario::Query]
        );
    }

    #[test]
    fn select_empty_means_all() {
        assert_eq!(Options::select(&[]), Scenario::ALL.to_vec());
    }
}
