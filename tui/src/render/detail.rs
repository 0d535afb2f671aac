//! The detail pane: one delivery's summary, request headers, payload and attempts, scrollable.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{detail_document, App};
use crate::badge::delivery_badge;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let Some(view) = &app.detail else {
        return;
    };
    let title_area = Rect { height: 1, ..area };
    let body = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(1),
        ..area
    };
    let mut title = vec![Span::styled(view.id.to_string(), theme.title())];
    let Some(detail) = &view.detail else {
        frame.render_widget(Line::from(title), title_area);
        let text = match &view.error {
            Some(error) => {
                Span::styled(format!("cannot load the delivery: {error}"), theme.failed())
            }
            None => Span::styled("loading…", theme.dim()),
        };
        frame.render_widget(Line::from(text), body);
        return;
    };

    // Outcome and event first: the id may be cut at narrow widths and is repeated below.
    let badge = delivery_badge(&detail.delivery);
    title = vec![
        Span::styled(badge.text(), badge.tone.style(theme)),
        Span::raw(format!(" · {} · ", detail.delivery.event_type)),
        Span::styled(view.id.to_string(), theme.title()),
    ];

    let document = detail_document::build(detail, theme, usize::from(area.width), app.now);
    let total = document.lines.len();
    let shown_end = (view.scroll + usize::from(body.height)).min(total);
    let position = format!(
        "lines {}-{} of {}",
        (view.scroll + 1).min(total),
        shown_end,
        total
    );
    let position_width = position.chars().count() as u16;
    frame.render_widget(
        Line::from(position)
            .style(theme.dim())
            .alignment(ratatui::layout::Alignment::Right),
        title_area,
    );
    let title_width = title_area.width.saturating_sub(position_width + 1);
    frame.render_widget(
        Line::from(title),
        Rect {
            width: title_width,
            ..title_area
        },
    );

    let lines: Vec<Line<'static>> = document
        .lines
        .into_iter()
        .skip(view.scroll)
        .take(usize::from(body.height))
        .collect();
    frame.render_widget(Paragraph::new(lines), body);
}
