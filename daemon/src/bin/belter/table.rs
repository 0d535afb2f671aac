//! Plain-text layout for terminals: tables with aligned columns and label-value lists.

/// Spaces between two columns.
const COLUMN_GAP: usize = 2;

/// A table with a header row, rendered with columns padded to their widest cell.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Creates a table with these column headers and no rows.
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|header| (*header).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row. Missing cells are left empty and extra cells dropped, and control
    /// characters such as newlines become spaces so that a row stays on one line.
    pub(crate) fn push(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|cell| one_line(&cell))
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Renders the header and every row, each line ending in a newline and no trailing spaces.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|cell| width(cell)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                widths[column] = widths[column].max(width(cell));
            }
        }

        let mut output = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if column + 1 < row.len() {
                    let padding = widths[column] - width(cell) + COLUMN_GAP;
                    line.extend(std::iter::repeat_n(' ', padding));
                }
            }
            output.push_str(line.trim_end());
            output.push('\n');
        }
        output
    }
}

/// Renders `label  value` lines with the values aligned.
pub(crate) fn render_fields(fields: &[(&str, String)]) -> String {
    let label_width = fields
        .iter()
        .map(|(label, _)| width(label))
        .max()
        .unwrap_or(0);
    let mut output = String::new();
    for (label, value) in fields {
        let padding = label_width - width(label) + COLUMN_GAP;
        let line = format!("{label}{}{}", " ".repeat(padding), one_line(value));
        output.push_str(line.trim_end());
        output.push('\n');
    }
    output
}

/// Shortens `text` to at most `max_chars` characters, marking a cut with `…`.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let text = one_line(text);
    if width(&text) <= max_chars {
        return text;
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Width of a cell in characters. Wide characters such as CJK count as one, so a column with
/// them may be misaligned by a few spaces.
fn width(text: &str) -> usize {
    text.chars().count()
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_widest_cell() {
        let mut table = Table::new(&["ID", "STATUS", "URL"]);
        table.push(vec!["ep_1".into(), "active".into(), "http://a".into()]);
        table.push(vec!["ep_22".into(), "paused".into(), "http://bb".into()]);
        assert_eq!(
            table.render(),
            "ID     STATUS  URL\n\
             ep_1   active  http://a\n\
             ep_22  paused  http://bb\n"
        );
    }

    #[test]
    fn header_can_be_widest() {
        let mut table = Table::new(&["ATTEMPTS", "X"]);
        table.push(vec!["1".into(), "y".into()]);
        assert_eq!(table.render(), "ATTEMPTS  X\n1         y\n");
    }

    #[test]
    fn empty_last_cells_leave_no_trailing_space() {
        let mut table = Table::new(&["A", "B"]);
        table.push(vec!["long value".into(), String::new()]);
        for line in table.render().lines() {
            assert_eq!(line, line.trim_end(), "{line:?}");
        }
    }

    #[test]
    fn short_rows_are_padded_and_long_rows_cut() {
        let mut table = Table::new(&["A", "B"]);
        table.push(vec!["1".into()]);
        table.push(vec!["2".into(), "3".into(), "4".into()]);
        assert_eq!(table.render(), "A  B\n1\n2  3\n");
    }

    #[test]
    fn newlines_in_cells_become_spaces() {
        let mut table = Table::new(&["ERROR"]);
        table.push(vec!["bad\ngateway\tnow".into()]);
        assert_eq!(table.render(), "ERROR\nbad gateway now\n");
    }

    #[test]
    fn multibyte_text_counts_characters() {
        let mut table = Table::new(&["A", "B"]);
        table.push(vec!["été".into(), "x".into()]);
        table.push(vec!["long".into(), "y".into()]);
        assert_eq!(table.render(), "A     B\nété   x\nlong  y\n");
    }

    #[test]
    fn table_without_rows_is_header_only() {
        let table = Table::new(&["A"]);
        assert_eq!(table.render(), "A\n");
    }

    #[test]
    fn fields_align_values() {
        let output = render_fields(&[
            ("id", "ep_1".to_owned()),
            ("description", String::new()),
            ("url", "http://a".to_owned()),
        ]);
        assert_eq!(
            output,
            "id           ep_1\n\
             description\n\
             url          http://a\n"
        );
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("longer than ten", 10), "longer th…");
        assert_eq!(truncate("two\nlines", 20), "two lines");
    }
}
