//! Config file errors as an operator sees them: `belterd check-config FILE` and a start with a
//! bad `--config` both name the file, the line and the key, and exit with status 1.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use belter_common::api::CreateEndpoint;
use belter_common::client::ClientError;
use belter_common::records::EventSelection;
use belter_tests::binaries::belterd_path;
use belter_tests::{DaemonOptions, DaemonProcess};
use tokio::process::Command;

/// Time one belterd run may take when it does not start the daemon.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes `text` as `belterd.toml` into `dir` and returns its path.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("belterd.toml");
    std::fs::write(&path, text).expect("write the config file");
    path
}

/// Runs belterd with `args` in a home directory inside `dir`, so no user config leaks in.
async fn run_belterd(dir: &Path, args: &[&str]) -> Output {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("create a home directory");
    let run = Command::new(belterd_path())
        .args(args)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("BELTER_CONFIG")
        .env_remove("BELTER_DATA_DIR")
        .env_remove("BELTER_INGEST_TOKEN")
        // Set, so that any backtrace an error would print with it shows in the output.
        .env("RUST_BACKTRACE", "1")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("belterd {args:?} did not exit within {RUN_TIMEOUT:?}"))
        .expect("run belterd")
}

#[tokio::test]
async fn check_config_accepts_valid_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(
        dir.path(),
        "retry_schedule = \"30s,5m\"\nattempt_timeout = \"10s\"\nallow_networks = [\"10.0.0.0/8\"]\n",
    );

    let output = run_belterd(dir.path(), &["check-config", path.to_str().unwrap()]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout.contains("valid"), "{stdout}");
}

#[tokio::test]
async fn check_config_warns_short_retention() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), "retention = \"1h\"\n");

    let output = run_belterd(dir.path(), &["check-config", path.to_str().unwrap()]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(
        stderr.contains(&format!("{}: warning: retention 1h", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("set retention to at least 15h"), "{stderr}");
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
}

#[tokio::test]
async fn check_config_names_line_and_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(
        dir.path(),
        "# delivery\nattempt_timeout = \"10s\"\nretry_schedule = \"30s,5x\"\n",
    );
    let location = format!("{}:3: ", path.display());

    let output = run_belterd(dir.path(), &["check-config", path.to_str().unwrap()]).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&location), "{stderr}");
    assert!(stderr.contains("retry_schedule"), "{stderr}");
    assert!(stderr.contains("30s,5x"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[tokio::test]
async fn check_config_names_unknown_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), "retention = \"7d\"\nretry_shedule = \"1s\"\n");
    let location = format!("{}:2: ", path.display());

    let output = run_belterd(dir.path(), &["check-config", path.to_str().unwrap()]).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&location), "{stderr}");
    assert!(stderr.contains("retry_shedule"), "{stderr}");
}

#[tokio::test]
async fn start_with_bad_config_names_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), "max_in_flight = 0\n");
    let data_dir = dir.path().join("data");
    let location = format!("{}:1: ", path.display());

    let output = run_belterd(
        dir.path(),
        &[
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--ingest-addr",
            "127.0.0.1:0",
        ],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&location), "{stderr}");
    assert!(stderr.contains("max_in_flight"), "{stderr}");
    assert!(!data_dir.join("store").exists(), "belterd opened a store");
}

#[tokio::test]
async fn missing_config_named_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nope.toml");
    let data_dir = dir.path().join("data");

    let output = run_belterd(
        dir.path(),
        &[
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read config file {}", path.display())),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn unknown_group_flag_fails_before_any_write() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");

    let output = run_belterd(
        dir.path(),
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--ingest-addr",
            "127.0.0.1:0",
            "--control-socket-group",
            "no-such-group-x",
        ],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"no-such-group-x\""), "{stderr}");
    assert!(stderr.contains("name an existing group"), "{stderr}");
    assert!(!data_dir.exists(), "the data directory was created");
}

#[tokio::test]
async fn allow_network_flag_replaces_file_list() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The file opens a private range, and the flag only loopback. No event is posted, so
    // nothing is ever sent to either range.
    let config = write_config(dir.path(), "allow_networks = [\"10.0.0.0/8\"]\n");
    let daemon = DaemonProcess::start_with(DaemonOptions {
        allow_networks: vec!["127.0.0.0/8".to_owned()],
        extra_args: vec!["--config".to_owned(), config.display().to_string()],
        ..DaemonOptions::default()
    })
    .await;
    let client = daemon.client();
    let endpoint = |url: &str| CreateEndpoint {
        url: url.to_owned(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: true,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };

    client
        .create_endpoint(&endpoint("http://127.0.0.1:9/hook"))
        .await
        .expect("the flag's range is open");
    let error = client
        .create_endpoint(&endpoint("http://10.0.0.5/hook"))
        .await
        .expect_err("the file's range is closed by the flag");
    let ClientError::Api { message, .. } = error else {
        panic!("expected an API error, got {error}");
    };
    assert!(
        message.contains("10.0.0.5 is an internal address"),
        "{message}"
    );
}

#[tokio::test]
async fn long_socket_path_fails_before_any_write() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // The default control socket lives in the data directory, so its path is over 107 bytes.
    let data_dir = dir.path().join("d".repeat(110));

    let output = run_belterd(
        dir.path(),
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--ingest-addr",
            "127.0.0.1:0",
        ],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at most 107"), "{stderr}");
    assert!(!data_dir.exists(), "belterd created its data directory");
}
