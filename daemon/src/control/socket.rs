//! Binding the control socket: owner-only permissions, and a leftover socket removed only once
//! no daemon accepts connections on it.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Permissions of the control socket: owner read and write only.
const SOCKET_MODE: u32 = 0o600;
/// Permissions of the control socket shared with a group.
const GROUP_SOCKET_MODE: u32 = 0o660;

/// Longest Unix socket path in bytes: `sun_path` has room for 108 bytes on Linux, the terminating NUL
/// included.
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// A control socket that cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon accepts connections on the socket path.
    #[error("another belterd is running on the control socket {0}: stop it, or pass another --control-socket")]
    InUse(PathBuf),
    /// Something other than a socket is at the socket path, so it is left alone.
    #[error(
        "{0} exists and is not a socket: pass another --control-socket, or move that file away"
    )]
    NotASocket(PathBuf),
    /// A symbolic link is at the socket path; belterd neither follows nor replaces it.
    #[error("{0} is a symbolic link: pass the path of the socket itself as --control-socket")]
    SymbolicLink(PathBuf),
    /// The path is longer than a Unix socket address can hold.
    #[error(
        "the control socket path {path} is {bytes} bytes long, and a Unix socket path may have \
         at most {MAX_SOCKET_PATH_BYTES}: pass a shorter --control-socket"
    )]
    TooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        bytes: usize,
    },
    /// The group named for the socket does not exist.
    #[error("unknown control_socket_group {0:?}: name a group from /etc/group, or remove the key")]
    UnknownGroup(String),
    /// The socket or its directory could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Looks a group up by name in `/etc/group`.
pub(crate) fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let group = fields.next()?;
        let gid = fields.nth(1)?;
        (group == name).then(|| gid.parse().ok()).flatten()
    })
}

/// Rejects a socket path longer than a Unix socket address can hold. The daemon checks this
/// before it creates anything in its data directory.
pub(crate) fn check_socket_path(path: &Path) -> Result<(), SocketError> {
    let bytes = path.as_os_str().len();
    if bytes > MAX_SOCKET_PATH_BYTES {
        return Err(SocketError::TooLong {
            path: path.to_owned(),
            bytes,
        });
    }
    Ok(())
}

/// Binds the control socket at `path`, creating its directory (mode 0700) when missing. With a
/// `group`, the socket belongs to that group with mode 0660, else it is owner-only.
pub(crate) fn bind_control_socket(
    path: &Path,
    group: Option<&str>,
) -> Result<UnixListener, SocketError> {
    check_socket_path(path)?;
    let gid = match group {
        Some(name) => {
            Some(group_id(name).ok_or_else(|| SocketError::UnknownGroup(name.to_owned()))?)
        }
        None => None,
    };
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
    if std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
        return Err(SocketError::SymbolicLink(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => return Err(SocketError::InUse(path.to_owned())),
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        // Only a refused connection shows that nothing listens. Any other error, such as a
        // permission denied by a live daemon's socket, leaves the path alone.
        Err(error) if error.kind() != ErrorKind::ConnectionRefused => {
            return Err(io_error(error));
        }
        Err(_) => {
            let metadata = std::fs::symlink_metadata(path).map_err(io_error)?;
            if !metadata.file_type().is_socket() {
                return Err(SocketError::NotASocket(path.to_owned()));
            }
            // No daemon accepts connections: a socket left by a daemon that did not stop cleanly.
            tracing::info!(path = %path.display(), "removing a stale control socket");
            std::fs::remove_file(path).map_err(io_error)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    let mode = match gid {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_error)?;
            GROUP_SOCKET_MODE
        }
        None => SOCKET_MODE,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_socket_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let _first = bind_control_socket(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let error = bind_control_socket(&path, None).unwrap_err();
        assert!(matches!(error, SocketError::InUse(_)), "{error}");
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(bind_control_socket(&path, None).unwrap());
        assert!(path.exists());
        assert!(bind_control_socket(&path, None).is_ok());
    }

    #[tokio::test]
    async fn regular_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "operator notes").unwrap();
        let error = bind_control_socket(&path, None).unwrap_err();
        assert!(matches!(error, SocketError::NotASocket(_)), "{error}");
        assert!(error.to_string().contains("notes.txt"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "operator notes");
    }

    #[tokio::test]
    async fn directory_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sockets");
        std::fs::create_dir(&path).unwrap();
        let error = bind_control_socket(&path, None).unwrap_err();
        assert!(matches!(error, SocketError::NotASocket(_)), "{error}");
        assert!(path.is_dir());
    }

    #[tokio::test]
    async fn symbolic_link_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::os::unix::fs::symlink(dir.path().join("missing.sock"), &path).unwrap();
        let error = bind_control_socket(&path, None).unwrap_err();
        assert!(matches!(error, SocketError::SymbolicLink(_)), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[tokio::test]
    async fn long_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x".repeat(120)).join("control.sock");
        let error = bind_control_socket(&path, None).unwrap_err();
        assert!(matches!(error, SocketError::TooLong { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("at most 107"), "{message}");
        assert!(message.contains("shorter --control-socket"), "{message}");
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    #[tokio::test]
    async fn group_gets_read_and_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // Group "root" (gid 0) exists on every Linux system.
        let _listener = bind_control_socket(&path, Some("root")).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, GROUP_SOCKET_MODE);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&metadata), 0);
    }

    #[test]
    fn unknown_group_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let error = bind_control_socket(&path, Some("no-such-group-belter")).unwrap_err();
        assert!(
            error.to_string().contains("no-such-group-belter"),
            "{error}"
        );
    }
}
