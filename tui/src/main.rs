//! The `belter-tui` binary: parses options, sets up file logging, starts the demo when asked, and
//! runs the console. Errors end here, printed once on stderr after the terminal is restored.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use belter_common::client::ControlClient;
use belter_tui::cli::{default_socket_path, Args};
use belter_tui::{demo, event_loop, logging};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("belter-tui: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // Background tasks may still wait on the daemon; they are dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "belter-tui failed");
            // Written without `eprintln!`, which panics when the terminal is already gone.
            let _ = writeln!(std::io::stderr(), "belter-tui: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.log_file {
        logging::init_file_log(path, &args.log_level)?;
    }
    if args.demo {
        let demo = demo::Demo::start(args.belterd.clone()).await?;
        let result = event_loop::run(ControlClient::new(demo.socket())).await;
        demo.stop().await;
        return result;
    }
    let socket = args
        .socket
        .or_else(default_socket_path)
        .context("no control socket path: pass --socket PATH, or set HOME or XDG_DATA_HOME")?;
    event_loop::run(ControlClient::new(socket)).await
}
