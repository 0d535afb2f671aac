//! Styles of the console. Colour is only ever a second signal: every state that colour marks
//! also has a symbol or a text attribute, so the console reads on a monochrome terminal and with
//! `NO_COLOR` set.

use ratatui::style::{Color, Modifier, Style};

/// Whether colour is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// False when `NO_COLOR` is set.
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value, as <https://no-color.org> asks.
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Theme { color: !no_color }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// A failure: bold, and red with colour.
    pub fn failed(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// A failure that will be retried.
    pub fn retrying(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// A success.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Work under way.
    pub fn active(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// Secondary text such as hints and labels.
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    /// Headings and the product name.
    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// A key name in hints.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// A row marked for replay.
    pub fn marked(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
}
