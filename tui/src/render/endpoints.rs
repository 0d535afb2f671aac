//! The endpoints pane: for every endpoint its state, URL, subscribed events, failure counts and
//! last success, then its body format and payload filter, and why belterd paused it if it did.
//! Below the list, the selected endpoint's id, description and full values.

use belter_common::records::{Endpoint, EndpointState};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::format;
use crate::theme::Theme;

const STATE_WIDTH: usize = 8;
const EVENTS_WIDTH: usize = 24;
/// Width of the failures column: failed attempts in a row, then in the last 24 h.
const FAILURES_WIDTH: usize = 13;
const LAST_OK_WIDTH: usize = 8;

/// Narrowest URL column, in characters.
const MIN_URL_WIDTH: usize = 10;

/// Narrowest filter text on an endpoint's second line, in characters.
const MIN_FILTER_WIDTH: usize = 8;

/// Rows of the selected endpoint's panel below the list: a rule and six lines.
const PANEL_ROWS: u16 = 7;

/// Pane height from which the panel is shown; below it the list gets every row.
const PANEL_MIN_HEIGHT: u16 = 16;

/// Width of the panel's label column.
const LABEL_WIDTH: usize = 9;

/// Opening of the pause reason that belterd writes. The console strips it and writes
/// "auto-paused by belterd" itself.
const DAEMON_REASON_PREFIX: &str = "paused by belterd: ";

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let view = &app.endpoints;
    if view.endpoints.is_empty() {
        let text = match (&view.error, view.loading) {
            (Some(error), _) => {
                Span::styled(format!("cannot list endpoints: {error}"), theme.failed())
            }
            (None, true) => Span::styled("loading endpoints…", theme.dim()),
            (None, false) => Span::styled("no endpoints yet", theme.dim()),
        };
        frame.render_widget(Line::from(text), area);
        return;
    }

    let (area, panel) = if area.height >= PANEL_MIN_HEIGHT {
        let list = Rect {
            height: area.height - PANEL_ROWS,
            ..area
        };
        let panel = Rect {
            y: area.y + list.height,
            height: PANEL_ROWS,
            ..area
        };
        (list, Some(panel))
    } else {
        (area, None)
    };
    if let (Some(panel), Some(endpoint)) = (panel, view.endpoints.get(view.selected)) {
        render_panel(app, endpoint, frame, panel);
    }

    let width = usize::from(area.width);
    let fixed = STATE_WIDTH + EVENTS_WIDTH + FAILURES_WIDTH + LAST_OK_WIDTH + 4;
    let url_width = width.saturating_sub(fixed).max(MIN_URL_WIDTH);
    let header = format!(
        "{:<STATE_WIDTH$} {:<url_width$} {:<EVENTS_WIDTH$} {:>FAILURES_WIDTH$} {:>LAST_OK_WIDTH$}",
        "STATE", "URL", "EVENTS", "FAILS row/24h", "LAST OK"
    );
    frame.render_widget(
        Line::from(Span::styled(header, theme.dim())),
        Rect { height: 1, ..area },
    );
    let list_area = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(1),
        ..area
    };

    let items: Vec<ListItem> = view
        .endpoints
        .iter()
        .map(|endpoint| {
            let mut lines = vec![
                summary_line(app, endpoint, url_width),
                delivery_line(theme, endpoint, width),
            ];
            if let Some(reason) = auto_pause_reason(endpoint) {
                let reason = format::truncate(
                    &format!("auto-paused by belterd: {reason}"),
                    width.saturating_sub(STATE_WIDTH + 1),
                );
                lines.push(Line::from(vec![
                    Span::raw(" ".repeat(STATE_WIDTH + 1)),
                    Span::styled(reason, theme.failed()),
                ]));
            }
            ListItem::new(Text::from(lines))
        })
        .collect();
    let list = List::new(items).highlight_style(theme.selected());
    let mut state = ListState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(list, list_area, &mut state);
}

/// Builds the first line of an endpoint: state, URL, events, failures and last success.
fn summary_line(app: &App, endpoint: &Endpoint, url_width: usize) -> Line<'static> {
    let theme = app.theme;
    let state = match endpoint.state {
        EndpointState::Active => Span::styled("● active", theme.ok()),
        EndpointState::Paused => Span::styled("‖ paused", theme.retrying()),
    };
    let failures = format!(
        "{} / {}",
        endpoint.consecutive_failures,
        format::count(endpoint.recent_failures)
    );
    let failure_style = if endpoint.consecutive_failures > 0 {
        theme.failed()
    } else {
        theme.dim()
    };
    let last_ok = endpoint
        .last_success_at
        .map(|at| format::age(app.now.as_millis().saturating_sub(at.as_millis())))
        .unwrap_or_else(|| "never".to_owned());
    let url = format::target(&endpoint.url, url_width);
    let events = format::truncate(&endpoint.event_types.to_text(), EVENTS_WIDTH);
    Line::from(vec![
        state,
        Span::raw(format!(" {url:<url_width$} {events:<EVENTS_WIDTH$} ")),
        Span::styled(format!("{failures:>FAILURES_WIDTH$}"), failure_style),
        Span::raw(format!(" {last_ok:>LAST_OK_WIDTH$}")),
    ])
}

/// Builds the second line of an endpoint: the body format and the payload filter, cut to
/// `width`.
fn delivery_line(theme: Theme, endpoint: &Endpoint, width: usize) -> Line<'static> {
    let format = format_text(endpoint);
    let mut spans = vec![
        Span::raw(" ".repeat(STATE_WIDTH + 1)),
        Span::styled("format ", theme.dim()),
        Span::raw(format.clone()),
    ];
    match &endpoint.filter {
        Some(filter) => {
            let used = STATE_WIDTH + 1 + "format ".len() + format.chars().count();
            let label = " · filter ";
            let room = width
                .saturating_sub(used + label.chars().count())
                .max(MIN_FILTER_WIDTH);
            spans.push(Span::styled(label, theme.dim()));
            spans.push(Span::raw(format::truncate(filter, room)));
        }
        None => spans.push(Span::styled(" · no filter", theme.dim())),
    }
    Line::from(spans)
}

/// Names the body format, such as `slack + Standard Webhooks`.
fn format_text(endpoint: &Endpoint) -> String {
    let name = endpoint.format.as_str();
    if endpoint.standard_webhooks {
        format!("{name} + Standard Webhooks")
    } else {
        name.to_owned()
    }
}

/// Returns the reason belterd gave for pausing the endpoint by itself, without its opening.
/// Returns `None` when the endpoint is active or an operator paused it.
fn auto_pause_reason(endpoint: &Endpoint) -> Option<&str> {
    if endpoint.state != EndpointState::Paused {
        return None;
    }
    let reason = endpoint.paused_reason.as_deref()?;
    Some(reason.strip_prefix(DAEMON_REASON_PREFIX).unwrap_or(reason))
}

/// Describes the failure counts, which belterd keeps across restarts.
fn failures_text(endpoint: &Endpoint) -> String {
    format!(
        "{} failed attempts in a row, {} in 24 h",
        endpoint.consecutive_failures,
        format::count(endpoint.recent_failures)
    )
}

/// Draws the selected endpoint's details that the list has no room for.
fn render_panel(app: &App, endpoint: &Endpoint, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let value_width = usize::from(area.width).saturating_sub(LABEL_WIDTH);
    let field = |label: &str, value: String, style: Style| {
        Line::from(vec![
            Span::styled(format!("{label:<LABEL_WIDTH$}"), theme.dim()),
            Span::styled(format::truncate(&value, value_width), style),
        ])
    };
    let description = if endpoint.description.is_empty() {
        "no description".to_owned()
    } else {
        endpoint.description.clone()
    };

    let filter = endpoint
        .filter
        .clone()
        .unwrap_or_else(|| "none, every event of the types above".to_owned());
    let format = if endpoint.standard_webhooks {
        format!(
            "{}, with the Standard Webhooks headers",
            endpoint.format.as_str()
        )
    } else {
        endpoint.format.as_str().to_owned()
    };

    let state = match (endpoint.state, auto_pause_reason(endpoint)) {
        (EndpointState::Paused, Some(reason)) => {
            field("paused", format!("by belterd: {reason}"), theme.failed())
        }
        (EndpointState::Paused, None) => {
            field("paused", "by an operator".to_owned(), theme.retrying())
        }
        (EndpointState::Active, _) => match endpoint.resends_paused_until {
            Some(until) => field(
                "active",
                format!(
                    "{}, no resend on reset until {until}",
                    failures_text(endpoint)
                ),
                theme.retrying(),
            ),
            None => field("active", failures_text(endpoint), Style::new()),
        },
    };

    let lines = vec![
        Line::from(Span::styled(endpoint.id.to_string(), theme.title())),
        field("about", description, Style::new()),
        field("events", endpoint.event_types.to_text(), Style::new()),
        field("filter", filter, Style::new()),
        field("format", format, Style::new()),
        state,
    ];
    let block = Block::new().borders(Borders::TOP).border_style(theme.dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines), inner);
}
