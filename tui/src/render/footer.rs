//! The footer: the latest message or progress with the position in the log, then key hints.

use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, Connection, Overlay, View};
use crate::format;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let filter_error = app
        .filter_editor
        .as_ref()
        .and_then(|editor| editor.error.as_ref());
    let rule_error = app
        .rules
        .editor
        .as_ref()
        .filter(|_| app.view == View::Rules)
        .and_then(|editor| editor.error.as_ref());
    if let Some(error) = filter_error.or(rule_error) {
        // An error of the filter or rule line can be long, such as a list of every status, so it
        // gets both lines.
        let text = Paragraph::new(error.as_str())
            .style(theme.failed())
            .wrap(Wrap { trim: true });
        frame.render_widget(text, area);
        return;
    }

    let first = Rect { height: 1, ..area };
    let position = position_text(app);
    let position_width = position.chars().count() as u16;
    let message_area = Rect {
        width: first.width.saturating_sub(position_width + 1),
        ..first
    };
    frame.render_widget(
        Line::from(position)
            .style(theme.dim())
            .alignment(Alignment::Right),
        first,
    );
    if let Some(message) = message(app) {
        frame.render_widget(message, message_area);
    }

    if area.height < 2 {
        return;
    }
    let second = Rect {
        y: area.y + 1,
        height: 1,
        ..area
    };
    let mut spans = Vec::new();
    for (key, meaning) in hints(app) {
        spans.push(Span::styled(*key, theme.key()));
        spans.push(Span::styled(format!(" {meaning}  "), theme.dim()));
    }
    frame.render_widget(Line::from(spans), second);
}

fn message(app: &App) -> Option<Line<'static>> {
    let theme = app.theme;
    if let Some(notice) = &app.notice {
        let style = if notice.is_error {
            theme.failed()
        } else {
            theme.active()
        };
        return Some(Line::from(Span::styled(notice.text.clone(), style)));
    }
    if let Connection::Lost { error, .. } = &app.connection {
        return Some(Line::from(Span::styled(
            format!("connection lost: {error}"),
            theme.failed(),
        )));
    }
    if app.view == View::Log && app.log.is_seeking_end() {
        return Some(Line::from(Span::styled(
            format!(
                "paging to the oldest delivery… {} rows so far",
                format::count(app.log.rows_above_window() as u64 + app.log.rows().len() as u64)
            ),
            theme.active(),
        )));
    }
    None
}

fn position_text(app: &App) -> String {
    if app.view != View::Log || app.log.rows().is_empty() {
        return String::new();
    }
    let log = &app.log;
    let total = match log.known_total() {
        Some(total) => format::count(total as u64),
        None => format!(
            "{}+",
            format::count((log.rows_above_window() + log.rows().len()) as u64)
        ),
    };
    let mut text = format!(
        "{} of {total}",
        format::count(log.absolute_position() as u64)
    );
    let newer = log.newer_than_screen();
    if newer > 0 {
        text = format!("↑ {} newer · {text}", format::count(newer as u64));
    }
    if log.is_loading() {
        text = format!("loading… {text}");
    }
    text
}

fn hints(app: &App) -> &'static [(&'static str, &'static str)] {
    if app.filter_editor.is_some() {
        return &[
            ("Enter", "apply"),
            ("Esc", "cancel"),
            ("terms", "event: target: endpoint: status: since: until:"),
        ];
    }
    if app.view == View::Rules && app.rules.editor.is_some() {
        return &[
            ("Enter", "add the rule"),
            ("Esc", "cancel"),
            ("e.g.", crate::rule_line::EXAMPLE),
        ];
    }
    match (&app.overlay, app.view) {
        (Some(Overlay::Confirm(_)), _) => &[("y", "replay"), ("n", "cancel")],
        (Some(Overlay::DeleteRule(_)), _) => &[("y", "delete"), ("n", "cancel")],
        (Some(Overlay::Help), _) => &[("any key", "closes the help")],
        (None, View::Log) => &[
            ("Enter", "open"),
            ("/", "filter"),
            ("f", "failed"),
            ("Space", "mark"),
            ("r", "replay"),
            ("R", "replay all"),
            ("e", "endpoints"),
            ("t", "rules"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (None, View::Detail) => &[
            ("↑↓", "scroll"),
            ("Tab", "section"),
            ("r", "replay"),
            ("Esc", "back"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (None, View::Endpoints) => &[
            ("p", "pause/resume"),
            ("Enter", "deliveries"),
            ("t", "rules"),
            ("Esc", "back"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (None, View::Rules) => &[
            ("a", "add"),
            ("d", "delete"),
            ("e", "endpoints"),
            ("Esc", "back"),
            ("?", "help"),
            ("q", "quit"),
        ],
    }
}
