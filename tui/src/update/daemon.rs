//! Replies and stream lines from the daemon, applied to the state.

use belter_common::records::{StreamEvent, StreamKind};

use super::{detail_command, endpoints_command, page_command, replay, rules, stats_command};
use crate::action::{CallError, DaemonMessage};
use crate::app::{App, Connection, View};
use crate::command::Command;

pub(super) fn receive(app: &mut App, message: DaemonMessage, commands: &mut Vec<Command>) {
    match message {
        DaemonMessage::Page { request, result } => match result {
            Ok(page) => {
                if app.log.apply_page(&request, page) {
                    if let Some(next) = app.log.prefetch() {
                        commands.push(page_command(app, next));
                    }
                }
            }
            Err(error) => {
                app.log.page_failed(&request);
                if !app.log.is_loaded() {
                    app.log_failed_at = Some(app.now);
                }
                failed(app, "listing deliveries", &error);
            }
        },
        DaemonMessage::Stats(result) => match result {
            Ok(stats) => app.stats = Some(stats),
            Err(error) => tracing::debug!(error = %error.message, "stats fetch failed"),
        },
        DaemonMessage::Detail { id, result } => {
            let Some(view) = &mut app.detail else {
                return;
            };
            if view.id != id {
                return;
            }
            view.loading = false;
            match result {
                Ok(detail) => {
                    view.detail = Some(detail);
                    view.error = None;
                }
                Err(error) => view.error = Some(error.message),
            }
        }
        DaemonMessage::Endpoints(result) => {
            app.endpoints.loading = false;
            match result {
                Ok(endpoints) => {
                    app.endpoints.selected = app
                        .endpoints
                        .selected
                        .min(endpoints.len().saturating_sub(1));
                    app.endpoints.endpoints = endpoints;
                    app.endpoints.error = None;
                }
                Err(error) => app.endpoints.error = Some(error.message),
            }
        }
        DaemonMessage::EndpointChanged(result) => match result {
            Ok(endpoint) => {
                let state = match endpoint.state {
                    belter_common::records::EndpointState::Active => "resumed",
                    belter_common::records::EndpointState::Paused => "paused",
                };
                app.inform(format!("{state} {}", endpoint.url));
                if let Some(row) = app
                    .endpoints
                    .endpoints
                    .iter_mut()
                    .find(|row| row.id == endpoint.id)
                {
                    *row = endpoint;
                }
            }
            Err(error) => failed(app, "changing the endpoint", &error),
        },
        DaemonMessage::Replayed { id, result } => match result {
            Ok(response) => replay::replayed_one(app, &id, &response),
            Err(error) => failed(app, &format!("replaying {id}"), &error),
        },
        DaemonMessage::ReplayCounted { request, result } => match result {
            Ok(counts) => replay::counted(app, request, counts),
            Err(error) => {
                app.counting_replay = false;
                failed(app, "counting the replay", &error);
            }
        },
        DaemonMessage::ReplayedMany { request, result } => match result {
            Ok(response) => replay::replayed_many(app, &request, &response),
            Err(error) => failed(app, "replaying", &error),
        },
        DaemonMessage::StreamConnected(health) => {
            let was_lost = matches!(app.connection, Connection::Lost { .. });
            app.connection = Connection::Live(health);
            if was_lost {
                app.inform("reconnected to belterd");
                refresh_everything(app, commands);
            }
        }
        DaemonMessage::Rules(result) => rules::listed(app, result),
        DaemonMessage::RuleCreated(result) => rules::created(app, result),
        DaemonMessage::RuleDeleted { id, result } => rules::deleted(app, &id, result, commands),
        DaemonMessage::Stream(event) => stream_event(app, event, commands),
        DaemonMessage::StreamLost(error) => {
            // Each failed reconnect brings the latest error; the outage keeps its start time.
            let since = match &app.connection {
                Connection::Lost { since, .. } => *since,
                _ => app.now,
            };
            app.connection = Connection::Lost { error, since };
        }
    }
}

/// Refetches everything on screen, after a reconnect or when the stream dropped lines.
fn refresh_everything(app: &mut App, commands: &mut Vec<Command>) {
    let request = app.log.reload();
    commands.push(page_command(app, request));
    commands.push(stats_command(app));
    if app.view == View::Endpoints {
        commands.push(endpoints_command(app));
    }
    if app.view == View::Rules {
        commands.push(rules::rules_command(app));
    }
    if let Some(view) = &mut app.detail {
        commands.push(detail_command(view));
    }
}

fn stream_event(app: &mut App, event: StreamEvent, commands: &mut Vec<Command>) {
    if event.kind == StreamKind::Lagged {
        refresh_everything(app, commands);
        return;
    }
    if event.kind == StreamKind::AttemptFinished {
        if let (Some(stats), Some(attempt)) = (&mut app.stats, &event.attempt) {
            if attempt.succeeded {
                stats.ok += 1;
            } else {
                stats.failed += 1;
            }
        }
    }
    let Some(delivery) = event.delivery else {
        return;
    };
    if let Some(view) = &mut app.detail {
        if view.id == delivery.id {
            if view.loading {
                view.stale = true;
            } else {
                commands.push(detail_command(view));
            }
        }
    }
    let matches = app.filter.matches(&delivery, app.now);
    app.log.upsert(delivery, matches);
}

/// Reports a failed call in the footer. The connection state is left to the stream task, which
/// notices a daemon that went away and reconnects.
pub(super) fn failed(app: &mut App, what: &str, error: &CallError) {
    tracing::warn!(error = %error.message, call = what, "daemon call failed");
    app.warn(format!("{what} failed: {}", error.message));
}
