//! Command-line options and the default socket path.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// The on-call console for belterd: the live delivery log, failures, replays and endpoints.
#[derive(Debug, Parser)]
#[command(name = "belter-tui", version)]
pub struct Args {
    /// Control socket of belterd [default: $XDG_DATA_HOME/belter/control.sock, else
    /// ~/.local/share/belter/control.sock]
    #[arg(long, env = "BELTER_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Start a belterd with a sample receiver and sample traffic in a temporary directory, and
    /// open the console on it; everything is stopped and removed on exit.
    #[arg(long, conflicts_with = "socket")]
    pub demo: bool,

    /// Path of the belterd binary for --demo [default: next to belter-tui, else on PATH]
    #[arg(long, value_name = "PATH", requires = "demo")]
    pub belterd: Option<PathBuf>,

    /// Write a log to this file; the console never logs to the terminal.
    #[arg(long, env = "BELTER_TUI_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Log filter for --log-file, in tracing's env-filter syntax.
    #[arg(
        long,
        env = "BELTER_TUI_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_level: String,
}

/// The daemon's default control socket: `$XDG_DATA_HOME/belter/control.sock`, else
/// `$HOME/.local/share/belter/control.sock`. `None` when neither variable is set.
pub fn default_socket_path() -> Option<PathBuf> {
    socket_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

fn socket_path_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let data_home = xdg_data_home
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            home.filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(data_home.join("belter").join("control.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_prefers_xdg_data_home() {
        let path = socket_path_from(Some("/xdg".into()), Some("/home/ann".into()));
        assert_eq!(path, Some(PathBuf::from("/xdg/belter/control.sock")));
    }

    #[test]
    fn socket_falls_back_to_home() {
        let path = socket_path_from(Some("".into()), Some("/home/ann".into()));
        assert_eq!(
            path,
            Some(PathBuf::from("/home/ann/.local/share/belter/control.sock"))
        );
        assert_eq!(socket_path_from(None, None), None);
    }
}
