//! `belterd`: the webhook delivery daemon. Flags override the config file, which overrides the
//! embedded defaults. Subcommands check a config file or print completions and the man page
//! without starting the daemon.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use belter_daemon::config::{self, Config};
use belter_daemon::log_writer::{queued_stderr, DrainGuard, NoticeFormat};
use belter_daemon::packaging::{self, CompletionsArgs, ManArgs};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// jemalloc with one arena, as `.cargo/config.toml` sets it. In belter-bench on a 2-core machine it
/// cut belterd's CPU per delivered event by about a fifth. Batched ingest into a paused endpoint
/// rose from 15,700 to 20,300 events/s, and after a restart with 1M waiting deliveries it kept
/// 140 MiB where glibc's allocator kept 143 MiB. Returning freed pages after 100 ms keeps the peak
/// of sled's recovery at start near 130 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Belter Outbound's webhook delivery daemon: accepts events over HTTP and delivers them,
/// signed, to subscribed endpoints with retries. Without a subcommand it runs the daemon.
#[derive(Debug, Parser)]
#[command(name = "belterd", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    args: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a TOML config file without starting the daemon; exit 0 when it is valid, else 1
    /// with the file, line and key of the first error
    CheckConfig {
        /// The config file
        file: PathBuf,
    },
    /// Print a shell completion script to standard output
    Completions(CompletionsArgs),
    /// Print the man page to standard output, or write one page per command into a directory
    Man(ManArgs),
}

/// Format of the log lines on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One readable line per event, colored on a terminal.
    Human,
    /// One JSON object per line, with the event's fields at the top level.
    Json,
}

/// The daemon's flags.
#[derive(Debug, clap::Args)]
struct Args {
    /// TOML config file; flags given here override its keys.
    #[arg(long, env = "BELTER_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the store, the ingest token and the control socket
    /// [default: $XDG_DATA_HOME/belter or ~/.local/share/belter].
    #[arg(long, env = "BELTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the ingest API, such as 127.0.0.1:7700; port 0 picks a free port
    /// [default: 127.0.0.1:7700].
    #[arg(long)]
    ingest_addr: Option<String>,
    /// Path of the control socket [default: <data dir>/control.sock].
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// A group whose members may use the control socket; the socket then gets mode 0660
    /// instead of 0600.
    #[arg(long, value_name = "GROUP")]
    control_socket_group: Option<String>,
    /// Delays before each retry, comma-separated [default: 30s,5m,30m,2h,12h].
    #[arg(long)]
    retry_schedule: Option<String>,
    /// Time a receiver has to respond 2xx, body read included, such as 15s [default: 15s].
    #[arg(long)]
    attempt_timeout: Option<String>,
    /// How long deliveries, attempts and events are kept, such as 7d [default: 7d].
    #[arg(long)]
    retention: Option<String>,
    /// How often records past retention are pruned, such as 10m [default: 10m].
    #[arg(long)]
    retention_interval: Option<String>,
    /// Size limit of an ingest request body in bytes [default: 262144].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Limit of attempts in flight across all endpoints [default: 512].
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Limit of attempts in flight to one endpoint [default: 64].
    #[arg(long)]
    max_in_flight_per_endpoint: Option<usize>,
    /// An internal network that deliveries may reach, as a CIDR such as 127.0.0.0/8; repeat for
    /// more. Replaces the config file's allow_networks. Loopback, private, link-local and
    /// metadata addresses are blocked otherwise.
    #[arg(long = "allow-network", value_name = "CIDR")]
    allow_networks: Vec<String>,
    /// Time an endpoint may fail every attempt before belterd pauses it, such as 5d
    /// [default: 5d].
    #[arg(long)]
    auto_pause_after: Option<String>,
    /// Format of the log lines on standard error: human, or json for one object per line.
    #[arg(long, value_enum, env = "BELTER_LOG_FORMAT", default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

fn build_config(args: Args) -> anyhow::Result<Config> {
    let mut config = match &args.data_dir {
        Some(dir) => Config::with_data_dir(dir),
        None => Config::defaults()?,
    };
    // The group flag is checked and set first, so that it overrides the file's group, which is
    // then not checked.
    if let Some(group) = &args.control_socket_group {
        config.control_socket_group = Some(config::check_group(group.clone())?);
    }
    if let Some(path) = &args.config {
        config.apply_file(path)?;
    }
    if let Some(dir) = args.data_dir {
        let socket_was_default =
            config.control_socket == config.data_dir.join(config::CONTROL_SOCKET_NAME);
        config.data_dir = dir;
        if socket_was_default {
            config.control_socket = config.data_dir.join(config::CONTROL_SOCKET_NAME);
        }
    }
    if let Some(addr) = args.ingest_addr {
        config.ingest_addr = config::parse_addr(&addr)?;
    }
    if let Some(socket) = args.control_socket {
        config.control_socket = socket;
    }
    if let Some(schedule) = args.retry_schedule {
        config.retry_schedule = config::parse_schedule(&schedule)?;
    }
    if let Some(timeout) = args.attempt_timeout {
        config.attempt_timeout = config::parse_positive("attempt_timeout", &timeout)?;
    }
    if let Some(retention) = args.retention {
        config.retention = config::parse_positive("retention", &retention)?;
    }
    if let Some(interval) = args.retention_interval {
        config.retention_interval = config::parse_positive("retention_interval", &interval)?;
    }
    if let Some(bytes) = args.max_body_bytes {
        config.max_body_bytes = config::check_count("max_body_bytes", bytes)?;
    }
    if let Some(count) = args.max_in_flight {
        config.max_in_flight = config::check_count("max_in_flight", count)?;
    }
    if let Some(count) = args.max_in_flight_per_endpoint {
        config.max_in_flight_per_endpoint =
            config::check_count("max_in_flight_per_endpoint", count)?;
    }
    if let Some(period) = args.auto_pause_after {
        config.auto_pause_after = config::parse_positive("auto_pause_after", &period)?;
    }
    if !args.allow_networks.is_empty() {
        // Like every other flag, the list replaces the config file's, so it can also narrow it.
        config.allow_networks = args
            .allow_networks
            .iter()
            .map(|network| belter_daemon::parse_network(network))
            .collect::<Result<_, _>>()?;
    }
    if let Some(token) = std::env::var("BELTER_INGEST_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
    {
        config.ingest_token = Some(config::check_token("BELTER_INGEST_TOKEN", token)?);
    }
    Ok(config)
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn watch_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
    Ok(())
}

/// Sets up logging to standard error, filtered by `BELTER_LOG` (`info` when unset). The lines go
/// through a queue to a thread of their own, so a reader that stops reading cannot stall the
/// daemon. Keep the returned guard until the end: dropping it writes the queued lines.
fn init_logging(format: LogFormat) -> anyhow::Result<DrainGuard> {
    let requested = std::env::var("BELTER_LOG").ok();
    let mut invalid = None;
    let filter = match requested
        .as_deref()
        .map(tracing_subscriber::EnvFilter::try_new)
    {
        Some(Ok(filter)) => filter,
        Some(Err(error)) => {
            invalid = Some(error);
            tracing_subscriber::EnvFilter::new("info")
        }
        None => tracing_subscriber::EnvFilter::new("info"),
    };
    let notices = match format {
        LogFormat::Human => NoticeFormat::Text,
        LogFormat::Json => NoticeFormat::Json,
    };
    let (writer, guard) =
        queued_stderr(notices).context("cannot start the thread that writes the log")?;
    // A log line that cannot be written is dropped. Reporting it would write to the same closed
    // stderr, and that report panics, which would end the task that logged.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let (Some(error), Some(value)) = (invalid, requested) {
        tracing::warn!(
            value,
            %error,
            "invalid BELTER_LOG, so belterd logs at info: set it to a level such as debug, or to \
             directives such as info,belter_daemon=debug"
        );
    }
    Ok(guard)
}

/// Applies a config file to the defaults and reports the first error, without starting.
fn check_config(file: &Path) -> anyhow::Result<()> {
    // The data directory plays no part in checking the file's keys.
    let mut config = Config::with_data_dir(PathBuf::new());
    config.apply_file(file)?;
    println!("{}: valid", file.display());
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", file.display());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // The error and its causes on one line, as `FILE:LINE: ...` for a bad config, without the
    // backtrace that returning the error from `main` adds when RUST_BACKTRACE is set.
    match run_command().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => return check_config(&file),
        Some(Command::Completions(args)) => {
            packaging::write_completions(Cli::command(), &args, &mut std::io::stdout())
                .context("cannot write the completion script")?;
            return Ok(());
        }
        Some(Command::Man(args)) => {
            packaging::write_man(Cli::command(), &args, &mut std::io::stdout())
                .context("cannot write the man page")?;
            return Ok(());
        }
        None => {}
    }

    let _log_drain = init_logging(cli.args.log_format)?;
    let config = build_config(cli.args)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(shutdown.clone()));
    let result = belter_daemon::run(config, shutdown).await;
    signals.abort();
    result.context("belterd failed to start")
}
