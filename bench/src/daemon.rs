//! A `belterd` child process on its own data directory, with its ingest address, token and
//! control client. Scenarios stop it with SIGTERM when they end; a handle dropped early, as on
//! an error, kills it with SIGKILL.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use belter_common::api::CreateEndpoint;
use belter_common::client::ControlClient;
use belter_common::records::EventSelection;
use tokio::process::{Child, Command};

/// Time belterd has to respond to its health check after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Time belterd has to exit after SIGTERM; a large store takes a while to flush.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between health checks while belterd starts.
const HEALTH_POLL: Duration = Duration::from_millis(5);

/// Builds a request to create an endpoint. It is built from JSON so that optional fields the
/// contract adds keep their defaults.
pub fn endpoint_request(
    url: &str,
    event_types: EventSelection,
    description: &str,
    paused: bool,
) -> anyhow::Result<CreateEndpoint> {
    let request = serde_json::json!({
        "url": url,
        "event_types": event_types,
        "description": description,
        "paused": paused,
    });
    serde_json::from_value(request).context("cannot build an endpoint request")
}

/// Flags of a daemon, beyond its paths and the ingest address.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// `--max-in-flight-per-endpoint`.
    pub max_in_flight_per_endpoint: usize,
    /// `--retry-schedule`; empty for no retries.
    pub retry_schedule: String,
    /// `--attempt-timeout`.
    pub attempt_timeout: String,
}

impl DaemonSettings {
    /// belterd's defaults with `concurrency` attempts in flight per endpoint.
    pub fn with_concurrency(concurrency: usize) -> Self {
        Self {
            max_in_flight_per_endpoint: concurrency,
            retry_schedule: "30s,5m,30m,2h,12h".to_owned(),
            attempt_timeout: "15s".to_owned(),
        }
    }
}

/// A running belterd.
#[derive(Debug)]
pub struct Daemon {
    binary: PathBuf,
    dir: tempfile::TempDir,
    settings: DaemonSettings,
    child: Option<Child>,
    ingest_url: String,
}

impl Daemon {
    /// Spawns belterd on a new temporary data directory and waits until it is healthy.
    pub async fn start(binary: &Path, settings: DaemonSettings) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("belter-bench-")
            .tempdir()
            .context("cannot create a temporary directory for belterd")?;
        let mut daemon = Self {
            binary: binary.to_owned(),
            dir,
            settings,
            child: None,
            ingest_url: String::new(),
        };
        daemon.spawn().await?;
        Ok(daemon)
    }

    /// Starts belterd again on the same data directory after [`stop`](Self::stop), and returns
    /// when it is healthy.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("belterd is still running");
        }
        self.spawn().await
    }

    /// Returns the data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Returns the store's directory inside the data directory.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir().join("store")
    }

    /// Returns a client of the control socket.
    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.socket_path())
    }

    /// Returns the ingest URL, such as `http://127.0.0.1:40123/v1/events`.
    pub fn ingest_url(&self) -> &str {
        &self.ingest_url
    }

    /// Reads the ingest token that belterd generated into its data directory.
    pub fn token(&self) -> anyhow::Result<String> {
        let path = self.data_dir().join("ingest.token");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the ingest token {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Returns the process id while belterd runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sends SIGTERM and waits until belterd exits; returns how long that took.
    pub async fn stop(&mut self) -> anyhow::Result<Duration> {
        let Some(mut child) = self.child.take() else {
            bail!("belterd is not running");
        };
        let Some(pid) = child.id() else {
            bail!("belterd has already exited");
        };
        let started = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("cannot run kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed: {sent}");
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                status.context("cannot wait for belterd to exit")?;
                Ok(started.elapsed())
            }
            Err(_) => {
                let _ = child.start_kill();
                bail!("belterd did not exit within {STOP_TIMEOUT:?} of SIGTERM; it was killed")
            }
        }
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("belterd.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("cannot open belterd's log file")?;
        let stdout = log.try_clone().context("cannot share belterd's log file")?;
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).context("cannot create belterd's home directory")?;
        let settings = &self.settings;
        let mut command = Command::new(&self.binary);
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--control-socket")
            .arg(self.socket_path())
            .args(["--ingest-addr", "127.0.0.1:0"])
            .args(["--allow-network", "127.0.0.0/8"])
            .args(["--retry-schedule", &settings.retry_schedule])
            .args(["--attempt-timeout", &settings.attempt_timeout])
            .arg("--max-in-flight-per-endpoint")
            .arg(settings.max_in_flight_per_endpoint.to_string())
            // A config file, token or data directory of the user must not leak in.
            .env_remove("BELTER_INGEST_TOKEN")
            .env_remove("BELTER_CONFIG")
            .env_remove("BELTER_DATA_DIR")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.child = Some(child);
        let health = self.wait_healthy().await?;
        self.ingest_url = format!("http://{}/v1/events", health.ingest_addr);
        Ok(())
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<belter_common::records::Health> {
        let client = self.client();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(health) = client.health().await {
                return Ok(health);
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "belterd exited at start ({status}); its log is in {}:\n{}",
                        self.log_path().display(),
                        self.log_tail()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "belterd did not respond to its health check within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
