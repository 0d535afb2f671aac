//! The daemon's configuration: embedded defaults, overlaid by a TOML file, overlaid by flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use belter_common::duration::{format_duration, parse_duration, parse_duration_list};
use ipnet::IpNet;
use serde::Deserialize;

use crate::address_policy::{parse_network, NetworkError};

/// Default address of the ingest API.
pub const DEFAULT_INGEST_ADDR: &str = "127.0.0.1:7700";
/// Default retry delays after the first attempt fails: 30 s, 5 min, 30 min, 2 h and 12 h.
pub const DEFAULT_RETRY_SCHEDULE: &str = "30s,5m,30m,2h,12h";
/// Default time a receiver has to answer 2xx, body read included.
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

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file path.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file path.
        path: PathBuf,
        /// What is wrong and where, as the TOML parser reports it.
        message: String,
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
    /// Ingest bearer token; generated into the data directory when absent.
    pub ingest_token: Option<String>,
    /// Delays before each retry, counted from the end of the failed attempt before it.
    pub retry_schedule: Vec<Duration>,
    /// Time a receiver has to answer 2xx, body read included.
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
    /// The embedded defaults, with the data directory under the user's data directory.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(Self::with_data_dir(default_data_dir()?))
    }

    /// The embedded defaults with the given data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            control_socket: data_dir.join(CONTROL_SOCKET_NAME),
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

    /// Applies the keys set in a TOML config file on top of this configuration.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: FileConfig = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        self.apply(file)
    }

    fn apply(&mut self, file: FileConfig) -> Result<(), ConfigError> {
        if let Some(data_dir) = file.data_dir {
            let socket_was_default = self.control_socket == self.data_dir.join(CONTROL_SOCKET_NAME);
            self.data_dir = data_dir;
            if socket_was_default {
                self.control_socket = self.data_dir.join(CONTROL_SOCKET_NAME);
            }
        }
        if let Some(addr) = file.ingest_addr {
            self.ingest_addr = parse_addr(&addr)?;
        }
        if let Some(socket) = file.control_socket {
            self.control_socket = socket;
        }
        if let Some(token) = file.ingest_token {
            self.ingest_token = Some(check_token(token)?);
        }
        if let Some(schedule) = file.retry_schedule {
            self.retry_schedule = parse_schedule(&schedule)?;
        }
        if let Some(timeout) = file.attempt_timeout {
            self.attempt_timeout = parse_positive("attempt_timeout", &timeout)?;
        }
        if let Some(retention) = file.retention {
            self.retention = parse_positive("retention", &retention)?;
        }
        if let Some(interval) = file.retention_interval {
            self.retention_interval = parse_positive("retention_interval", &interval)?;
        }
        if let Some(bytes) = file.max_body_bytes {
            self.max_body_bytes = check_count("max_body_bytes", bytes)?;
        }
        if let Some(count) = file.max_in_flight {
            self.max_in_flight = check_count("max_in_flight", count)?;
        }
        if let Some(count) = file.max_in_flight_per_endpoint {
            self.max_in_flight_per_endpoint = check_count("max_in_flight_per_endpoint", count)?;
        }
        if let Some(period) = file.auto_pause_after {
            self.auto_pause_after = parse_positive("auto_pause_after", &period)?;
        }
        if let Some(networks) = file.allow_networks {
            self.allow_networks = networks
                .iter()
                .map(|text| parse_network(text))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The number of attempts a delivery gets before it fails: the first plus one per retry.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The retry schedule as comma-separated text, such as `30s,5m`.
    pub fn retry_schedule_text(&self) -> String {
        let parts: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|delay| format_duration(*delay))
            .collect();
        parts.join(",")
    }
}

/// The keys a config file may set; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    ingest_addr: Option<String>,
    control_socket: Option<PathBuf>,
    ingest_token: Option<String>,
    retry_schedule: Option<String>,
    attempt_timeout: Option<String>,
    retention: Option<String>,
    retention_interval: Option<String>,
    max_body_bytes: Option<usize>,
    max_in_flight: Option<usize>,
    max_in_flight_per_endpoint: Option<usize>,
    allow_networks: Option<Vec<String>>,
    auto_pause_after: Option<String>,
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
    parse_duration_list(text).map_err(|error| ConfigError::Value {
        key: "retry_schedule",
        value: text.to_owned(),
        fix: format!("{error}; write the delays comma-separated, such as 30s,5m,30m,2h,12h"),
    })
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

/// Shortest ingest token the daemon accepts, in characters.
const MIN_TOKEN_LEN: usize = 16;

/// Checks that a configured ingest token is long enough and printable.
pub fn check_token(token: String) -> Result<String, ConfigError> {
    let printable = token.chars().all(|c| c.is_ascii_graphic());
    if token.len() < MIN_TOKEN_LEN || !printable {
        return Err(ConfigError::Value {
            key: "ingest_token",
            value: "<hidden>".to_owned(),
            fix: format!(
                "must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            ),
        });
    }
    Ok(token)
}

/// The user's data directory for belterd: `$XDG_DATA_HOME/belter`, else `~/.local/share/belter`.
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

    #[test]
    fn bad_values_name_key_and_fix() {
        let message = parse_schedule("30s,5x").unwrap_err().to_string();
        assert!(message.contains("retry_schedule"), "{message}");
        assert!(message.contains("30s,5x"), "{message}");
        let message = parse_positive("attempt_timeout", "0s")
            .unwrap_err()
            .to_string();
        assert!(message.contains("longer than zero"), "{message}");
        assert!(check_token("short".to_owned()).is_err());
        assert!(parse_addr("localhost").is_err());
    }
}
