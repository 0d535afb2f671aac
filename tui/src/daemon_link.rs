//! Background tasks that talk to the daemon: one per command, and the live stream, which
//! reconnects by itself. They send results back as messages and share no state with the app.

use std::time::Duration;

use belter_common::client::ControlClient;
use tokio::sync::mpsc::UnboundedSender;

use crate::action::{CallError, DaemonMessage};
use crate::command::Command;

/// Window of the header's totals.
pub const STATS_WINDOW: &str = "24h";

/// First wait before reconnecting the stream.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(500);

/// Longest wait between reconnect tries.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs `command` in its own task and sends its result to `messages`.
pub fn spawn_command(
    client: &ControlClient,
    command: Command,
    messages: &UnboundedSender<DaemonMessage>,
) {
    let client = client.clone();
    let messages = messages.clone();
    tokio::spawn(async move {
        let message = execute(&client, command).await;
        // The console is gone when the send fails, and then nobody waits for the result.
        let _ = messages.send(message);
    });
}

async fn execute(client: &ControlClient, command: Command) -> DaemonMessage {
    match command {
        Command::FetchPage { request, query } => DaemonMessage::Page {
            request,
            result: client
                .list_deliveries(&query)
                .await
                .map_err(CallError::from),
        },
        Command::FetchStats => DaemonMessage::Stats(
            client
                .stats(Some(STATS_WINDOW))
                .await
                .map_err(CallError::from),
        ),
        Command::FetchDetail(id) => {
            let result = client
                .get_delivery(&id)
                .await
                .map(Box::new)
                .map_err(CallError::from);
            DaemonMessage::Detail { id, result }
        }
        Command::FetchEndpoints => {
            DaemonMessage::Endpoints(client.list_endpoints().await.map_err(CallError::from))
        }
        Command::Replay(id) => {
            let result = client.replay(&id).await.map_err(CallError::from);
            DaemonMessage::Replayed { id, result }
        }
        Command::CountReplay(request) => {
            let result = client.replay_many(&request).await.map_err(CallError::from);
            DaemonMessage::ReplayCounted { request, result }
        }
        Command::ReplayMany(request) => {
            let result = client.replay_many(&request).await.map_err(CallError::from);
            DaemonMessage::ReplayedMany { request, result }
        }
        Command::SetEndpointPaused { id, paused } => {
            let result = if paused {
                client.pause_endpoint(&id).await
            } else {
                client.resume_endpoint(&id).await
            };
            DaemonMessage::EndpointChanged(result.map_err(CallError::from))
        }
        Command::FetchRules => {
            DaemonMessage::Rules(client.list_rules().await.map_err(CallError::from))
        }
        Command::CreateRule(request) => {
            DaemonMessage::RuleCreated(client.create_rule(&request).await.map_err(CallError::from))
        }
        Command::DeleteRule(id) => {
            let result = client.delete_rule(&id).await.map_err(CallError::from);
            DaemonMessage::RuleDeleted { id, result }
        }
    }
}

/// Keeps the live stream open until `messages` closes: connects, forwards every line, and on any
/// failure reports it and reconnects after a growing delay of at most `RECONNECT_MAX_DELAY`.
pub fn spawn_stream(client: &ControlClient, messages: UnboundedSender<DaemonMessage>) {
    let client = client.clone();
    tokio::spawn(async move {
        let mut delay = RECONNECT_FIRST_DELAY;
        while !messages.is_closed() {
            let error = match follow_stream(&client, &messages, &mut delay).await {
                Ok(()) => "belterd closed the live stream".to_owned(),
                Err(error) => error.to_string(),
            };
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "live stream lost");
            if messages.send(DaemonMessage::StreamLost(error)).is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX_DELAY);
        }
    });
}

/// Opens the stream and forwards lines until it ends. Resets `delay` once connected.
async fn follow_stream(
    client: &ControlClient,
    messages: &UnboundedSender<DaemonMessage>,
    delay: &mut Duration,
) -> Result<(), belter_common::client::ClientError> {
    let health = client.health().await?;
    let mut stream = client.stream().await?;
    *delay = RECONNECT_FIRST_DELAY;
    tracing::info!(socket = %client.socket().display(), "live stream open");
    if messages
        .send(DaemonMessage::StreamConnected(health))
        .is_err()
    {
        return Ok(());
    }
    while let Some(line) = stream.next().await {
        match line {
            Ok(event) => {
                if messages.send(DaemonMessage::Stream(event)).is_err() {
                    return Ok(());
                }
            }
            Err(belter_common::client::ClientError::Json(error)) => {
                // One unreadable line, perhaps from a newer daemon, is skipped, not fatal.
                tracing::warn!(%error, "skipped an unreadable stream line");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
