//! The endpoints pane: URL, subscribed events, state and failure counts of every endpoint, and
//! below them the selected endpoint's id, description, payload filter and pause reason.

use belter_common::records::{Endpoint, EndpointState};
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::format;

const STATE_WIDTH: u16 = 8;
const EVENTS_WIDTH: u16 = 24;
/// Width of the failures column: failed attempts in a row, then in the last 24 h.
const FAILURES_WIDTH: u16 = 13;
const LAST_OK_WIDTH: u16 = 8;

/// Rows of the selected endpoint's panel below the table: a rule and five lines.
const PANEL_ROWS: u16 = 6;

/// Pane height from which the panel is shown; below it the table gets every row.
const PANEL_MIN_HEIGHT: u16 = 14;

/// Width of the panel's label column.
const LABEL_WIDTH: usize = 9;

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
        let table = Rect {
            height: area.height - PANEL_ROWS,
            ..area
        };
        let panel = Rect {
            y: area.y + table.height,
            height: PANEL_ROWS,
            ..area
        };
        (table, Some(panel))
    } else {
        (area, None)
    };
    if let (Some(panel), Some(endpoint)) = (panel, view.endpoints.get(view.selected)) {
        render_panel(app, endpoint, frame, panel);
    }

    let fixed = STATE_WIDTH + EVENTS_WIDTH + FAILURES_WIDTH + LAST_OK_WIDTH + 4;
    let url_width = usize::from(area.width.saturating_sub(fixed).max(10));
    let rows = view.endpoints.iter().map(|endpoint| {
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
        Row::new([
            Cell::from(state),
            Cell::from(format::target(&endpoint.url, url_width)),
            Cell::from(format::truncate(
                &endpoint.event_types.to_text(),
                usize::from(EVENTS_WIDTH),
            )),
            Cell::from(
                Line::from(Span::styled(failures, failure_style)).alignment(Alignment::Right),
            ),
            Cell::from(Line::from(last_ok).alignment(Alignment::Right)),
        ])
    });

    let header = Row::new([
        Cell::from("STATE"),
        Cell::from("URL"),
        Cell::from("EVENTS"),
        Cell::from(Line::from("FAILS row/24h").alignment(Alignment::Right)),
        Cell::from(Line::from("LAST OK").alignment(Alignment::Right)),
    ])
    .style(theme.dim());

    let widths = [
        Constraint::Length(STATE_WIDTH),
        Constraint::Fill(1),
        Constraint::Length(EVENTS_WIDTH),
        Constraint::Length(FAILURES_WIDTH),
        Constraint::Length(LAST_OK_WIDTH),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Draws the selected endpoint's details that the table has no room for.
fn render_panel(app: &App, endpoint: &Endpoint, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let field = |label: &str, value: String, style: Style| {
        Line::from(vec![
            Span::styled(format!("{label:<LABEL_WIDTH$}"), theme.dim()),
            Span::styled(value, style),
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
    let state = match (endpoint.state, &endpoint.paused_reason) {
        (EndpointState::Paused, Some(reason)) => {
            field("paused", format!("by belterd: {reason}"), theme.retrying())
        }
        (EndpointState::Paused, None) => {
            field("paused", "by an operator".to_owned(), theme.retrying())
        }
        (EndpointState::Active, _) => field(
            "active",
            format!(
                "{} failed attempts in a row, {} in 24 h",
                endpoint.consecutive_failures,
                format::count(endpoint.recent_failures)
            ),
            Style::new(),
        ),
    };
    let lines = vec![
        Line::from(Span::styled(endpoint.id.to_string(), theme.title())),
        field("about", description, Style::new()),
        field("events", endpoint.event_types.to_text(), Style::new()),
        field("filter", filter, Style::new()),
        state,
    ];
    let block = Block::new().borders(Borders::TOP).border_style(theme.dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines), inner);
}
