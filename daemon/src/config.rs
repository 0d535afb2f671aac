//! The daemon's configuration: embedded defaults, overlaid by a TOML file, overlaid by flags.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use belter_common::duration::{format_duration, parse_duration, parse_duration_list};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::address_policy::{parse_network, NetworkError};
use crate::token::{token_problem, MIN_TOKEN_LEN};

/// Default address of the ingest API.
pub const DEFAULT_INGEST_ADDR: &str = "127.0.0.1:7700";
/// Default retry delays after the first attempt fails: 30 s, 5 min, 30 min, 2 h and 12 h.
pub const DEFAULT_RETRY_SCHEDULE: &str = "30s,5m,30m,2h,12h";
/// Default time a receiver has to respond 2xx, body read included.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time deliveries, attempts and events are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default size limit of an ingest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default limit of attempts in flight across all endpoints.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default limit of attempts in flight to one endpoint.
pub const DEFAULT_MAX_IN_FLIGHT_PER_ENDPOINT: usize = 64;
/// Default time an endpoint may fail every attempt before the daemon pauses it.
pub const DEFAULT_AUTO_PAUSE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// File name of the control socket inside the data directory.
pub const CONTROL_SOCKET_NAME: &str = "control.sock";
/// File name of the generated ingest token inside the data directory.
pub const INGEST_TOKEN_NAME: &str = "ingest.token";
/// File name of the previous ingest token and the end of its grace period, inside the data
/// directory.
pub const PREVIOUS_INGEST_TOKEN_NAME: &str = "ingest.token.previous";

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file path.
        path: PathBuf,
        /// The read error. It is part of this error's message rather than its source, so the
        /// message is not repeated as a cause.
        error: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("{}: {message}", file_location(path, *line))]
    Parse {
        /// The file path.
        path: PathBuf,
        /// The line of the error, from 1, when the TOML parser reports where it is.
        line: Option<usize>,
        /// The parser's message, prefixed with the key when the line has one.
        message: String,
    },
    /// A value in the config file is out of range or malformed.
    #[error("{}: {error}", file_location(path, Some(*line)))]
    InFile {
        /// The file path.
        path: PathBuf,
        /// The line of the value, from 1.
        line: usize,
        /// What is wrong with the value, naming the key. It is part of this error's message
        /// rather than its source, so the message is not repeated as a cause.
        error: Box<ConfigError>,
    },
    /// A value is out of range or malformed.
    #[error("invalid {key} {value:?}: {fix}")]
    Value {
        /// The config key or flag name.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// What a valid value looks like.
        fix: String,
    },
    /// An entry of the network allowlist is not a CIDR.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// No data directory was given and none could be derived from the environment.
    #[error("no data directory: set --data-dir, or set HOME or XDG_DATA_HOME")]
    NoDataDir,
}

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store, the ingest token and by default the control socket live.
    pub data_dir: PathBuf,
    /// Address of the ingest API; port 0 picks a free port.
    pub ingest_addr: SocketAddr,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// A group whose members may use the control socket: the socket then gets this group and
    /// mode 0660 instead of 0600.
    pub control_socket_group: Option<String>,
    /// Ingest bearer token; generated into the data directory when absent.
    pub ingest_token: Option<String>,
    /// Delays before each retry, counted from the end of the failed attempt before it.
    pub retry_schedule: Vec<Duration>,
    /// Time a receiver has to respond 2xx, body read included.
    pub attempt_timeout: Duration,
    /// How long deliveries, attempts and events are kept.
    pub retention: Duration,
    /// Size limit of an ingest request body, in bytes.
    pub max_body_bytes: usize,
    /// Limit of attempts in flight across all endpoints.
    pub max_in_flight: usize,
    /// Limit of attempts in flight to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Interval of the retention sweep.
    pub retention_interval: Duration,
    /// Internal networks that deliveries may reach; loopback, private, link-local and metadata
    /// addresses are blocked unless listed here.
    pub allow_networks: Vec<IpNet>,
    /// Time an endpoint may fail every attempt before the daemon pauses it.
    pub auto_pause_after: Duration,
}

impl Config {
    /// Returns the embedded defaults, with the data directory under the user's data directory.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(Self::with_data_dir(default_data_dir()?))
    }

    /// Returns the embedded defaults with the given data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            control_socket: data_dir.join(CONTROL_SOCKET_NAME),
            control_socket_group: None,
            data_dir,
            ingest_addr: SocketAddr::from(([127, 0, 0, 1], 7700)),
            ingest_token: None,
            retry_schedule: parse_duration_list(DEFAULT_RETRY_SCHEDULE).unwrap_or_default(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            retention: DEFAULT_RETENTION,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_endpoint: DEFAULT_MAX_IN_FLIGHT_PER_ENDPOINT,
            retention_interval: Duration::from_secs(600),
            allow_networks: Vec::new(),
            auto_pause_after: DEFAULT_AUTO_PAUSE_AFTER,
        }
    }

    /// Applies the keys set in a TOML config file on top of this configuration. A control socket
    /// group that is already set is kept, because the caller sets it from the command line.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let file: FileConfig =
            toml::from_str(&text).map_err(|error| parse_error(path, &text, &error))?;
        self.apply(file).map_err(|located| ConfigError::InFile {
            path: path.to_owned(),
            line: line_of(&text, located.span.start),
            error: Box::new(located.error),
        })
    }

    fn apply(&mut self, file: FileConfig) -> Result<(), Located> {
        if let Some(data_dir) = file.data_dir {
            let socket_was_default = self.control_socket == self.data_dir.join(CONTROL_SOCKET_NAME);
            self.data_dir = data_dir;
            if socket_was_default {
                self.control_socket = self.data_dir.join(CONTROL_SOCKET_NAME);
            }
        }
        if let Some(addr) = file.ingest_addr {
            self.ingest_addr = parse_addr(addr.get_ref()).map_err(at(&addr))?;
        }
        if let Some(socket) = file.control_socket {
            self.control_socket = socket;
        }
        // A group set before the file, by a command-line flag, takes precedence, so the file's
        // group is then neither checked nor used.
        if let Some(group) = file
            .control_socket_group
            .filter(|_| self.control_socket_group.is_none())
        {
            let locate = at(&group);
            self.control_socket_group = Some(check_group(group.into_inner()).map_err(locate)?);
        }
        if let Some(token) = file.ingest_token {
            let locate = at(&token);
            self.ingest_token =
                Some(check_token("ingest_token", token.into_inner()).map_err(locate)?);
        }
        if let Some(schedule) = file.retry_schedule {
            self.retry_schedule = parse_schedule(schedule.get_ref()).map_err(at(&schedule))?;
        }
        if let Some(timeout) = file.attempt_timeout {
            self.attempt_timeout =
                parse_positive("attempt_timeout", timeout.get_ref()).map_err(at(&timeout))?;
        }
        if let Some(retention) = file.retention {
            self.retention =
                parse_positive("retention", retention.get_ref()).map_err(at(&retention))?;
        }
        if let Some(interval) = file.retention_interval {
            self.retention_interval =
                parse_positive("retention_interval", interval.get_ref()).map_err(at(&interval))?;
        }
        if let Some(bytes) = file.max_body_bytes {
            self.max_body_bytes =
                check_count("max_body_bytes", *bytes.get_ref()).map_err(at(&bytes))?;
        }
        if let Some(count) = file.max_in_flight {
            self.max_in_flight =
                check_count("max_in_flight", *count.get_ref()).map_err(at(&count))?;
        }
        if let Some(count) = file.max_in_flight_per_endpoint {
            self.max_in_flight_per_endpoint =
                check_count("max_in_flight_per_endpoint", *count.get_ref()).map_err(at(&count))?;
        }
        if let Some(period) = file.auto_pause_after {
            self.auto_pause_after =
                parse_positive("auto_pause_after", period.get_ref()).map_err(at(&period))?;
        }
        if let Some(networks) = file.allow_networks {
            let mut parsed = Vec::with_capacity(networks.len());
            for text in &networks {
                let network = parse_network(text.get_ref())
                    .map_err(ConfigError::from)
                    .map_err(at(text))?;
                parsed.push(network);
            }
            self.allow_networks = parsed;
        }
        Ok(())
    }

    /// Returns the number of attempts a delivery gets before it fails: the first plus one per retry.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// Returns warnings about valid settings that lose data: a retention shorter than the time a
    /// delivery can take through its retries, which deletes deliveries that still wait for one.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let retrying = self.retry_schedule.iter().sum::<Duration>()
            + self.attempt_timeout.saturating_mul(self.max_attempts());
        if self.retention < retrying {
            warnings.push(format!(
                "retention {} is shorter than the {} that a delivery can take through the retry \
                 schedule {} and its attempt timeouts, so deliveries still waiting for a retry are \
                 deleted: set retention to at least {}",
                format_duration(self.retention),
                format_duration(retrying),
                self.retry_schedule_text(),
                format_duration(round_up_to_unit(retrying)),
            ));
        }
        warnings
    }

    /// Formats the retry schedule as comma-separated text, such as `30s,5m`.
    pub fn retry_schedule_text(&self) -> String {
        let parts: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|delay| format_duration(*delay))
            .collect();
        parts.join(",")
    }
}

/// Rounds a duration up to whole hours, or to whole minutes below an hour, for a value to
/// suggest.
fn round_up_to_unit(duration: Duration) -> Duration {
    let unit = if duration > Duration::from_secs(3_600) {
        3_600
    } else {
        60
    };
    Duration::from_secs(duration.as_secs().div_ceil(unit).saturating_mul(unit))
}

/// The keys a config file may set; every key is optional. Values that need checking keep their
/// place in the file, so an error can name the line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    ingest_addr: Option<Spanned<String>>,
    control_socket: Option<PathBuf>,
    control_socket_group: Option<Spanned<String>>,
    ingest_token: Option<Spanned<String>>,
    retry_schedule: Option<Spanned<String>>,
    attempt_timeout: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    retention_interval: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<usize>>,
    max_in_flight: Option<Spanned<usize>>,
    max_in_flight_per_endpoint: Option<Spanned<usize>>,
    allow_networks: Option<Vec<Spanned<String>>>,
    auto_pause_after: Option<Spanned<String>>,
}

/// A config error with the byte range of the file value that caused it.
#[derive(Debug)]
struct Located {
    span: Range<usize>,
    error: ConfigError,
}

/// Returns a function that attaches the place of `value` to an error about it.
fn at<T>(value: &Spanned<T>) -> impl FnOnce(ConfigError) -> Located {
    let span = value.span();
    move |error| Located { span, error }
}

/// The line, from 1, that contains byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

/// `PATH:LINE`, or `PATH` alone when the line is unknown.
fn file_location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// Turns a TOML error into a one-line message with the file, the line and the key. The parser
/// names an unknown key itself, but for a mistyped value it reports only the value's place, so
/// the key is read from the start of that line.
fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| line_of(text, span.start));
    let message = error.message().trim_end();
    let key = line
        .and_then(|line| key_of_line(text, line))
        .filter(|key| !key.is_empty() && !message.contains(&format!("`{key}`")));
    // serde names Rust's integer types; a config file speaks of whole numbers. Every count in
    // the file must be at least 1, as `check_count` then requires.
    let message = message
        .replace("expected usize", "expected a whole number of 1 or more")
        .replace("expected u64", "expected a whole number of 1 or more");
    let mut message = match key {
        Some(key) => format!("{key}: {message}"),
        None => message,
    };
    if message.ends_with("duplicate key") {
        message.push_str(": keep one of the two lines");
    }
    let wrong_value = message.contains("invalid type") || message.contains("invalid value");
    if let Some(example) = key.filter(|_| wrong_value).and_then(example_value) {
        message.push_str(&format!(
            "; write it as {} = {example}",
            key.unwrap_or_default()
        ));
    }
    ConfigError::Parse {
        path: path.to_owned(),
        line,
        message,
    }
}

/// Finds the key that line `line` (from 1) of a config file sets: the key on that line, or for
/// an element of an array written over several lines, the key that opens the array.
fn key_of_line<'a>(text: &'a str, line: usize) -> Option<&'a str> {
    let lines: Vec<&str> = text.lines().take(line).map(without_comment).collect();
    let mut upward = lines.iter().rev();
    let key = |key: &'a str| key.trim().trim_start_matches('\u{feff}');
    if let Some((found, _)) = upward.next()?.split_once('=') {
        return Some(key(found));
    }
    let (found, value) = upward.find_map(|content| content.split_once('='))?;
    value.trim_start().starts_with('[').then(|| key(found))
}

/// Cuts a `#` comment off a line of TOML, leaving a `#` inside a quoted string alone.
fn without_comment(line: &str) -> &str {
    let mut quoted = None;
    for (index, character) in line.char_indices() {
        match (quoted, character) {
            (None, '"' | '\'') => quoted = Some(character),
            (Some(open), _) if character == open => quoted = None,
            (None, '#') => return &line[..index],
            _ => {}
        }
    }
    line
}

/// Checks that a group for the control socket exists in `/etc/group`.
pub fn check_group(name: String) -> Result<String, ConfigError> {
    if crate::control::group_id(&name).is_some() {
        return Ok(name);
    }
    Err(ConfigError::Value {
        key: "control_socket_group",
        value: name,
        fix: "no such group in /etc/group: name an existing group, or leave the setting out"
            .to_owned(),
    })
}

/// Returns a valid value of a config file key, written as TOML, for messages about a value of
/// the wrong type.
fn example_value(key: &str) -> Option<&'static str> {
    Some(match key {
        "data_dir" => "\"/var/lib/belter\"",
        "ingest_addr" => "\"127.0.0.1:7700\"",
        "control_socket" => "\"/run/belter/control.sock\"",
        "ingest_token" => "\"<16 or more printable characters>\"",
        "retry_schedule" => "\"30s,5m,30m,2h,12h\"",
        "attempt_timeout" => "\"15s\"",
        "retention" => "\"7d\"",
        "retention_interval" => "\"10m\"",
        "max_body_bytes" => "1048576",
        "max_in_flight" | "max_in_flight_per_endpoint" => "64",
        "allow_networks" => "[\"10.0.0.0/8\"]",
        "auto_pause_after" => "\"24h\"",
        _ => return None,
    })
}

/// Parses an ingest listen address such as `127.0.0.1:7700`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| ConfigError::Value {
        key: "ingest_addr",
        value: text.to_owned(),
        fix: "expected an IP address and port such as 127.0.0.1:7700".to_owned(),
    })
}

/// Parses a retry schedule such as `30s,5m,30m,2h,12h`; an empty text means no retries.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, ConfigError> {
    let invalid = |fix: String| ConfigError::Value {
        key: "retry_schedule",
        value: text.to_owned(),
        fix,
    };
    let schedule = parse_duration_list(text).map_err(|error| {
        invalid(format!(
            "{error}; write the delays comma-separated, such as 30s,5m,30m,2h,12h"
        ))
    })?;
    if schedule.iter().any(Duration::is_zero) {
        return Err(invalid(
            "a delay of zero would retry at once: use delays of 1ms or more, or an empty \
             schedule for no retries"
                .to_owned(),
        ));
    }
    Ok(schedule)
}

/// Parses a duration that must be longer than zero.
pub fn parse_positive(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    match parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(ConfigError::Value {
            key,
            value: text.to_owned(),
            fix: "must be longer than zero".to_owned(),
        }),
        Err(error) => Err(ConfigError::Value {
            key,
            value: text.to_owned(),
            fix: error.to_string(),
        }),
    }
}

/// Checks that a count is at least 1.
pub fn check_count(key: &'static str, count: usize) -> Result<usize, ConfigError> {
    if count == 0 {
        return Err(ConfigError::Value {
            key,
            value: count.to_string(),
            fix: "must be at least 1".to_owned(),
        });
    }
    Ok(count)
}

/// Checks that a configured ingest token is long enough and printable. `key` is the config key
/// or environment variable that set it, for the error message, which never shows the token.
pub fn check_token(key: &'static str, token: String) -> Result<String, ConfigError> {
    if token_problem(&token).is_some() {
        return Err(ConfigError::Value {
            key,
            value: "<hidden>".to_owned(),
            fix: format!(
                "must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            ),
        });
    }
    Ok(token)
}

/// Returns the user's data directory for belterd: `$XDG_DATA_HOME/belter`, else `~/.local/share/belter`.
pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    if let Some(base) = std::env::var_os("XDG_DATA_HOME").filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(base).join("belter"));
    }
    let home = std::env::var_os("HOME")
        .filter(|value| !value.is_empty())
        .ok_or(ConfigError::NoDataDir)?;
    Ok(PathBuf::from(home).join(".local/share/belter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_data_dir() {
        let config = Config::with_data_dir("/srv/belter");
        assert_eq!(
            config.control_socket,
            PathBuf::from("/srv/belter/control.sock")
        );
        assert_eq!(config.max_attempts(), 6);
        assert_eq!(config.retry_schedule_text(), DEFAULT_RETRY_SCHEDULE);
        assert_eq!(config.ingest_addr.to_string(), DEFAULT_INGEST_ADDR);
    }

    #[test]
    fn file_overrides_keys() {
        let mut config = Config::with_data_dir("/srv/belter");
        let file: FileConfig = toml::from_str(
            "data_dir = \"/var/lib/belter\"\nretry_schedule = \"10ms,20ms\"\nattempt_timeout = \"2s\"\n",
        )
        .unwrap();
        config.apply(file).unwrap();
        assert!(config.allow_networks.is_empty());
        assert_eq!(
            config.control_socket,
            PathBuf::from("/var/lib/belter/control.sock")
        );
        assert_eq!(config.max_attempts(), 3);
        assert_eq!(config.attempt_timeout, Duration::from_secs(2));
    }

    #[test]
    fn allow_networks_parse() {
        let mut config = Config::with_data_dir("/srv/belter");
        let file: FileConfig =
            toml::from_str("allow_networks = [\"127.0.0.0/8\", \"::1\"]").unwrap();
        config.apply(file).unwrap();
        assert_eq!(config.allow_networks.len(), 2);
        let file: FileConfig = toml::from_str("allow_networks = [\"127.0.0.0/33\"]").unwrap();
        assert!(config.apply(file).is_err());
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error = toml::from_str::<FileConfig>("retry_shedule = \"1s\"").unwrap_err();
        assert!(error.to_string().contains("retry_shedule"), "{error}");
    }

    /// Writes `text` to a config file in a new temporary directory and applies it to the
    /// defaults, returning the error message.
    fn file_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("belterd.toml");
        std::fs::write(&path, text).unwrap();
        let mut config = Config::with_data_dir("/srv/belter");
        let error = config.apply_file(&path).unwrap_err().to_string();
        error.replace(&path.display().to_string(), "FILE")
    }

    #[test]
    fn file_value_error_names_line_and_key() {
        let message = file_error("attempt_timeout = \"2s\"\n\nretry_schedule = \"30s,5x\"\n");
        assert!(message.starts_with("FILE:3: "), "{message}");
        assert!(message.contains("retry_schedule"), "{message}");
        assert!(message.contains("30s,5x"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn file_count_and_network_errors_name_line() {
        let message = file_error("max_in_flight = 0\n");
        assert!(message.starts_with("FILE:1: "), "{message}");
        assert!(message.contains("max_in_flight"), "{message}");
        let message = file_error("allow_networks = [\n  \"127.0.0.0/8\",\n  \"10.0.0.0/33\",\n]\n");
        assert!(message.starts_with("FILE:3: "), "{message}");
        assert!(message.contains("allow_networks"), "{message}");
        assert!(message.contains("10.0.0.0/33"), "{message}");
    }

    #[test]
    fn file_unknown_key_names_line_and_key() {
        let message = file_error("retention = \"7d\"\nretry_shedule = \"1s\"\n");
        assert!(message.starts_with("FILE:2: "), "{message}");
        assert!(message.contains("retry_shedule"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn file_type_error_names_line_and_key() {
        let message = file_error("# limits\nmax_in_flight = \"ten\"\n");
        assert!(message.starts_with("FILE:2: max_in_flight: "), "{message}");
        assert!(message.contains("ten"), "{message}");
        assert!(
            message.ends_with("; write it as max_in_flight = 64"),
            "{message}"
        );
    }

    #[test]
    fn file_list_for_text_key_shows_example() {
        let message = file_error("retry_schedule = [\"30s\", \"5m\"]\n");
        assert!(message.starts_with("FILE:1: retry_schedule: "), "{message}");
        assert!(
            message.ends_with("; write it as retry_schedule = \"30s,5m,30m,2h,12h\""),
            "{message}"
        );
    }

    #[test]
    fn file_syntax_error_names_line() {
        let message = file_error("retention = \"7d\"\nretention_interval = \"10m\n");
        assert!(message.starts_with("FILE:2: "), "{message}");
    }

    #[test]
    fn file_hidden_token_error_keeps_secret() {
        let message = file_error("ingest_token = \"short secret\"\n");
        assert!(message.starts_with("FILE:1: "), "{message}");
        assert!(message.contains("ingest_token"), "{message}");
        assert!(!message.contains("short secret"), "{message}");
    }

    #[test]
    fn token_error_names_its_source() {
        let message = check_token("BELTER_INGEST_TOKEN", "short secret".to_owned())
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("invalid BELTER_INGEST_TOKEN "),
            "{message}"
        );
        assert!(!message.contains("short secret"), "{message}");
    }

    #[test]
    fn array_element_error_names_key() {
        let message = file_error("allow_networks = [\n  \"127.0.0.0/8\",\n  5,\n]\n");
        assert!(message.contains("allow_networks: "), "{message}");
        assert!(
            message.ends_with("; write it as allow_networks = [\"10.0.0.0/8\"]"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_key_gets_no_example() {
        let message = file_error("max_in_flight = 8\nmax_in_flight = 9\n");
        assert!(message.contains("max_in_flight"), "{message}");
        assert!(message.ends_with("keep one of the two lines"), "{message}");
        assert!(!message.contains("write it as"), "{message}");
    }

    #[test]
    fn comment_in_array_keeps_key() {
        for text in [
            "allow_networks = [\n  10, # was = 10.0.0.0/8\n]\n",
            "allow_networks = [\n  \"127.0.0.0/8\", # a = b\n  10,\n]\n",
        ] {
            let message = file_error(text);
            assert!(message.contains(": allow_networks: "), "{message}");
            assert!(message.contains("write it as"), "{message}");
        }
    }

    #[test]
    fn negative_count_names_whole_number() {
        let message = file_error("\u{feff}max_in_flight = -1\n");
        assert!(message.starts_with("FILE:1: max_in_flight: "), "{message}");
        assert!(message.contains("whole number of 1 or more"), "{message}");
        assert!(
            message.ends_with("write it as max_in_flight = 64"),
            "{message}"
        );
    }

    #[test]
    fn unknown_group_names_line_and_fix() {
        let message =
            file_error("retention = \"7d\"\ncontrol_socket_group = \"no-such-group-x\"\n");
        assert!(message.starts_with("FILE:2: "), "{message}");
        assert!(message.contains("no-such-group-x"), "{message}");
        assert!(message.contains("leave the setting out"), "{message}");
    }

    #[test]
    fn group_flag_overrides_file_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("belterd.toml");
        std::fs::write(&path, "control_socket_group = \"no-such-group-x\"\n").unwrap();
        let mut config = Config::with_data_dir("/srv/belter");
        config.control_socket_group = Some("from-the-flag".to_owned());
        config.apply_file(&path).unwrap();
        assert_eq!(
            config.control_socket_group.as_deref(),
            Some("from-the-flag")
        );
    }

    #[test]
    fn zero_retry_delay_is_rejected() {
        let message = parse_schedule("30s,0s").unwrap_err().to_string();
        assert!(message.contains("\"30s,0s\""), "{message}");
        assert!(
            message.contains("empty schedule for no retries"),
            "{message}"
        );
        assert_eq!(parse_schedule("").unwrap(), Vec::<Duration>::new());
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let message = parse_schedule("30s,5x").unwrap_err().to_string();
        assert!(message.contains("retry_schedule"), "{message}");
        assert!(message.contains("30s,5x"), "{message}");
        let message = parse_positive("attempt_timeout", "0s")
            .unwrap_err()
            .to_string();
        assert!(message.contains("longer than zero"), "{message}");
        assert!(check_token("ingest_token", "short".to_owned()).is_err());
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn short_retention_is_warned() {
        let mut config = Config::with_data_dir("/srv/belter");
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());

        config.retention = Duration::from_secs(3_600);
        let warnings = config.warnings();

        assert_eq!(warnings.len(), 1);
        // 14h35m30s of delays and six attempts of up to 15 s each.
        assert_eq!(
            warnings[0],
            "retention 1h is shorter than the 877m that a delivery can take through the retry \
             schedule 30s,5m,30m,2h,12h and its attempt timeouts, so deliveries still waiting for \
             a retry are deleted: set retention to at least 15h"
        );
    }

    #[test]
    fn retention_covering_retries_is_quiet() {
        let mut config = Config::with_data_dir("/srv/belter");
        config.retry_schedule = vec![Duration::from_secs(5), Duration::from_secs(10)];
        config.attempt_timeout = Duration::from_secs(3);
        config.retention = Duration::from_secs(24);
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());

        config.retention = Duration::from_secs(23);
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].ends_with("set retention to at least 1m"),
            "{}",
            warnings[0]
        );
    }
}
