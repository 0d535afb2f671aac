//! `update(&mut App, Action)`: the only place the console's state changes. It returns the
//! daemon calls to make, and their results come back later as `Action::Daemon`.

mod daemon;
mod replay;
mod rules;

use belter_common::api::DeliveryQuery;
use belter_common::records::{DeliveryStatus, EndpointState};
use belter_common::Timestamp;
use tui_input::Input;

use crate::action::{Action, Motion};
use crate::app::delivery_log::PageRequest;
use crate::app::{detail_document, App, DetailView, FilterEditor, Overlay, View};
use crate::command::Command;
use crate::render::layout;

/// How long an informational footer message stays, in milliseconds.
const NOTICE_MILLIS: u64 = 8_000;

/// How long an error message stays in the footer, in milliseconds.
const ERROR_NOTICE_MILLIS: u64 = 20_000;

/// How often the 24 h totals are refetched, in milliseconds; stream events adjust them between.
const STATS_REFRESH_MILLIS: u64 = 10_000;

/// Wait before the first page of the log is fetched again after it failed, in milliseconds.
const FIRST_PAGE_RETRY_MILLIS: u64 = 2_000;

/// How often the endpoint list is refetched while it is on screen, in milliseconds.
const ENDPOINTS_REFRESH_MILLIS: u64 = 5_000;

/// How often the threshold rules are refetched while they are on screen, in milliseconds, so
/// rules added with the CLI show up.
const RULES_REFRESH_MILLIS: u64 = 5_000;

/// Applies `action` to `app` and returns the daemon calls it needs.
pub fn update(app: &mut App, action: Action) -> Vec<Command> {
    let mut commands = Vec::new();
    match action {
        Action::Start => {
            let request = app.log.reset();
            commands.push(page_command(app, request));
            commands.push(stats_command(app));
        }
        Action::Tick(now) => tick(app, now, &mut commands),
        Action::Resize { width, height } => {
            app.width = width;
            app.height = height;
            app.log.set_viewport(layout::list_rows(height));
            clamp_detail_scroll(app);
        }
        Action::Quit => app.should_quit = true,
        Action::Move(motion) => move_selection(app, motion, &mut commands),
        Action::Open => open(app, &mut commands),
        Action::Back => back(app),
        Action::ToggleHelp => {
            app.overlay = match app.overlay {
                Some(Overlay::Help) => None,
                _ => Some(Overlay::Help),
            }
        }
        Action::OpenFilter => {
            let text = if app.filter.is_empty() {
                String::new()
            } else {
                format!("{} ", app.filter)
            };
            app.filter_editor = Some(FilterEditor {
                input: Input::new(text),
                error: None,
            });
        }
        Action::EditFilter(request) => {
            if let Some(editor) = &mut app.filter_editor {
                editor.input.handle(request);
                editor.error = None;
            }
        }
        Action::ApplyFilter => apply_filter(app, &mut commands),
        Action::CancelFilter => app.filter_editor = None,
        Action::ToggleFailedOnly => {
            app.filter.status = match app.filter.status {
                Some(DeliveryStatus::Failed) => None,
                _ => Some(DeliveryStatus::Failed),
            };
            reload_log(app, &mut commands);
        }
        Action::ToggleMark => toggle_mark(app, &mut commands),
        Action::ClearMarks => app.marks.clear(),
        Action::Replay => replay::replay_selection(app, &mut commands),
        Action::ReplayFiltered => replay::count_filtered(app, &mut commands),
        Action::Confirm => match app.overlay {
            Some(Overlay::DeleteRule(_)) => rules::confirm_delete(app, &mut commands),
            _ => replay::confirm(app, &mut commands),
        },
        Action::ShowEndpoints => show_endpoints(app, &mut commands),
        Action::TogglePause => toggle_pause(app, &mut commands),
        Action::NextSection => next_section(app),
        Action::ShowRules => rules::show(app, &mut commands),
        Action::OpenRuleEditor => rules::open_editor(app),
        Action::EditRule(request) => rules::edit(app, request),
        Action::SubmitRule => rules::submit(app, &mut commands),
        Action::CancelRule => app.rules.editor = None,
        Action::DeleteRule => rules::ask_delete(app),
        Action::Daemon(message) => daemon::receive(app, *message, &mut commands),
    }
    commands
}

/// Builds the daemon query for one page of the log under the current filter, with relative time
/// bounds resolved once per generation of the window.
fn page_command(app: &mut App, request: PageRequest) -> Command {
    let bounds_at = app.log.bounds_time(app.now);
    let mut query =
        DeliveryQuery::from_filter(app.filter.to_filter(bounds_at), Some(request.limit));
    query.cursor = request.cursor.clone();
    Command::FetchPage { request, query }
}

fn stats_command(app: &mut App) -> Command {
    app.stats_requested_at = Some(app.now);
    Command::FetchStats
}

fn detail_command(view: &mut DetailView) -> Command {
    view.loading = true;
    view.stale = false;
    Command::FetchDetail(view.id.clone())
}

fn endpoints_command(app: &mut App) -> Command {
    app.endpoints.loading = true;
    app.endpoints.requested_at = Some(app.now);
    Command::FetchEndpoints
}

fn reload_log(app: &mut App, commands: &mut Vec<Command>) {
    let request = app.log.reset();
    commands.push(page_command(app, request));
}

fn elapsed(since: Option<Timestamp>, now: Timestamp) -> u64 {
    since.map_or(u64::MAX, |at| {
        now.as_millis().saturating_sub(at.as_millis())
    })
}

fn tick(app: &mut App, now: Timestamp, commands: &mut Vec<Command>) {
    app.now = now;
    if let Some(notice) = &app.notice {
        let lifetime = if notice.is_error {
            ERROR_NOTICE_MILLIS
        } else {
            NOTICE_MILLIS
        };
        if elapsed(Some(notice.at), now) >= lifetime {
            app.notice = None;
        }
    }
    if app.log_failed_at.is_some()
        && elapsed(app.log_failed_at, now) >= FIRST_PAGE_RETRY_MILLIS
        && !app.log.is_loaded()
        && !app.log.is_loading()
    {
        app.log_failed_at = None;
        reload_log(app, commands);
    }
    if elapsed(app.stats_requested_at, now) >= STATS_REFRESH_MILLIS {
        commands.push(stats_command(app));
    }
    if app.view == View::Endpoints
        && !app.endpoints.loading
        && elapsed(app.endpoints.requested_at, now) >= ENDPOINTS_REFRESH_MILLIS
    {
        commands.push(endpoints_command(app));
    }
    if app.view == View::Rules
        && !app.rules.loading
        && elapsed(app.rules.requested_at, now) >= RULES_REFRESH_MILLIS
    {
        commands.push(rules::rules_command(app));
    }
    if let Some(view) = &mut app.detail {
        if view.stale && !view.loading {
            commands.push(detail_command(view));
        }
    }
}

fn move_selection(app: &mut App, motion: Motion, commands: &mut Vec<Command>) {
    let page = layout::list_rows(app.height) as isize;
    let step = match motion {
        Motion::Up => -1,
        Motion::Down => 1,
        Motion::PageUp => -(page - 1).max(1),
        Motion::PageDown => (page - 1).max(1),
        Motion::HalfPageUp => -(page / 2).max(1),
        Motion::HalfPageDown => (page / 2).max(1),
        Motion::First => isize::MIN,
        Motion::Last => isize::MAX,
    };
    match app.view {
        View::Log => {
            let request = match motion {
                Motion::First => app.log.go_to_newest(),
                Motion::Last => app.log.go_to_oldest(),
                _ => app.log.move_by(step),
            };
            if let Some(request) = request {
                commands.push(page_command(app, request));
            }
        }
        View::Detail => {
            if let Some(view) = &mut app.detail {
                view.scroll = view.scroll.saturating_add_signed(step);
            }
            clamp_detail_scroll(app);
        }
        View::Endpoints => {
            let last = app.endpoints.endpoints.len().saturating_sub(1);
            app.endpoints.selected = app.endpoints.selected.saturating_add_signed(step).min(last);
        }
        View::Rules => {
            let last = app.rules.rules.len().saturating_sub(1);
            app.rules.selected = app.rules.selected.saturating_add_signed(step).min(last);
        }
    }
}

/// Builds the detail document at the current width, if a delivery is loaded.
fn detail_document(app: &App) -> Option<detail_document::DetailDocument> {
    let detail = app.detail.as_ref()?.detail.as_ref()?;
    Some(detail_document::build(
        detail,
        app.theme,
        usize::from(app.width),
        app.now,
    ))
}

fn clamp_detail_scroll(app: &mut App) {
    let lines = detail_document(app).map_or(0, |document| document.lines.len());
    let visible = layout::list_rows(app.height);
    if let Some(view) = &mut app.detail {
        view.scroll = view.scroll.min(lines.saturating_sub(visible));
    }
}

fn next_section(app: &mut App) {
    let Some(document) = detail_document(app) else {
        return;
    };
    if let Some(view) = &mut app.detail {
        view.scroll = document
            .sections
            .iter()
            .copied()
            .find(|&start| start > view.scroll)
            .unwrap_or(0);
    }
    clamp_detail_scroll(app);
}

fn open(app: &mut App, commands: &mut Vec<Command>) {
    match app.view {
        View::Log => {
            let Some(delivery) = app.log.selected_delivery() else {
                return;
            };
            let mut view = DetailView {
                id: delivery.id.clone(),
                detail: None,
                scroll: 0,
                loading: false,
                stale: false,
                error: None,
            };
            commands.push(detail_command(&mut view));
            app.detail = Some(view);
            app.view = View::Detail;
        }
        View::Endpoints => {
            let Some(endpoint) = app.endpoints.endpoints.get(app.endpoints.selected) else {
                return;
            };
            app.filter.endpoint = Some(endpoint.id.clone());
            app.view = View::Log;
            reload_log(app, commands);
        }
        View::Detail | View::Rules => {}
    }
}

fn back(app: &mut App) {
    if app.overlay.take().is_some() {
        return;
    }
    match app.view {
        View::Detail => {
            app.view = View::Log;
            app.detail = None;
        }
        View::Endpoints => app.view = View::Log,
        View::Rules => {
            app.view = View::Log;
            app.rules.editor = None;
        }
        View::Log => app.marks.clear(),
    }
}

fn apply_filter(app: &mut App, commands: &mut Vec<Command>) {
    let Some(editor) = &mut app.filter_editor else {
        return;
    };
    match crate::filter::FilterSpec::parse(editor.input.value()) {
        Ok(spec) => {
            app.filter = spec;
            app.filter_editor = None;
            reload_log(app, commands);
        }
        Err(error) => editor.error = Some(error),
    }
}

fn toggle_mark(app: &mut App, commands: &mut Vec<Command>) {
    let Some(delivery) = app.log.selected_delivery() else {
        return;
    };
    let id = delivery.id.clone();
    if !app.marks.remove(&id) {
        app.marks.insert(id);
    }
    if let Some(request) = app.log.move_by(1) {
        commands.push(page_command(app, request));
    }
}

fn show_endpoints(app: &mut App, commands: &mut Vec<Command>) {
    app.view = View::Endpoints;
    app.detail = None;
    commands.push(endpoints_command(app));
}

fn toggle_pause(app: &mut App, commands: &mut Vec<Command>) {
    let Some(endpoint) = app.endpoints.endpoints.get(app.endpoints.selected) else {
        return;
    };
    let paused = endpoint.state == EndpointState::Active;
    let verb = if paused { "pausing" } else { "resuming" };
    let text = format!("{verb} {}", endpoint.url);
    commands.push(Command::SetEndpointPaused {
        id: endpoint.id.clone(),
        paused,
    });
    app.inform(text);
}

#[cfg(test)]
mod tests;
