//! The screen's fixed layout: a two-line header, the main pane with its column header or title
//! line, and a two-line footer. `update` uses the same numbers to page and scroll.

use ratatui::layout::{Constraint, Layout, Rect};

/// Rows of the header: daemon state and totals, then the filter.
pub const HEADER_ROWS: u16 = 2;

/// Rows of the footer: messages and position, then key hints.
pub const FOOTER_ROWS: u16 = 2;

/// Rows of list or document content in the main pane of a terminal `height` rows tall.
pub fn list_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(HEADER_ROWS + FOOTER_ROWS + 1)).max(1)
}

/// The screen's areas.
#[derive(Debug, Clone, Copy)]
pub struct Areas {
    /// The header.
    pub header: Rect,
    /// The main pane, its title or column header line included.
    pub body: Rect,
    /// The footer.
    pub footer: Rect,
}

/// Splits the screen.
pub fn split(area: Rect) -> Areas {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(HEADER_ROWS),
        Constraint::Min(1),
        Constraint::Length(FOOTER_ROWS),
    ])
    .areas(area);
    Areas {
        header,
        body,
        footer,
    }
}

/// A box of at most `width` x `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}
