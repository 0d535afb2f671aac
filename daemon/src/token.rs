//! The ingest token: from the configuration, or generated once into the data directory, and
//! rotated through the control API with an optional grace period for the old token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use subtle::ConstantTimeEq;

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// Shortest ingest token the daemon accepts, in characters.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// A token file that cannot be read or written, or that contains no valid token.
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
    /// The file exists but contains no token.
    #[error("the ingest token file {0} is empty: delete it to generate a new token")]
    Empty(std::path::PathBuf),
    /// The file contains a token that is too short or not printable.
    #[error(
        "the ingest token file {path} is invalid: {problem}. Delete the file to have belterd \
         generate a new token at its next start, or write a token of at least {MIN_TOKEN_LEN} \
         printable ASCII characters without spaces into it"
    )]
    Invalid {
        /// The token file.
        path: std::path::PathBuf,
        /// The problem with the token, described without the token itself.
        problem: String,
    },
    /// The OS random source failed.
    #[error("cannot generate an ingest token: {0}")]
    Random(String),
    /// The token comes from the configuration, so the daemon cannot replace it.
    #[error("the ingest token is set by ingest_token in the config or by BELTER_INGEST_TOKEN: change it there and restart belterd")]
    Configured,
}

/// Describes what makes `token` unfit as an ingest token, or returns `None` for a token of at
/// least [`MIN_TOKEN_LEN`] printable ASCII characters without spaces. The description never
/// contains the token.
pub(crate) fn token_problem(token: &str) -> Option<String> {
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Some(
            "the token contains a space or a character that is not printable ASCII".to_owned(),
        );
    }
    if token.len() < MIN_TOKEN_LEN {
        return Some(format!(
            "the token has {} characters, fewer than {MIN_TOKEN_LEN}",
            token.len()
        ));
    }
    None
}

fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(format!(
        "bt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The tokens ingest accepts: the current one, and the previous one until its grace period ends.
#[derive(Debug)]
pub(crate) struct IngestTokens {
    /// The token file, when the token was generated rather than configured.
    file: Option<PathBuf>,
    tokens: RwLock<Tokens>,
}

#[derive(Debug)]
struct Tokens {
    current: String,
    previous: Option<(String, u64)>,
}

impl IngestTokens {
    /// Tokens starting from `current`; `file` is where a rotation writes the new token, `None`
    /// for a configured token, which cannot be rotated.
    pub(crate) fn new(current: String, file: Option<PathBuf>) -> Self {
        Self {
            file,
            tokens: RwLock::new(Tokens {
                current,
                previous: None,
            }),
        }
    }

    /// The current token.
    pub(crate) fn current(&self) -> String {
        self.read().current.clone()
    }

    /// Checks a presented token in constant time against the current token and, at `now_ms`,
    /// the previous one within its grace period.
    pub(crate) fn accepts(&self, presented: &str, now_ms: u64) -> bool {
        let tokens = self.read();
        let current: bool = presented.as_bytes().ct_eq(tokens.current.as_bytes()).into();
        let previous = tokens
            .previous
            .as_ref()
            .is_some_and(|(token, valid_until)| {
                let same: bool = presented.as_bytes().ct_eq(token.as_bytes()).into();
                same && *valid_until > now_ms
            });
        current | previous
    }

    /// Replaces the token, writing the new one to the token file first. The old token is
    /// accepted until `now_ms + grace_ms`; with no grace it stops at once. Returns the new token.
    pub(crate) fn rotate(&self, grace_ms: u64, now_ms: u64) -> Result<String, TokenError> {
        let Some(path) = &self.file else {
            return Err(TokenError::Configured);
        };
        let token = generate()?;
        write_token_file(path, &token)?;
        let mut tokens = self
            .tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = std::mem::replace(&mut tokens.current, token.clone());
        tokens.previous = (grace_ms > 0).then(|| (old, now_ms.saturating_add(grace_ms)));
        Ok(token)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Replaces the token file through a temporary file (mode 0600) and a rename, so a crash leaves
/// the old token or the new one, never a torn file.
fn write_token_file(path: &Path, token: &str) -> Result<(), TokenError> {
    let io_error = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("token.new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error)?;
    writeln!(file, "{token}").map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)?;
    Ok(())
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
            if let Some(problem) = token_problem(&token) {
                return Err(TokenError::Invalid {
                    path: path.to_owned(),
                    problem,
                });
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
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

    #[test]
    fn rotation_keeps_old_token_for_grace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.token");
        let first = load_or_generate(&path).unwrap();
        let tokens = IngestTokens::new(first.clone(), Some(path.clone()));
        let second = tokens.rotate(1_000, 10_000).unwrap();
        assert_ne!(first, second);
        assert_eq!(load_or_generate(&path).unwrap(), second);
        assert!(tokens.accepts(&second, 10_500));
        assert!(tokens.accepts(&first, 10_500));
        assert!(!tokens.accepts(&first, 11_000));
        let third = tokens.rotate(0, 11_000).unwrap();
        assert!(!tokens.accepts(&second, 11_000));
        assert!(tokens.accepts(&third, 11_000));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn short_token_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.token");
        std::fs::write(&path, "tiny-tok\n").unwrap();

        let error = load_or_generate(&path).unwrap_err();

        assert!(matches!(error, TokenError::Invalid { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("8 characters, fewer than 16"), "{message}");
        assert!(message.contains("Delete the file"), "{message}");
        assert!(!message.contains("tiny-tok"), "{message}");
    }

    #[test]
    fn token_file_with_space_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.token");
        std::fs::write(&path, "long enough but spaced\n").unwrap();

        let message = load_or_generate(&path).unwrap_err().to_string();

        assert!(message.contains("contains a space"), "{message}");
        assert!(!message.contains("spaced"), "{message}");
    }

    #[test]
    fn configured_token_cannot_rotate() {
        let tokens = IngestTokens::new("configured-token-1234".to_owned(), None);
        assert!(matches!(tokens.rotate(0, 0), Err(TokenError::Configured)));
        assert!(tokens.accepts("configured-token-1234", 0));
    }
}
