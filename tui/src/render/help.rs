//! The help overlay: every key, from the keymap's own list.

use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::layout;
use crate::app::App;
use crate::keymap::KEY_HELP;

/// Width of the key column.
const KEY_COLUMN: usize = 14;

pub(super) fn render(app: &App, frame: &mut Frame) {
    let theme = app.theme;
    let mut lines = Vec::new();
    for (section, keys) in KEY_HELP {
        lines.push(Line::from(Span::styled(*section, theme.title())));
        for (key, meaning) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<KEY_COLUMN$}"), theme.key()),
                Span::raw(*meaning),
            ]));
        }
    }
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let height = lines.len() as u16 + 2;
    let area = layout::centered(frame.area(), width, height);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" keys · any key closes ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
