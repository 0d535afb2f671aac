//! Binding the control socket: owner-only permissions, and a leftover socket removed only once
//! it is confirmed that no daemon answers on it.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Permissions of the control socket: owner read and write only.
const SOCKET_MODE: u32 = 0o600;

/// A control socket that cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers on the socket path.
    #[error("another belterd is running on the control socket {0}: stop it, or pass another --control-socket")]
    InUse(PathBuf),
    /// The socket or its directory could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Binds the control socket at `path`, creating its directory (mode 0700) when missing.
pub(crate) fn bind_control_socket(path: &Path) -> Result<UnixListener, SocketError> {
    let io_error = |source| SocketError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_error)?;
        }
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => return Err(SocketError::InUse(path.to_owned())),
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(_) => {
            // Nobody answers: a socket left by a daemon that did not stop cleanly.
            tracing::info!(path = %path.display(), "removing a stale control socket");
            std::fs::remove_file(path).map_err(io_error)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io_error)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_socket_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let _first = bind_control_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let error = bind_control_socket(&path).unwrap_err();
        assert!(matches!(error, SocketError::InUse(_)), "{error}");
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(bind_control_socket(&path).unwrap());
        assert!(path.exists());
        assert!(bind_control_socket(&path).is_ok());
    }
}
