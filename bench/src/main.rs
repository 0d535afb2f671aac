//! `belter-bench`: runs the benchmark scenarios against a `belterd` child process, prints a
//! table to standard output and progress to standard error, and writes the report as JSON.

use std::path::PathBuf;

use anyhow::Context;
use belter_bench::options::{Options, Scenario};
use belter_bench::scenarios::baseline;
use clap::Parser;

/// A scenario on the command line: one of [`Scenario`], or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScenarioChoice {
    /// Every scenario.
    All,
    /// Signed POSTs from a plain client straight to the receiver.
    Baseline,
    /// Events as fast as belterd accepts them.
    Throughput,
    /// Events at a fixed rate: time to the 202 and to the receiver.
    Latency,
    /// One event to 100 endpoints.
    Fanout,
    /// A fast endpoint beside one that never responds.
    Isolation,
    /// A backlog of pending deliveries: memory, disk, restart, drain.
    Backlog,
    /// The console's page queries over the backlog.
    Query,
}

/// Measures belterd end to end on this machine. Every server and request stays on 127.0.0.1.
/// The baseline always runs, because the other scenarios are reported relative to it.
#[derive(Debug, Parser)]
#[command(name = "belter-bench", version)]
struct Args {
    /// Scenario to run; repeat for several [default: all].
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<ScenarioChoice>,
    /// Length of each timed phase, such as 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Requests in flight: baseline requests, concurrent ingest posters, and belterd's
    /// --max-in-flight-per-endpoint.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Pending deliveries the backlog scenario builds.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    backlog: u64,
    /// Events per second of the latency scenario.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Events per ingest request in the throughput, isolation and backlog scenarios; above 1
    /// they are posted to /v1/events/batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    batch: u32,
    /// File the JSON report is written to.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// The belterd binary [default: belterd next to this program].
    #[arg(long)]
    belterd: Option<PathBuf>,
    /// Runs only the baseline's client against this receiver URL for --duration and prints its
    /// report as JSON. The bench starts itself this way, so the client has a process of its own.
    #[arg(long, hide = true)]
    baseline_client: Option<String>,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match belter_common::duration::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be longer than zero".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

fn scenarios(choices: &[ScenarioChoice]) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for choice in choices {
        match choice {
            ScenarioChoice::All => scenarios.extend(Scenario::ALL),
            ScenarioChoice::Baseline => scenarios.push(Scenario::Baseline),
            ScenarioChoice::Throughput => scenarios.push(Scenario::Throughput),
            ScenarioChoice::Latency => scenarios.push(Scenario::Latency),
            ScenarioChoice::Fanout => scenarios.push(Scenario::Fanout),
            ScenarioChoice::Isolation => scenarios.push(Scenario::Isolation),
            ScenarioChoice::Backlog => scenarios.push(Scenario::Backlog),
            ScenarioChoice::Query => scenarios.push(Scenario::Query),
        }
    }
    Options::select(&scenarios)
}

fn default_belterd() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running program")?;
    let dir = exe
        .parent()
        .context("the running program has no parent directory")?;
    Ok(dir.join("belterd"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.baseline_client {
        return baseline::client_main(url, args.concurrency as usize, args.duration).await;
    }
    let scenarios = scenarios(&args.scenarios);
    let belterd = match args.belterd {
        Some(path) => path,
        None => default_belterd()?,
    };
    // The baseline alone runs no daemon, so it needs no belterd program.
    if scenarios
        .iter()
        .any(|scenario| *scenario != Scenario::Baseline)
    {
        anyhow::ensure!(
            !belterd.is_dir(),
            "{} is a directory: pass the belterd program itself with --belterd PATH",
            belterd.display()
        );
        anyhow::ensure!(
            belterd.is_file(),
            "{} does not exist: build it with `cargo build --release -p belter-daemon`, or pass --belterd PATH",
            belterd.display()
        );
    }
    // A report path that cannot be written fails at once instead of after minutes of
    // measuring. The check opens the file without truncating it, so an earlier report survives
    // a run that is stopped.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&args.json)
        .with_context(|| {
            format!(
                "cannot create the report file {}: pass --json with a path in a writable directory",
                args.json.display()
            )
        })?;
    let options = Options {
        scenarios,
        duration: args.duration,
        concurrency: args.concurrency as usize,
        backlog: args.backlog,
        rate: args.rate,
        batch: args.batch as usize,
        belterd,
    };
    let report = belter_bench::run(options).await?;
    print!("{}", report.table());
    let json = serde_json::to_vec_pretty(&report).context("cannot encode the report")?;
    std::fs::write(&args.json, json)
        .with_context(|| format!("cannot write the report to {}", args.json.display()))?;
    eprintln!("report written to {}", args.json.display());
    if !report.errors.is_empty() {
        anyhow::bail!(
            "{} scenario(s) failed; see the errors above",
            report.errors.len()
        );
    }
    Ok(())
}
