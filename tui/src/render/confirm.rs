//! Confirmations: how many deliveries a replay sends to which targets, and which threshold rule
//! a deletion removes, before anything is sent.

use belter_common::rules::ThresholdRule;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::layout;
use crate::app::{App, ReplayConfirm};
use crate::format;
use crate::rule_line;

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
    if let Some(reasons) = counted.skip_reasons() {
        lines.push(Line::from(Span::styled(
            format!("{} skipped: {reasons}", format::count(counted.skipped)),
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

/// Draws the question whether to delete `rule`.
pub(super) fn render_rule_deletion(app: &App, rule: &ThresholdRule, frame: &mut Frame) {
    let theme = app.theme;
    let box_width = BOX_WIDTH.min(frame.area().width);
    let lines = vec![
        Line::from(Span::styled(
            format!("Delete rule {}?", rule.id),
            theme.title(),
        )),
        Line::from(rule_line::to_line(rule)),
        Line::from(format!("It checks {}.", rule_line::describe(rule))),
        Line::from("New evaluations no longer derive breaches from it."),
        Line::default(),
        Line::from(vec![
            Span::styled("y", theme.key()),
            Span::raw(" delete   "),
            Span::styled("n", theme.key()),
            Span::raw(" cancel"),
        ]),
    ];

    // A long scope id or criterion wraps its lines, and word wrapping can take one row more
    // than the characters alone need.
    let inner_width = usize::from(box_width.saturating_sub(2)).max(1);
    let mut rows = 0;
    for line in &lines {
        let width = line.width();
        rows += if width > inner_width {
            width.div_ceil(inner_width) + 1
        } else {
            1
        };
    }

    let area = layout::centered(frame.area(), box_width, rows as u16 + 2);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" confirm deletion ");
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}
