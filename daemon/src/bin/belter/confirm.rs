//! Confirmation of a change on a terminal, rejected when standard input is not a terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

/// Asks `question` on standard error and reads the answer from standard input. Without a
/// terminal on standard input it returns an error that names `--yes`.
pub(crate) fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("standard input is not a terminal: pass --yes to confirm");
    }
    ask(question, std::io::stdin().lock(), std::io::stderr().lock())
        .context("failed to read the answer from standard input")
}

/// Writes `question` with a `[y/N]` hint and reads one line. Only `y` or `yes`, in any case,
/// agrees, and end of input declines.
fn ask(question: &str, mut input: impl BufRead, mut prompt: impl Write) -> std::io::Result<bool> {
    write!(prompt, "{question} [y/N] ")?;
    prompt.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> bool {
        let mut prompt = Vec::new();
        let agreed = ask("Replay 3 deliveries?", text.as_bytes(), &mut prompt).unwrap();
        assert_eq!(prompt, b"Replay 3 deliveries? [y/N] ");
        agreed
    }

    #[test]
    fn yes_agrees() {
        assert!(answer("y\n"));
        assert!(answer("YES\n"));
        assert!(answer("  yes  \n"));
    }

    #[test]
    fn anything_else_declines() {
        assert!(!answer("\n"));
        assert!(!answer("n\n"));
        assert!(!answer("yep\n"));
        assert!(!answer(""));
    }
}
