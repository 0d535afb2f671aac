//! `belter`, the command line client of belterd for scripts and operators. It talks to the
//! daemon's control API over the Unix socket and prints tables, or the API's JSON with `--json`.

mod cli;
mod confirm;
mod deliveries;
mod endpoints;
mod events;
mod output;
mod pretty_json;
mod replay;
mod rules;
mod socket;
mod status;
mod table;
mod times;

use std::process::ExitCode;

use anyhow::Context;
use belter_common::client::{ClientError, ControlClient};
use belter_daemon::packaging;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

/// Exit status of a failed command or a request belterd rejected.
const EXIT_FAILURE: u8 = 1;
/// Exit status when belterd does not listen on the control socket.
const EXIT_NOT_RUNNING: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            exit_code(&error)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // These two print documentation and need no daemon, so they run before the socket lookup.
    match &cli.command {
        Command::Completions(args) => {
            return packaging::write_completions(Cli::command(), args, &mut std::io::stdout())
                .context("cannot write the completion script");
        }
        Command::Man(args) => {
            return packaging::write_man(Cli::command(), args, &mut std::io::stdout())
                .context("cannot write the man page");
        }
        _ => {}
    }
    let socket = match cli.socket {
        Some(path) => path,
        None => socket::default_socket_path()?,
    };
    let client = ControlClient::new(socket);
    let json = cli.json;
    match cli.command {
        Command::Endpoints(command) => endpoints::run(&client, json, command).await,
        Command::Events(command) => events::run(&client, json, command).await,
        Command::Deliveries(command) => deliveries::run(&client, json, command).await,
        Command::Rules(command) => rules::run(&client, json, command).await,
        Command::RotateIngestToken(args) => {
            status::rotate_ingest_token(&client, json, args.grace.as_deref()).await
        }
        Command::Replay(args) => replay::run(&client, json, args).await,
        Command::Stats(args) => status::stats(&client, json, args.window.as_deref()).await,
        Command::Health => status::health(&client, json).await,
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}

/// Formats an error with its causes. An unreachable daemon gets its own message, because the
/// client's message already contains the connect error that the cause chain would repeat.
fn describe(error: &anyhow::Error) -> String {
    match error.downcast_ref::<ClientError>() {
        Some(ClientError::NotRunning { path, source }) => format!(
            "cannot connect to belterd at {}: {source}\nIs belterd running? Start it with \
             `belterd`, or pass its control socket with --socket PATH or BELTER_SOCKET.",
            path.display()
        ),
        _ => format!("{error:#}"),
    }
}

fn exit_code(error: &anyhow::Error) -> ExitCode {
    let not_running = error
        .downcast_ref::<ClientError>()
        .is_some_and(ClientError::is_not_running);
    if not_running {
        ExitCode::from(EXIT_NOT_RUNNING)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}
