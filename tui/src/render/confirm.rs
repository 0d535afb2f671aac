//! The replay confirmation: how many deliveries go to which targets, before anything is sent.

use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::layout;
use crate::app::{App, ReplayConfirm};
use crate::format;

/// Targets listed by name; the rest are summed up in one line.
const MAX_TARGETS_SHOWN: usize = 8;

/// Width of the confirmation box, in columns.
const BOX_WIDTH: u16 = 72;

pub(super) fn render(app: &App, confirmation: &ReplayConfirm, frame: &mut Frame) {
    let theme = app.theme;
    let counted = &confirmation.counted;
    let url_width = usize::from(BOX_WIDTH.min(frame.area().width).saturating_sub(14));
    let mut lines = vec![
        Line::from(Span::styled(
            format!("Replay {} deliveries?", format::count(counted.queued)),
            theme.title(),
        )),
        Line::from(format!(
            "{}, to {} targets:",
            confirmation.scope,
            counted.targets.len()
        )),
    ];
    for target in counted.targets.iter().take(MAX_TARGETS_SHOWN) {
        lines.push(Line::from(format!(
            "  {:>8}  {}",
            format::count(target.count),
            format::target(&target.url, url_width)
        )));
    }
    if counted.targets.len() > MAX_TARGETS_SHOWN {
        let rest = &counted.targets[MAX_TARGETS_SHOWN..];
        let deliveries: u64 = rest.iter().map(|target| target.count).sum();
        lines.push(Line::from(format!(
            "  {:>8}  to {} more targets",
            format::count(deliveries),
            rest.len()
        )));
    }
    if counted.skipped > 0 {
        lines.push(Line::from(Span::styled(
            format!(
                "{} skipped: in flight, or their endpoint was deleted",
                format::count(counted.skipped)
            ),
            theme.dim(),
        )));
    }
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled("y", theme.key()),
        Span::raw(" replay   "),
        Span::styled("n", theme.key()),
        Span::raw(" cancel"),
    ]));
    let height = lines.len() as u16 + 2;
    let area = layout::centered(frame.area(), BOX_WIDTH, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" confirm replay ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
