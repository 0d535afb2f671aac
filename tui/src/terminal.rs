//! Taking over the terminal and giving it back: raw mode and the alternate screen on start, and
//! the original state on exit, on error (the guard's drop) and on panic (ratatui's hook).

use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::DefaultTerminal;

/// Set by the panic hook. A panic in a background task restores the terminal while the main loop
/// still runs, so the loop checks this flag and stops instead of drawing on the restored screen.
static PANICKED: AtomicBool = AtomicBool::new(false);

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
        let restore_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore_hook(info);
        }));
        Ok(TerminalGuard { terminal })
    }
}

/// Whether any thread panicked since the terminal was taken over.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // The panic hook restored the terminal already. Leaving the alternate screen twice would
        // move the cursor back over the panic message, so the terminal is left alone then.
        if !panicked() {
            // The cursor is shown again by the terminal's own drop, which runs after this.
            ratatui::restore();
        }
    }
}
