//! Drawing: pure functions from `&App` to a frame, one per pane. Nothing here changes state.

mod confirm;
mod detail;
mod endpoints;
mod footer;
mod header;
mod help;
pub mod layout;
mod log_table;
mod rules;

use ratatui::Frame;

use crate::app::{App, Overlay, View};

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let areas = layout::split(frame.area());
    header::render(app, frame, areas.header);
    match app.view {
        View::Log => log_table::render(app, frame, areas.body),
        View::Detail => detail::render(app, frame, areas.body),
        View::Endpoints => endpoints::render(app, frame, areas.body),
        View::Rules => rules::render(app, frame, areas.body),
    }
    footer::render(app, frame, areas.footer);
    match &app.overlay {
        Some(Overlay::Help) => help::render(app, frame),
        Some(Overlay::Confirm(confirmation)) => confirm::render(app, confirmation, frame),
        Some(Overlay::DeleteRule(rule)) => confirm::render_rule_deletion(app, rule, frame),
        None => {}
    }
}

#[cfg(test)]
mod tests;
