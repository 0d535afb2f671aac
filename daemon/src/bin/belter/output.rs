//! Output of command results: the API's JSON for scripts, or text for people.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("failed to encode JSON output")?;
    print_text(&format!("{text}\n"))
}

/// Prints `text` on standard output as is. A closed pipe, as with `belter … | head`, is not an
/// error.
pub(crate) fn print_text(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("failed to write to standard output"),
    }
}
