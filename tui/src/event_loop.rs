//! The console's main loop: one `select!` over terminal events, a tick, the daemon's messages
//! and termination signals. Each becomes an `Action` for `update`, and then the screen is redrawn.

use std::time::Duration;

use anyhow::Context;
use belter_common::client::ControlClient;
use belter_common::Timestamp;
use crossterm::event::EventStream;
use futures_util::StreamExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::action::Action;
use crate::app::App;
use crate::daemon_link;
use crate::keymap;
use crate::render::render;
use crate::terminal::{self, TerminalGuard};
use crate::theme::Theme;
use crate::update::update;

/// Time between ticks, which refresh ages, totals and expiring messages.
const TICK: Duration = Duration::from_millis(500);

/// Daemon messages applied before one redraw, so a burst of stream lines costs one frame.
const MAX_MESSAGES_PER_FRAME: usize = 256;

/// Runs the console against `client` until the user quits or the process gets SIGTERM or
/// SIGHUP. Fails early, before the terminal is touched, when the daemon cannot be reached.
pub async fn run(client: ControlClient) -> anyhow::Result<()> {
    client.health().await.context("belterd is not reachable")?;

    let mut guard = TerminalGuard::start().context("cannot set up the terminal")?;
    let size = guard.size().context("cannot read the terminal size")?;
    let mut app = App::new(
        client.socket().to_path_buf(),
        Theme::from_env(),
        Timestamp::now(),
        size.width,
        size.height,
    );
    let (sender, mut messages) = mpsc::unbounded_channel();
    daemon_link::spawn_stream(&client, sender.clone());
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let mut pending = Some(Action::Start);
    loop {
        if let Some(action) = pending.take() {
            for command in update(&mut app, action) {
                daemon_link::spawn_command(&client, command, &sender);
            }
        }
        if app.should_quit {
            break;
        }
        if terminal::panicked() {
            anyhow::bail!("a background task panicked; its message is printed above");
        }
        guard
            .draw(|frame| render(&app, frame))
            .context("cannot draw the console")?;
        pending = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => keymap::action_for_event(&app, &event),
                Some(Err(error)) => return Err(error).context("cannot read terminal input"),
                None => Some(Action::Quit),
            },
            Some(message) = messages.recv() => {
                for command in update(&mut app, Action::Daemon(Box::new(message))) {
                    daemon_link::spawn_command(&client, command, &sender);
                }
                // Apply what else has arrived before drawing again.
                for _ in 0..MAX_MESSAGES_PER_FRAME {
                    let Ok(message) = messages.try_recv() else {
                        break;
                    };
                    for command in update(&mut app, Action::Daemon(Box::new(message))) {
                        daemon_link::spawn_command(&client, command, &sender);
                    }
                }
                None
            },
            _ = tick.tick() => Some(Action::Tick(Timestamp::now())),
            _ = terminate.recv() => Some(Action::Quit),
            _ = hangup.recv() => Some(Action::Quit),
        };
    }
    tracing::info!("console closed");
    Ok(())
}
