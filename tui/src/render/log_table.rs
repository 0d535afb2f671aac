//! The delivery log pane: one row per delivery, newest first, drawn from the loaded window.

use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::badge::delivery_badge;
use crate::format;

/// Width from which event names get their full 24 characters.
const WIDE_COLUMNS: u16 = 110;

/// Width of the time column: `14:32:08`, or `Mon 14:32` before today.
const TIME_WIDTH: u16 = 9;

/// Width of the status column, enough for `– cancelled`.
const STATUS_WIDTH: u16 = 11;

const LATENCY_WIDTH: u16 = 7;
const ATTEMPTS_WIDTH: u16 = 3;
const MARK_WIDTH: u16 = 1;

fn event_width(area: Rect) -> u16 {
    if area.width >= WIDE_COLUMNS {
        24
    } else {
        21
    }
}

/// Width left for the target column once every other column and the gaps between are set.
fn target_width(area: Rect) -> u16 {
    let fixed =
        MARK_WIDTH + TIME_WIDTH + event_width(area) + STATUS_WIDTH + LATENCY_WIDTH + ATTEMPTS_WIDTH;
    let gaps = 6;
    area.width.saturating_sub(fixed + gaps).max(8)
}

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let log = &app.log;
    if log.rows().is_empty() {
        let text = if !log.is_loaded() {
            "loading deliveries…".to_owned()
        } else if app.filter.is_empty() {
            "no deliveries yet: they appear here as events arrive".to_owned()
        } else {
            format!("no deliveries match {}", app.filter)
        };
        let message = Paragraph::new(Text::styled(text, theme.dim())).alignment(Alignment::Center);
        let middle = Rect {
            y: area.y + area.height / 2,
            height: 1,
            ..area
        };
        frame.render_widget(message, middle);
        return;
    }

    let visible = usize::from(area.height.saturating_sub(1));
    let target_columns = usize::from(target_width(area));
    let event_columns = usize::from(event_width(area));
    let end = (log.offset() + visible).min(log.rows().len());
    let rows = log.rows()[log.offset()..end].iter().map(|delivery| {
        let badge = delivery_badge(delivery);
        let mark = if app.marks.contains(&delivery.id) {
            Span::styled("*", theme.marked())
        } else {
            Span::raw(" ")
        };
        let latency = delivery
            .last_latency_ms
            .map(format::latency)
            .unwrap_or_default();
        Row::new([
            Cell::from(mark),
            Cell::from(Span::styled(
                format::log_time(delivery.created_at, app.now),
                theme.dim(),
            )),
            Cell::from(format::truncate(
                delivery.event_type.as_str(),
                event_columns,
            )),
            Cell::from(format::target(&delivery.target_url, target_columns)),
            Cell::from(Span::styled(badge.text(), badge.tone.style(theme))),
            Cell::from(Line::from(latency).alignment(Alignment::Right)),
            Cell::from(Line::from(delivery.attempt_count.to_string()).alignment(Alignment::Right)),
        ])
    });
    let header = Row::new([
        Cell::from(""),
        Cell::from("TIME UTC"),
        Cell::from("EVENT"),
        Cell::from("TARGET"),
        Cell::from("STATUS"),
        Cell::from(Line::from("LATENCY").alignment(Alignment::Right)),
        Cell::from(Line::from("#").alignment(Alignment::Right)),
    ])
    .style(theme.dim());
    let widths = [
        Constraint::Length(MARK_WIDTH),
        Constraint::Length(TIME_WIDTH),
        Constraint::Length(event_width(area)),
        Constraint::Fill(1),
        Constraint::Length(STATUS_WIDTH),
        Constraint::Length(LATENCY_WIDTH),
        Constraint::Length(ATTEMPTS_WIDTH),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(Some(log.selected() - log.offset()));
    frame.render_stateful_widget(table, area, &mut state);
}
