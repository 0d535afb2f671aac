//! Taking over the terminal and giving it back: raw mode and the alternate screen on start, and
//! the original state on exit, on error (the guard's drop) and on panic (ratatui's hook).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::layout::Size;
use ratatui::{DefaultTerminal, Frame};

/// Set by the panic hook. A panic in a background task restores the terminal while the main loop
/// still runs, so the loop checks this flag and stops instead of drawing on the restored screen.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
pub struct TerminalGuard {
    /// The terminal, taken out on drop. Its own drop prints with `eprintln!` when it cannot show
    /// the cursor, which panics on a terminal that is gone, so the guard decides whether it runs.
    terminal: Option<DefaultTerminal>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, and installs a panic hook that restores both
    /// before the panic message is printed.
    pub fn start() -> io::Result<Self> {
        let terminal = ratatui::try_init()?;
        let restore_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore_hook(info);
        }));
        Ok(TerminalGuard {
            terminal: Some(terminal),
        })
    }

    fn terminal(&mut self) -> io::Result<&mut DefaultTerminal> {
        self.terminal
            .as_mut()
            .ok_or_else(|| io::Error::other("the terminal was already restored"))
    }

    /// Draws one frame.
    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> io::Result<()> {
        self.terminal()?.draw(render).map(|_| ())
    }

    /// Returns the terminal's size in columns and rows.
    pub fn size(&mut self) -> io::Result<Size> {
        self.terminal()?.size()
    }
}

/// Whether any thread panicked since the terminal was taken over.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let Some(mut terminal) = self.terminal.take() else {
            return;
        };
        // The panic hook restored the terminal already. Leaving the alternate screen twice would
        // move the cursor back over the panic message, so the terminal is left alone then.
        if panicked() {
            std::mem::forget(terminal);
            return;
        }
        // The terminal may be gone, as when an SSH session drops. Errors are ignored then,
        // because nothing is left to restore or to report them on.
        let _ = ratatui::try_restore();
        if terminal.show_cursor().is_ok() {
            drop(terminal);
        } else {
            // Dropping it would retry the cursor and panic on the dead terminal. The process is
            // about to exit, so nothing is lost by not running its drop.
            std::mem::forget(terminal);
        }
    }
}
