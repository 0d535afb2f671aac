//! The endpoints pane: URL, subscribed events, state and failure counts of every endpoint.

use belter_common::records::EndpointState;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::format;

const STATE_WIDTH: u16 = 8;
const EVENTS_WIDTH: u16 = 24;
/// Width of the failures column: failed attempts in a row, then in the last 24 h.
const FAILURES_WIDTH: u16 = 13;
const LAST_OK_WIDTH: u16 = 8;

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
