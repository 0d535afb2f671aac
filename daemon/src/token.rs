//! The ingest token: from the configuration, or generated once into the data directory, and
//! rotated through the control API with an optional grace period for the old token. The old
//! token and the end of its grace period are kept in a file beside the token file, so the grace
//! period survives a restart.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use base64::Engine;
use belter_common::Timestamp;
use subtle::ConstantTimeEq;

use crate::config::{INGEST_TOKEN_NAME, PREVIOUS_INGEST_TOKEN_NAME};

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// Shortest ingest token the daemon accepts, in characters.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// Maximum grace period of an ingest token rotation.
pub(crate) const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

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
    /// The file of the previous token is not in the format the daemon writes.
    #[error(
        "the previous ingest token file {path} is invalid: {problem}. Delete the file to end \
         the old token's grace period at once. The current token stays valid"
    )]
    InvalidPrevious {
        /// The file of the previous token.
        path: std::path::PathBuf,
        /// The problem with the file, described without the token itself.
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
    /// The token files, when the token was generated rather than configured.
    files: Option<TokenFiles>,
    tokens: RwLock<Tokens>,
    /// Held for a whole rotation, so two rotations cannot interleave their file writes.
    rotation: Mutex<()>,
}

/// The files of a generated token in the data directory.
#[derive(Debug)]
struct TokenFiles {
    /// The current token, `ingest.token`.
    current: PathBuf,
    /// The previous token and the end of its grace period, `ingest.token.previous`. It exists
    /// only after a rotation with grace.
    previous: PathBuf,
}

#[derive(Debug)]
struct Tokens {
    current: String,
    /// The previous token and the end of its grace period (Unix ms).
    previous: Option<(String, u64)>,
}

impl IngestTokens {
    /// Returns the tokens for a token set by the configuration. The daemon cannot rotate it and
    /// reads no token file, so a previous token in the data directory is not accepted.
    pub(crate) fn configured(token: String) -> Self {
        Self::from_parts(token, None, None)
    }

    /// Loads the generated token from `ingest.token` in `data_dir`, generating the file when it
    /// is missing, and the previous token from `ingest.token.previous` when its grace period is
    /// still running at `now_ms`. A previous token file whose grace period has ended is removed,
    /// and so is one left beside a newly generated token.
    pub(crate) fn load(data_dir: &Path, now_ms: u64) -> Result<Self, TokenError> {
        let files = TokenFiles {
            current: data_dir.join(INGEST_TOKEN_NAME),
            previous: data_dir.join(PREVIOUS_INGEST_TOKEN_NAME),
        };
        let (current, generated) = load_or_generate(&files.current)?;
        let previous = if generated {
            // Without its token file the old token was replaced by hand, like a rotation
            // without grace, so no earlier token stays valid.
            remove_file(&files.previous)?;
            None
        } else {
            load_previous(&files.previous, now_ms)?
        };
        Ok(Self::from_parts(current, previous, Some(files)))
    }

    fn from_parts(
        current: String,
        previous: Option<(String, u64)>,
        files: Option<TokenFiles>,
    ) -> Self {
        Self {
            files,
            tokens: RwLock::new(Tokens { current, previous }),
            rotation: Mutex::new(()),
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

    /// Replaces the token, writing the token files first, and returns the new token. The old
    /// token is accepted until `now_ms + grace_ms`, also after a restart, or stops at once with
    /// no grace. Only one old token is kept, so a rotation ends an earlier grace period.
    pub(crate) fn rotate(&self, grace_ms: u64, now_ms: u64) -> Result<String, TokenError> {
        let Some(files) = &self.files else {
            return Err(TokenError::Configured);
        };
        let _rotating = self
            .rotation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let token = generate()?;
        let previous = (grace_ms > 0).then(|| (self.current(), now_ms.saturating_add(grace_ms)));
        // The previous token's file changes first. A crash or a failed write before the token
        // file is replaced then leaves the old token current, never a new token without the old
        // one's grace. Memory follows each file as it changes, so a failed rotation without
        // grace still ends the earlier grace period in memory as on disk.
        match &previous {
            Some((old, valid_until)) => {
                write_private_file(&files.previous, &format!("{old}\n{valid_until}\n"))?;
            }
            None => remove_file(&files.previous)?,
        }
        self.write().previous = previous;
        write_private_file(&files.current, &format!("{token}\n"))?;
        self.write().current = token.clone();
        Ok(token)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tokens> {
        self.tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Replaces `path` through a temporary file (mode 0600) and a rename, so a crash leaves the old
/// contents or the new ones, never a torn file.
fn write_private_file(path: &Path, contents: &str) -> Result<(), TokenError> {
    let temporary = write_temporary(path, contents)?;
    std::fs::rename(&temporary, path).map_err(|source| TokenError::Io {
        path: path.to_owned(),
        source,
    })?;
    sync_parent(path)
}

/// Writes `contents` to `<path>.new` with mode 0600 and flushes it, and returns that path.
fn write_temporary(path: &Path, contents: &str) -> Result<PathBuf, TokenError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let io_error = |source| TokenError::Io {
        path: temporary.clone(),
        source,
    };
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(temporary)
}

/// Removes `path` if it exists.
fn remove_file(path: &Path) -> Result<(), TokenError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TokenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Flushes the directory of `path`, so a rename or removal in it survives a power loss.
fn sync_parent(path: &Path) -> Result<(), TokenError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| TokenError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Reads the token from `path`, or generates one there with mode 0600 when the file is missing.
/// Returns the token and whether it was generated now.
fn load_or_generate(path: &Path) -> Result<(String, bool), TokenError> {
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
            Ok((token, false))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
            // The token file is a hard link to a complete temporary file, so a crash never
            // leaves it empty. Like an exclusive create, the link fails if the file appeared
            // meanwhile.
            let temporary = write_temporary(path, &format!("{token}\n"))?;
            let linked = std::fs::hard_link(&temporary, path);
            let _ = std::fs::remove_file(&temporary);
            linked.map_err(io_error)?;
            sync_parent(path)?;
            tracing::info!(path = %path.display(), "generated the ingest token");
            Ok((token, true))
        }
        Err(error) => Err(io_error(error)),
    }
}

/// Reads the previous token and the end of its grace period from `path`: the token on the first
/// line and the end in Unix milliseconds on the second. Returns `None` when the file is missing
/// or when the grace period has ended at `now_ms`, and removes the file in the second case.
fn load_previous(path: &Path, now_ms: u64) -> Result<Option<(String, u64)>, TokenError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };

    let invalid = |problem: String| TokenError::InvalidPrevious {
        path: path.to_owned(),
        problem,
    };

    let mut lines = text.lines().map(str::trim);
    let token = lines.next().unwrap_or_default();
    if let Some(problem) = token_problem(token) {
        return Err(invalid(format!("on the first line, {problem}")));
    }
    let valid_until = lines
        .next()
        .and_then(|line| line.parse::<u64>().ok())
        .ok_or_else(|| {
            invalid(
                "the second line is not the end of the grace period in Unix milliseconds"
                    .to_owned(),
            )
        })?;

    // A rotation never grants more than the maximum, so a later end was written by hand.
    let latest = now_ms.saturating_add(u64::try_from(MAX_GRACE.as_millis()).unwrap_or(u64::MAX));
    let valid_until = if valid_until > latest {
        tracing::warn!(
            path = %path.display(),
            written = %Timestamp::from_millis(valid_until),
            "the previous ingest token's grace period ends later than the 7-day maximum allows, so it ends at the maximum"
        );
        latest
    } else {
        valid_until
    };

    if valid_until <= now_ms {
        remove_file(path)?;
        tracing::info!(
            path = %path.display(),
            "removed the previous ingest token, whose grace period has ended"
        );
        return Ok(None);
    }

    tracing::info!(
        valid_until = %Timestamp::from_millis(valid_until),
        "the previous ingest token is accepted until the end of its grace period"
    );
    Ok(Some((token.to_owned(), valid_until)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_once_with_owner_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INGEST_TOKEN_NAME);
        let (first, generated) = load_or_generate(&path).unwrap();
        assert!(generated);
        assert!(first.len() > 40);
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [INGEST_TOKEN_NAME], "no temporary file is left");
        assert_eq!(load_or_generate(&path).unwrap(), (first, false));
    }

    #[test]
    fn rotation_keeps_old_token_for_grace() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        let second = tokens.rotate(1_000, 10_000).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            load_or_generate(&dir.path().join(INGEST_TOKEN_NAME)).unwrap(),
            (second.clone(), false)
        );
        assert!(tokens.accepts(&second, 10_500));
        assert!(tokens.accepts(&first, 10_500));
        assert!(!tokens.accepts(&first, 11_000));
        let third = tokens.rotate(0, 11_000).unwrap();
        assert!(!tokens.accepts(&second, 11_000));
        assert!(tokens.accepts(&third, 11_000));
        assert_eq!(mode(&dir.path().join(INGEST_TOKEN_NAME)), 0o600);
    }

    #[test]
    fn hand_written_grace_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.token.previous");
        std::fs::write(&path, "bt_previous_token_0123456789\n4102444800000\n").unwrap();
        let now = 1_000_000;
        let (token, until) = load_previous(&path, now)
            .unwrap()
            .expect("a previous token");
        assert_eq!(token, "bt_previous_token_0123456789");
        assert_eq!(until, now + 7 * 24 * 3600 * 1_000);
    }

    #[test]
    fn grace_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let previous_path = dir.path().join(PREVIOUS_INGEST_TOKEN_NAME);
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        let second = tokens.rotate(1_000, 10_000).unwrap();
        drop(tokens);

        let reloaded = IngestTokens::load(dir.path(), 10_500).unwrap();
        assert_eq!(reloaded.current(), second);
        assert!(reloaded.accepts(&second, 10_500));
        assert!(reloaded.accepts(&first, 10_500));
        assert!(!reloaded.accepts(&first, 11_000));
        assert_eq!(mode(&previous_path), 0o600);
        assert!(!dir.path().join("ingest.token.previous.new").exists());
    }

    #[test]
    fn expired_previous_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let previous_path = dir.path().join(PREVIOUS_INGEST_TOKEN_NAME);
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        tokens.rotate(1_000, 10_000).unwrap();
        assert!(previous_path.exists());

        let reloaded = IngestTokens::load(dir.path(), 11_000).unwrap();
        assert!(!reloaded.accepts(&first, 10_500));
        assert!(!previous_path.exists());
    }

    #[test]
    fn rotation_without_grace_removes_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let previous_path = dir.path().join(PREVIOUS_INGEST_TOKEN_NAME);
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        let second = tokens.rotate(60_000, 10_000).unwrap();
        let third = tokens.rotate(0, 20_000).unwrap();
        assert!(!previous_path.exists());
        drop(tokens);

        let reloaded = IngestTokens::load(dir.path(), 20_000).unwrap();
        assert!(reloaded.accepts(&third, 20_000));
        assert!(!reloaded.accepts(&second, 20_000));
        assert!(!reloaded.accepts(&first, 20_000));
    }

    #[test]
    fn second_grace_replaces_first() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        let second = tokens.rotate(60_000, 10_000).unwrap();
        let third = tokens.rotate(60_000, 20_000).unwrap();
        drop(tokens);

        let reloaded = IngestTokens::load(dir.path(), 30_000).unwrap();
        assert!(reloaded.accepts(&third, 30_000));
        assert!(reloaded.accepts(&second, 30_000));
        assert!(!reloaded.accepts(&first, 30_000));
        assert!(!reloaded.accepts(&second, 80_000));
    }

    #[test]
    fn regenerated_token_drops_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = IngestTokens::load(dir.path(), 10_000).unwrap();
        let first = tokens.current();
        tokens.rotate(60_000, 10_000).unwrap();
        drop(tokens);
        std::fs::remove_file(dir.path().join(INGEST_TOKEN_NAME)).unwrap();

        let reloaded = IngestTokens::load(dir.path(), 20_000).unwrap();
        assert!(!reloaded.accepts(&first, 20_000));
        assert!(!dir.path().join(PREVIOUS_INGEST_TOKEN_NAME).exists());
    }

    #[test]
    fn short_token_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INGEST_TOKEN_NAME);
        std::fs::write(&path, "tiny-tok\n").unwrap();

        let error = IngestTokens::load(dir.path(), 0).unwrap_err();

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
        std::fs::write(
            dir.path().join(INGEST_TOKEN_NAME),
            "long enough but spaced\n",
        )
        .unwrap();

        let message = IngestTokens::load(dir.path(), 0).unwrap_err().to_string();

        assert!(message.contains("contains a space"), "{message}");
        assert!(!message.contains("spaced"), "{message}");
    }

    #[test]
    fn invalid_previous_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = IngestTokens::load(dir.path(), 0).unwrap();
        drop(tokens);
        let path = dir.path().join(PREVIOUS_INGEST_TOKEN_NAME);
        for (text, expected) in [
            ("bt_previous-token-0123\nsoon\n", "second line"),
            ("bt_previous-token-0123\n", "second line"),
            ("tiny-tok\n99999\n", "fewer than 16"),
        ] {
            std::fs::write(&path, text).unwrap();

            let error = IngestTokens::load(dir.path(), 0).unwrap_err();

            let message = error.to_string();
            assert!(
                matches!(error, TokenError::InvalidPrevious { .. }),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(!message.contains("previous-token"), "{message}");
            assert!(!message.contains("tiny-tok"), "{message}");
        }
    }

    #[test]
    fn configured_token_cannot_rotate() {
        let tokens = IngestTokens::configured("configured-token-1234".to_owned());
        assert!(matches!(tokens.rotate(0, 0), Err(TokenError::Configured)));
        assert!(tokens.accepts("configured-token-1234", 0));
    }
}
