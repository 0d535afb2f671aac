//! The header: the daemon's state and 24 h totals, then the filter or the filter line.

use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::{App, Connection};
use crate::format;

/// Width from which the header also shows the daemon's version.
const WIDE_COLUMNS: u16 = 100;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let mut state = Vec::new();
    match &app.connection {
        Connection::Connecting => {
            state.push(Span::styled(
                format!("… connecting to {}", app.socket.display()),
                theme.dim(),
            ));
        }
        Connection::Live(health) => {
            state.push(Span::styled("● live", theme.ok()));
            if area.width >= WIDE_COLUMNS {
                state.push(Span::raw(format!(" · belterd {}", health.version)));
            }
            let up = app
                .now
                .as_millis()
                .saturating_sub(health.started_at.as_millis());
            state.push(Span::raw(format!(" · up {}", format::age(up))));
        }
        Connection::Lost { since, .. } => {
            // The error itself is in the footer, where it has the whole width.
            let down = app.now.as_millis().saturating_sub(since.as_millis());
            state.push(Span::styled(
                format!(
                    "✖ belterd unreachable for {}, reconnecting",
                    format::age(down)
                ),
                theme.failed(),
            ));
        }
    }
    let mut spans = vec![
        Span::styled("belter", theme.title()),
        Span::styled(" │ ", theme.dim()),
    ];
    if let Some(stats) = &app.stats {
        spans.push(Span::styled("24h ", theme.dim()));
        spans.push(Span::styled(
            format!("{} OK", format::count(stats.ok)),
            theme.ok(),
        ));
        spans.push(Span::raw(" · "));
        let failed_style = if stats.failed > 0 {
            theme.failed()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(
            format!("{} failed", format::count(stats.failed)),
            failed_style,
        ));
        if stats.pending > 0 {
            spans.push(Span::raw(format!(
                " · {} pending",
                format::count(stats.pending)
            )));
        }
        spans.push(Span::styled(" │ ", theme.dim()));
    }
    // A lost connection comes first, so it is never cut off at the right edge.
    if matches!(app.connection, Connection::Lost { .. }) {
        spans.splice(
            2..2,
            state.into_iter().chain([Span::styled(" │ ", theme.dim())]),
        );
    } else {
        spans.extend(state);
    }
    let first = Rect { height: 1, ..area };
    frame.render_widget(Line::from(spans), first);

    if area.height < 2 {
        return;
    }
    let second = Rect {
        y: area.y + 1,
        height: 1,
        ..area
    };
    if let Some(editor) = &app.filter_editor {
        let prompt = "filter> ";
        let prompt_width = prompt.chars().count() as u16;
        let input_width = usize::from(second.width.saturating_sub(prompt_width + 1));
        let scroll = editor.input.visual_scroll(input_width);
        let visible: String = editor.input.value().chars().skip(scroll).collect();
        let line = Line::from(vec![Span::styled(prompt, theme.key()), Span::raw(visible)]);
        frame.render_widget(line, second);
        let cursor = editor.input.visual_cursor().saturating_sub(scroll) as u16;
        frame.set_cursor_position(Position::new(second.x + prompt_width + cursor, second.y));
        return;
    }
    let mut spans = vec![Span::styled("filter ", theme.dim())];
    if app.filter.is_empty() {
        spans.push(Span::styled(
            "none, all deliveries (/ to filter)",
            theme.dim(),
        ));
    } else {
        spans.push(Span::styled(app.filter.to_string(), theme.title()));
    }
    if !app.marks.is_empty() {
        spans.push(Span::styled(" │ ", theme.dim()));
        spans.push(Span::styled(
            format!("{} marked", format::count(app.marks.len() as u64)),
            theme.marked(),
        ));
    }
    frame.render_widget(Line::from(spans), second);
}
