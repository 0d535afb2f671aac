//! A real `belterd` process on a fresh temporary directory: its own sled store, control socket
//! and ingest port on `127.0.0.1`. The child is killed when the fixture is dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use belter_common::api::{IngestBatchResponse, IngestResponse};
use belter_common::client::ControlClient;
use hyper::StatusCode;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::binaries::belterd_path;
use crate::http::{post, HttpResponse};
use crate::wait::POLL_INTERVAL;

/// Retry delays the tests run with: two retries, both short, so a delivery fails within about
/// half a second plus the attempts themselves.
pub const TEST_RETRY_SCHEDULE: &str = "100ms,200ms";

/// Attempt timeout the tests run with, so a slow receiver times out within a test's budget.
pub const TEST_ATTEMPT_TIMEOUT: &str = "1s";

/// Time the daemon has to respond to the health request after it was spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Time the daemon has to exit after SIGTERM or SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable that sets the ingest token.
pub const INGEST_TOKEN_ENV: &str = "BELTER_INGEST_TOKEN";

/// Environment variable that sets belterd's log filter.
pub const LOG_ENV: &str = "BELTER_LOG";

/// Options of the daemon process. The same options apply on every start of one fixture, unless
/// a test changes them with [`DaemonProcess::options_mut`] while the daemon is stopped.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `--retry-schedule`, such as `100ms,200ms`, or empty for no retries.
    pub retry_schedule: String,
    /// `--attempt-timeout`, such as `1s`.
    pub attempt_timeout: String,
    /// `--max-body-bytes`, when set.
    pub max_body_bytes: Option<usize>,
    /// The token passed in `BELTER_INGEST_TOKEN`. When `None`, the daemon generates one into its
    /// data directory.
    pub ingest_token: Option<String>,
    /// The `BELTER_LOG` filter. Debug by default, so that scans for leaked secrets see every line
    /// the daemon can write.
    pub log_filter: String,
    /// CIDRs passed as `--allow-network`. The daemon blocks deliveries to loopback addresses
    /// unless allowed, and every test receiver listens on 127.0.0.1.
    pub allow_networks: Vec<String>,
    /// More flags, appended after the others.
    pub extra_args: Vec<String>,
    /// More environment variables, such as `SSL_CERT_FILE`, set after the others.
    pub extra_env: Vec<(String, String)>,
    /// Run the daemon in a network namespace of its own with only a loopback interface, so
    /// nothing it sends, DNS queries included, can leave the machine. Needs `unshare` and `ip`
    /// and the right to create namespaces (root in CI). Receivers of the test are then out of
    /// its reach.
    pub own_network_namespace: bool,
    /// Put the data directory on a tmpfs of this many bytes, mounted in a mount namespace of the
    /// daemon's own, so a test can fill it. The test then sees neither the data directory nor
    /// the ingest token file, and posts events on the control socket.
    pub data_dir_limit_bytes: Option<u64>,
    /// Where the daemon's standard error goes.
    pub stderr: StderrMode,
}

/// The daemon's standard error in a test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StderrMode {
    /// A file in the fixture's directory, read by [`DaemonProcess::stderr`].
    #[default]
    File,
    /// A pipe whose reading end is closed once the daemon is spawned, as when the program that
    /// read the daemon's log has ended. Every later write fails.
    Closed,
    /// A pipe that the test keeps open and never reads, as when the program reading the log
    /// hangs. Linux pipes fill after 64 KiB by default.
    Unread,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            retry_schedule: TEST_RETRY_SCHEDULE.to_owned(),
            attempt_timeout: TEST_ATTEMPT_TIMEOUT.to_owned(),
            max_body_bytes: None,
            ingest_token: None,
            log_filter: "debug".to_owned(),
            allow_networks: vec!["127.0.0.0/8".to_owned()],
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            own_network_namespace: false,
            data_dir_limit_bytes: None,
            stderr: StderrMode::File,
        }
    }
}

/// A running `belterd` on its own temporary directory.
#[derive(Debug)]
pub struct DaemonProcess {
    dir: TempDir,
    options: DaemonOptions,
    child: Option<Child>,
    ingest_addr: Option<SocketAddr>,
    starts: u32,
    /// The reading end of a stalled stderr pipe, kept open and never read.
    unread_stderr: Option<tokio::process::ChildStderr>,
}

impl DaemonProcess {
    /// Starts a daemon with the test defaults and waits until it is healthy.
    pub async fn start() -> Self {
        Self::start_with(DaemonOptions::default()).await
    }

    /// Starts a daemon with `options` and waits until it is healthy.
    pub async fn start_with(options: DaemonOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("belter-e2e-")
            .tempdir()
            .expect("create a temporary directory for belterd");
        let mut daemon = Self {
            dir,
            options,
            child: None,
            ingest_addr: None,
            starts: 0,
            unread_stderr: None,
        };
        daemon.spawn().await;
        daemon
    }

    /// Returns the options, which a test may change while the daemon is stopped, so that the
    /// next [`start_again`](Self::start_again) uses other flags on the same data directory.
    ///
    /// # Panics
    ///
    /// Panics while the daemon is running.
    pub fn options_mut(&mut self) -> &mut DaemonOptions {
        assert!(
            self.child.is_none(),
            "stop belterd before changing its options"
        );
        &mut self.options
    }

    /// Returns the temporary directory that contains everything of this daemon.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Returns the `--control-socket` path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("run").join("control.sock")
    }

    /// Returns the path of the generated ingest token file.
    pub fn token_path(&self) -> PathBuf {
        self.data_dir().join("ingest.token")
    }

    /// Returns the file that collects the daemon's standard error across every start.
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("belterd.stderr")
    }

    /// Returns the file that collects the daemon's standard output across every start.
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("belterd.stdout")
    }

    /// Reads everything the daemon wrote to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Reads everything the daemon wrote to standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// Returns a control client on the socket.
    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.socket_path())
    }

    /// Returns the address the ingest API is bound to in the current run.
    ///
    /// # Panics
    ///
    /// Panics while the daemon is stopped.
    pub fn ingest_addr(&self) -> SocketAddr {
        self.ingest_addr.expect("belterd is not running")
    }

    /// Returns the ingest URL of the current run, such as `http://127.0.0.1:40123/v1/events`.
    pub fn ingest_url(&self) -> String {
        format!("http://{}/v1/events", self.ingest_addr())
    }

    /// Returns the ingest token: the configured one, or the one the daemon generated.
    pub fn token(&self) -> String {
        if let Some(token) = &self.options.ingest_token {
            return token.clone();
        }
        let text = std::fs::read_to_string(self.token_path())
            .unwrap_or_else(|error| panic!("read {}: {error}", self.token_path().display()));
        text.trim().to_owned()
    }

    /// Returns the process id while the daemon runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Checks whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    ///
    /// # Panics
    ///
    /// Panics when the daemon is not running or does not exit within [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) -> ExitStatus {
        let pid = self.pid().expect("belterd is not running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        self.wait_for_exit("SIGTERM").await
    }

    /// Sends SIGKILL and waits for the process to exit.
    ///
    /// # Panics
    ///
    /// Panics when the daemon is not running or does not exit within [`STOP_TIMEOUT`].
    pub async fn kill(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("belterd is not running");
        child.start_kill().expect("send SIGKILL to belterd");
        self.wait_for_exit("SIGKILL").await
    }

    /// Starts the daemon again on the same data directory, after [`stop`](Self::stop) or
    /// [`kill`](Self::kill), and waits until it is healthy. The ingest port may change.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "belterd is still running");
        self.spawn().await;
    }

    /// Posts an ingest body with the token and a JSON content type.
    pub async fn ingest(&self, body: &str) -> HttpResponse {
        let authorization = format!("Bearer {}", self.token());
        self.ingest_with_headers(
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Posts an ingest body with the token, a JSON content type and an `Idempotency-Key`.
    pub async fn ingest_with_key(&self, body: &str, key: &str) -> HttpResponse {
        let authorization = format!("Bearer {}", self.token());
        self.ingest_with_headers(
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Posts to the ingest URL with exactly these headers, adding no token.
    pub async fn ingest_with_headers(
        &self,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> HttpResponse {
        post(&self.ingest_url(), headers, body)
            .await
            .unwrap_or_else(|error| panic!("ingest request failed: {error:#}"))
    }

    /// Posts an ingest body and returns the parsed 202 response.
    ///
    /// # Panics
    ///
    /// Panics when the status is not 202 Accepted.
    pub async fn ingest_accepted(&self, body: &str) -> IngestResponse {
        let response = self.ingest(body).await;
        assert_eq!(
            response.status,
            StatusCode::ACCEPTED,
            "ingest answered {}: {}",
            response.status,
            response.error_message()
        );
        serde_json::from_slice(&response.body).unwrap_or_else(|error| {
            panic!(
                "invalid ingest response ({error}): {}",
                String::from_utf8_lossy(&response.body)
            )
        })
    }

    /// Posts `events`, each an event's JSON text, in one request to the batch route, and returns
    /// the parsed 202 response.
    ///
    /// # Panics
    ///
    /// Panics when an event is not JSON or the status is not 202 Accepted.
    pub async fn ingest_batch_accepted(&self, events: &[&str]) -> IngestBatchResponse {
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|event| serde_json::from_str(event).expect("event is JSON"))
            .collect();
        let body = serde_json::json!({ "events": events }).to_string();
        let authorization = format!("Bearer {}", self.token());
        let url = format!("{}/batch", self.ingest_url());
        let response = post(
            &url,
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
            ],
            body.into_bytes(),
        )
        .await
        .unwrap_or_else(|error| panic!("batch request failed: {error:#}"));
        assert_eq!(
            response.status,
            StatusCode::ACCEPTED,
            "batch ingest answered {}: {}",
            response.status,
            response.error_message()
        );
        serde_json::from_slice(&response.body).unwrap_or_else(|error| {
            panic!(
                "invalid batch response ({error}): {}",
                String::from_utf8_lossy(&response.body)
            )
        })
    }

    /// The command that starts belterd: the binary itself, or `unshare` running a shell that
    /// sets up the namespaces the options ask for and then execs belterd, so the child's PID
    /// stays belterd's for signals.
    fn wrapped_command(&self) -> Command {
        let mut unshare_flags = Vec::new();
        let mut setup = Vec::new();
        if self.options.own_network_namespace {
            unshare_flags.push("--net".to_owned());
            setup.push("ip link set lo up".to_owned());
        }
        if let Some(bytes) = self.options.data_dir_limit_bytes {
            unshare_flags.push("--mount".to_owned());
            setup.push(format!(
                "mount -t tmpfs -o size={bytes} tmpfs '{}'",
                self.data_dir().display()
            ));
        }
        if unshare_flags.is_empty() {
            return Command::new(belterd_path());
        }
        std::fs::create_dir_all(self.data_dir()).expect("create the data directory");
        setup.push("exec \"$0\" \"$@\"".to_owned());
        let mut command = Command::new("unshare");
        command
            .args(&unshare_flags)
            .args(["--", "sh", "-c", &setup.join(" && ")])
            .arg(belterd_path());
        command
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).expect("create the daemon's home directory");
        let mut stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("open the daemon's stderr file");
        // Marks where each run starts when a test restarts the daemon.
        writeln!(stderr, "--- belter-tests: start {} ---", self.starts)
            .expect("write to the daemon's stderr file");
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stdout_path())
            .expect("open the daemon's stdout file");

        let mut command = self.wrapped_command();
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--control-socket")
            .arg(self.socket_path())
            .args(["--ingest-addr", "127.0.0.1:0"])
            .args(["--retry-schedule", &self.options.retry_schedule])
            .args(["--attempt-timeout", &self.options.attempt_timeout]);
        if let Some(bytes) = self.options.max_body_bytes {
            command.args(["--max-body-bytes", &bytes.to_string()]);
        }
        for network in &self.options.allow_networks {
            command.args(["--allow-network", network]);
        }
        command.args(&self.options.extra_args);
        // A config file or data directory of the user running the tests must not leak in.
        command
            .env_remove(INGEST_TOKEN_ENV)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env(LOG_ENV, &self.options.log_filter);
        if let Some(token) = &self.options.ingest_token {
            command.env(INGEST_TOKEN_ENV, token);
        }
        for (name, value) in &self.options.extra_env {
            command.env(name, value);
        }
        let stderr = match self.options.stderr {
            StderrMode::File => Stdio::from(stderr),
            StderrMode::Closed | StderrMode::Unread => Stdio::piped(),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn belterd");
        // Dropping the reading end closes the pipe. Keeping it unread lets the pipe fill.
        let pipe = child.stderr.take();
        if self.options.stderr == StderrMode::Unread {
            self.unread_stderr = pipe;
        }
        self.child = Some(child);
        self.wait_until_healthy().await;
    }

    async fn wait_until_healthy(&mut self) {
        let client = self.client();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "belterd exited with {status} before it became healthy; stderr:\n{}",
                        self.stderr()
                    );
                }
            }
            let last_error = match client.health().await {
                Ok(health) => {
                    let addr: SocketAddr = health.ingest_addr.parse().unwrap_or_else(|error| {
                        panic!(
                            "invalid ingest_addr {:?} in health: {error}",
                            health.ingest_addr
                        )
                    });
                    assert!(
                        addr.ip().is_loopback() && addr.port() != 0,
                        "health reports ingest_addr {addr}, expected the bound port on 127.0.0.1"
                    );
                    self.ingest_addr = Some(addr);
                    return;
                }
                Err(error) => error,
            };
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "belterd did not answer health within {START_TIMEOUT:?} (last error: {last_error}); stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_for_exit(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("belterd is not running");
        self.ingest_addr = None;
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => panic!("waiting for belterd failed: {error}"),
            Err(_) => {
                // `kill_on_drop` ends the process when `child` goes out of scope.
                panic!(
                    "belterd did not exit within {STOP_TIMEOUT:?} after {signal}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // The process may have exited already, so a failure here needs no handling.
            let _ = child.start_kill();
        }
    }
}
