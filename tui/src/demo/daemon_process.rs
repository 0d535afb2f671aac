//! The demo's belterd child process: found, started with demo settings, awaited until its control
//! socket responds, and stopped by its PID.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use belter_common::client::ControlClient;
use tokio::process::{Child, Command};

/// Name of the daemon binary.
const BELTERD: &str = "belterd";

/// Maximum time belterd may take to respond to health after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between health checks while belterd starts.
const READY_POLL: Duration = Duration::from_millis(100);

/// How long belterd may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings that make retries and timeouts visible within a demo's minutes.
/// The demo's receiver runs on loopback, which the delivery policy blocks unless allowed.
const DEMO_FLAGS: [&str; 8] = [
    "--ingest-addr",
    "127.0.0.1:0",
    "--allow-network",
    "127.0.0.0/8",
    "--retry-schedule",
    "2s,5s,10s",
    "--attempt-timeout",
    "3s",
];

/// Finds belterd: `explicit` if given, else next to the current executable, else on PATH.
pub fn find_belterd(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path);
        }
        bail!("belterd not found at {}", path.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BELTERD)));
    if let Some(path) = beside.filter(|path| path.is_file()) {
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(BELTERD))
            .find(|path| path.is_file())
    });
    on_path.context(
        "belterd not found next to belter-tui or on PATH: build it with `cargo build -p belter-daemon`, or pass --belterd PATH",
    )
}

/// A running belterd child.
pub(super) struct DaemonProcess {
    child: Child,
    log_path: PathBuf,
}

impl DaemonProcess {
    /// Starts `binary` on `data_dir` with its control socket at `socket`, its output in
    /// `data_dir/belterd.log`, and waits until the socket responds to health.
    pub(super) async fn spawn(
        binary: &Path,
        data_dir: &Path,
        socket: &Path,
    ) -> anyhow::Result<DaemonProcess> {
        let log_path = data_dir.join("belterd.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log_path.display()))?;
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--control-socket")
            .arg(socket)
            .args(DEMO_FLAGS)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut process = DaemonProcess { child, log_path };
        if let Err(error) = process.wait_ready(socket).await {
            process.stop().await;
            return Err(error);
        }
        Ok(process)
    }

    async fn wait_ready(&mut self, socket: &Path) -> anyhow::Result<()> {
        let client = ControlClient::new(socket);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "belterd exited with {status} during start; its output is in {}:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            if client.health().await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "belterd did not respond on {} within {}s:\n{}",
                    socket.display(),
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends SIGTERM by PID so belterd shuts down cleanly, and kills it if it has not exited
    /// within `STOP_TIMEOUT`.
    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // tokio can only send SIGKILL, so SIGTERM goes through kill(1), aimed at this PID.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
