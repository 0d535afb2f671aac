//! The ingest token: from the configuration, or generated once into the data directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// A token file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or created.
    #[error("cannot use the ingest token file {path}: {source}")]
    Io {
        /// The token file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file exists but holds no token.
    #[error("the ingest token file {0} is empty: delete it to generate a new token")]
    Empty(std::path::PathBuf),
    /// The OS random source failed.
    #[error("cannot generate an ingest token: {0}")]
    Random(String),
}

/// Reads the token from `path`, or generates one there with mode 0600 when the file is missing.
pub(crate) fn load_or_generate(path: &Path) -> Result<String, TokenError> {
    let io_error = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(TokenError::Empty(path.to_owned()));
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; TOKEN_BYTES];
            getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
            let token = format!(
                "bt_{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            );
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io_error)?;
            writeln!(file, "{token}").map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            tracing::info!(path = %path.display(), "generated the ingest token");
            Ok(token)
        }
        Err(error) => Err(io_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_owner_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.token");
        let first = load_or_generate(&path).unwrap();
        assert!(first.len() > 40);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_generate(&path).unwrap(), first);
    }
}
