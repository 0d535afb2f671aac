//! The default path of belterd's control socket, which matches the daemon's own default.

use std::ffi::OsString;
use std::path::PathBuf;

/// File name of the control socket inside the data directory.
const SOCKET_NAME: &str = "control.sock";

/// Derives the socket path from the environment: `$XDG_DATA_HOME/belter/control.sock`, else
/// `$HOME/.local/share/belter/control.sock`.
pub(crate) fn default_socket_path() -> anyhow::Result<PathBuf> {
    socket_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")).ok_or_else(|| {
        anyhow::anyhow!(
            "no control socket path: pass --socket or set BELTER_SOCKET, or set HOME or \
             XDG_DATA_HOME"
        )
    })
}

fn socket_path_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if let Some(base) = xdg_data_home.filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(base).join("belter").join(SOCKET_NAME));
    }
    let home = home.filter(|value| !value.is_empty())?;
    Some(
        PathBuf::from(home)
            .join(".local/share/belter")
            .join(SOCKET_NAME),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_data_home_wins() {
        assert_eq!(
            socket_path_from(Some("/data".into()), Some("/home/ops".into())),
            Some(PathBuf::from("/data/belter/control.sock"))
        );
    }

    #[test]
    fn home_is_the_fallback() {
        assert_eq!(
            socket_path_from(Some("".into()), Some("/home/ops".into())),
            Some(PathBuf::from("/home/ops/.local/share/belter/control.sock"))
        );
        assert_eq!(
            socket_path_from(None, Some("/home/ops".into())),
            Some(PathBuf::from("/home/ops/.local/share/belter/control.sock"))
        );
    }

    #[test]
    fn no_environment_gives_none() {
        assert_eq!(socket_path_from(None, None), None);
        assert_eq!(socket_path_from(None, Some("".into())), None);
    }
}
