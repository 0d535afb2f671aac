//! Taking over the terminal and giving it back: raw mode and the alternate screen on start, and
//! the original state on exit, on error (the guard's drop) and on panic (ratatui's hook).

use ratatui::DefaultTerminal;

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
pub struct TerminalGuard {
    /// The terminal to draw on.
    pub terminal: DefaultTerminal,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, and installs a panic hook that restores both
    /// before the panic message is printed.
    pub fn start() -> std::io::Result<Self> {
        let terminal = ratatui::try_init()?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // The cursor is shown again by the terminal's own drop, which runs after this.
        ratatui::restore();
    }
}
