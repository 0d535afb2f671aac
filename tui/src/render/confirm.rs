//! The replay confirmation: how many deliveries go to which targets, before anything is sent.

use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
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
    let box_width = BOX_WIDTH.min(frame.area().width);
    let inner_width = usize::from(box_width.saturating_sub(2)).max(1);
    let targets = counted.targets.len();
    let mut lines = vec![
        Line::from(Span::styled(
            format!("Replay {} deliveries?", format::count(counted.queued)),
            theme.title(),
        )),
        Line::from(confirmation.scope.clone()),
        Line::from(format!(
            "to {targets} target{}:",
            if targets == 1 { "" } else { "s" }
        )),
    ];

    for target in counted.targets.iter().take(MAX_TARGETS_SHOWN) {
        lines.push(Line::from(format!(
            "  {:>8}  {}",
            format::count(target.count),
            format::target(&target.url, inner_width.saturating_sub(12))
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

    // The scope, such as a long filter, may wrap, and word wrapping can take one row more than
    // the characters alone need. Every other line fits the box.
    let scope_length = confirmation.scope.chars().count();
    let scope_rows = if scope_length > inner_width {
        scope_length.div_ceil(inner_width) + 1
    } else {
        1
    };

    let height = (lines.len() + scope_rows - 1) as u16 + 2;
    let area = layout::centered(frame.area(), box_width, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" confirm replay ");
    let text = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(text, area);
}
