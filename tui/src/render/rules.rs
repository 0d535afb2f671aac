//! The threshold rules pane: scope, scope id, criterion and minimum score of every rule, and
//! below them either what a rule does or the line where a new rule is typed.

use ratatui::layout::{Alignment, Constraint, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use crate::app::{App, RuleEditor};
use crate::format;
use crate::rule_line;

const SCOPE_WIDTH: u16 = 6;
/// Width of the minimum score column, enough for its heading.
const MIN_WIDTH: u16 = 9;
const CREATED_WIDTH: u16 = 8;

/// Width of a rule id: `rule_` and 26 characters.
const RULE_ID_WIDTH: u16 = 31;

/// Width from which the rule id gets its own column.
const WIDE_COLUMNS: u16 = 120;

/// Rows below the table: a rule, then two lines of explanation or the rule line.
const BOTTOM_ROWS: u16 = 3;

/// Prompt of the rule line.
const PROMPT: &str = "new rule> ";

/// The syntax reminder under the rule line. It fits 80 columns.
const SYNTAX: &str = "scope:global|brand|team|agent id:ID criterion:NAME (omit: overall) min:SCORE";

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let roomy = area.height > BOTTOM_ROWS + 1;
    let bottom_rows = match (roomy, app.rules.editor.is_some()) {
        (true, _) => BOTTOM_ROWS,
        // Without room for the box, the rule line alone takes the pane's last row.
        (false, true) => 1.min(area.height),
        (false, false) => 0,
    };
    let table = Rect {
        height: area.height - bottom_rows,
        ..area
    };
    let bottom = Rect {
        y: area.y + table.height,
        height: bottom_rows,
        ..area
    };
    render_table(app, frame, table);
    match (&app.rules.editor, roomy) {
        (Some(editor), true) => render_editor(app, editor, frame, bottom),
        (Some(editor), false) if bottom.height > 0 => render_input(app, editor, frame, bottom),
        (None, true) => render_explanation(app, frame, bottom),
        _ => {}
    }
}

fn render_table(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let view = &app.rules;
    if view.rules.is_empty() {
        let text = match (&view.error, view.loading) {
            (Some(error), _) => Span::styled(format!("cannot list rules: {error}"), theme.failed()),
            (None, true) => Span::styled("loading rules…", theme.dim()),
            (None, false) => Span::styled(
                format!(
                    "no threshold rules yet: press a to add one, such as {}",
                    rule_line::EXAMPLE
                ),
                theme.dim(),
            ),
        };
        frame.render_widget(
            Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }

    let wide = area.width >= WIDE_COLUMNS;
    let mut fixed = SCOPE_WIDTH + MIN_WIDTH + CREATED_WIDTH + 4;
    if wide {
        fixed += RULE_ID_WIDTH + 1;
    }
    let name_width = usize::from(area.width.saturating_sub(fixed).max(8) / 2);
    let rows = view.rules.iter().map(|rule| {
        let scope_id = match &rule.scope_id {
            Some(id) => Span::raw(format::truncate(id, name_width)),
            None => Span::styled("*", theme.dim()),
        };
        let criterion = match &rule.criterion {
            Some(name) => Span::raw(format::truncate(name, name_width)),
            None => Span::styled(rule_line::OVERALL, theme.dim()),
        };
        let created = format::age(
            app.now
                .as_millis()
                .saturating_sub(rule.created_at.as_millis()),
        );
        let mut cells = vec![
            Cell::from(rule.scope.as_str()),
            Cell::from(scope_id),
            Cell::from(criterion),
            Cell::from(Line::from(rule.min_score.to_string()).alignment(Alignment::Right)),
            Cell::from(Line::from(created).alignment(Alignment::Right)),
        ];
        if wide {
            cells.push(Cell::from(Span::styled(rule.id.to_string(), theme.dim())));
        }
        Row::new(cells)
    });

    let mut header = vec![
        Cell::from("SCOPE"),
        Cell::from("SCOPE ID"),
        Cell::from("CRITERION"),
        Cell::from(Line::from("MIN SCORE").alignment(Alignment::Right)),
        Cell::from(Line::from("AGE").alignment(Alignment::Right)),
    ];
    let mut widths = vec![
        Constraint::Length(SCOPE_WIDTH),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(MIN_WIDTH),
        Constraint::Length(CREATED_WIDTH),
    ];
    if wide {
        header.push(Cell::from("RULE"));
        widths.push(Constraint::Length(RULE_ID_WIDTH));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim()))
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn render_explanation(app: &App, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let lines = vec![
        Line::from(Span::styled(
            "Scores below the minimum derive a score.threshold_breached event.",
            theme.dim(),
        )),
        Line::from(Span::styled(
            "Per criterion, the most specific rule decides: agent, team, brand, then global.",
            theme.dim(),
        )),
    ];
    let block = Block::new().borders(Borders::TOP).border_style(theme.dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_editor(app: &App, editor: &RuleEditor, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let block = Block::new().borders(Borders::TOP).border_style(theme.dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let input = Rect { height: 1, ..inner };
    render_input(app, editor, frame, input);
    if inner.height > 1 {
        let syntax = Rect {
            y: inner.y + 1,
            height: 1,
            ..inner
        };
        frame.render_widget(Line::from(Span::styled(SYNTAX, theme.dim())), syntax);
    }
}

/// Draws the rule line with its prompt, scrolled so the cursor stays visible, and the cursor.
fn render_input(app: &App, editor: &RuleEditor, frame: &mut Frame, area: Rect) {
    let theme = app.theme;
    let prompt_width = PROMPT.chars().count() as u16;
    let input_width = usize::from(area.width.saturating_sub(prompt_width + 1));
    let scroll = editor.input.visual_scroll(input_width);
    let visible: String = editor.input.value().chars().skip(scroll).collect();
    let mut spans = vec![Span::styled(PROMPT, theme.key()), Span::raw(visible)];
    if editor.submitting {
        spans.push(Span::styled("  adding…", theme.active()));
    }
    frame.render_widget(Line::from(spans), area);
    if !editor.submitting {
        let cursor = editor.input.visual_cursor().saturating_sub(scroll) as u16;
        let x = (area.x + prompt_width + cursor).min(area.right().saturating_sub(1));
        frame.set_cursor_position(Position::new(x, area.y));
    }
}
