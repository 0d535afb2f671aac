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
    let mut title = vec![Span::styled(format!("delivery {}", view.id), theme.title())];
    let Some(detail) = &view.detail else {
        frame.render_widget(Line::from(title), title_area);
        let text = match &view.error {
            Some(error) => Span::styled(format!("cannot load the delivery: {error}"), theme.failed()),
            None => Span::styled("loading…", theme.dim()),
        };
        frame.render_widget(Line::from(text), body);
        return;
    };
    let badge = delivery_badge(&detail.delivery);
    title.push(Span::raw(format!(" · {} · ", detail.delivery.event_type)));
    title.push(Span::styled(badge.text(), badge.tone.style(theme)));
    let document = detail_document::build(detail, theme, usize::from(area.width), app.now);
    let total = document.lines.len();
    let shown_end = (view.scroll + usize::from(body.height)).min(total);
    title.push(Span::styled(
        format!(
            " · lines {}-{} of {}",
            (view.scroll + 1).min(total),
            shown_end,
            total
        ),
        theme.dim(),
    ));
    frame.render_widget(Line::from(title), title_area);
    let lines: Vec<Line<'static>> = document
        .lines
        .into_iter()
        .skip(view.scroll)
        .take(usize::from(body.height))
        .collect();
    frame.render_widget(Paragraph::new(lines), body);
}
