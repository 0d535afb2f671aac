//! Files the daemon leaves on disk: the ingest token, the control socket and the daemon's output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::binaries::belterd_path;
use belter_tests::daemon::{INGEST_TOKEN_ENV, STOP_TIMEOUT};
use belter_tests::endpoint::subscribe;
use belter_tests::wait::{wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver};
use hyper::StatusCode;
use tokio::process::Command;

fn mode(path: &Path) -> u32 {
    let metadata =
        std::fs::metadata(path).unwrap_or_else(|error| panic!("stat {}: {error}", path.display()));
    metadata.permissions().mode() & 0o777
}

#[tokio::test]
async fn token_file_is_0600() {
    let daemon = DaemonProcess::start().await;

    assert_eq!(mode(&daemon.token_path()), 0o600);
}

#[tokio::test]
async fn control_socket_is_0600() {
    let daemon = DaemonProcess::start().await;

    assert_eq!(mode(&daemon.socket_path()), 0o600);
}

#[tokio::test]
async fn socket_dir_is_0700() {
    let daemon = DaemonProcess::start().await;
    let dir = daemon.socket_path().parent().expect("parent").to_owned();

    assert_eq!(mode(&dir), 0o700);
}

#[tokio::test]
async fn socket_removed_on_stop() {
    let mut daemon = DaemonProcess::start().await;

    daemon.stop().await;

    assert!(!daemon.socket_path().exists());
}

#[tokio::test]
async fn token_survives_restart() {
    let mut daemon = DaemonProcess::start().await;
    let before = daemon.token();

    daemon.stop().await;
    daemon.start_again().await;
    let response = daemon.ingest(sample_body(EventType::CsatReceived)).await;

    assert_eq!(daemon.token(), before);
    assert_eq!(response.status, StatusCode::ACCEPTED);
}

/// Runs belterd on `data_dir` with `env` set, expecting it to exit before it becomes healthy,
/// and returns its exit status and standard error.
async fn run_until_exit(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let home = data_dir.with_file_name("home");
    std::fs::create_dir_all(&home).expect("create a home directory");
    let run = Command::new(belterd_path())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--control-socket")
        .arg(data_dir.with_file_name("control.sock"))
        .args(["--ingest-addr", "127.0.0.1:0"])
        .env_remove(INGEST_TOKEN_ENV)
        .env_remove("BELTER_CONFIG")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STOP_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("belterd did not exit within {STOP_TIMEOUT:?}"))
        .expect("run belterd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stderr)
}

#[tokio::test]
async fn short_token_file_fails_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("create the data directory");
    let token_path = data_dir.join("ingest.token");
    std::fs::write(&token_path, "tiny-tok\n").expect("write the token file");

    let (status, stderr) = run_until_exit(&data_dir, &[]).await;

    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&token_path.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("8 characters, fewer than 16"), "{stderr}");
    assert!(stderr.contains("Delete the file"), "{stderr}");
    assert!(!stderr.contains("tiny-tok"), "{stderr}");
    assert!(
        !data_dir.with_file_name("control.sock").exists(),
        "belterd bound its control socket"
    );
}

#[tokio::test]
async fn short_env_token_names_variable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");

    let (status, stderr) = run_until_exit(&data_dir, &[(INGEST_TOKEN_ENV, "tiny-tok")]).await;

    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid BELTER_INGEST_TOKEN"), "{stderr}");
    assert!(!stderr.contains("tiny-tok"), "{stderr}");
}

#[tokio::test]
async fn env_token_is_used() {
    let token = "e2e-configured-token-0123456789";
    let options = DaemonOptions {
        ingest_token: Some(token.to_owned()),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let body = sample_body(EventType::CsatReceived).as_bytes().to_vec();
    let headers = [
        ("authorization", "Bearer e2e-configured-token-0123456789"),
        ("content-type", "application/json"),
    ];

    let response = daemon.ingest_with_headers(&headers, body).await;

    assert_eq!(response.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn health_reports_data_dir() {
    let daemon = DaemonProcess::start().await;

    let health = daemon.client().health().await.expect("health");

    assert_eq!(health.status, "ok");
    assert_eq!(Path::new(&health.data_dir), daemon.data_dir());
    assert_eq!(health.ingest_addr, daemon.ingest_addr().to_string());
}

#[tokio::test]
async fn logs_omit_secrets() {
    let mut daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let rotated = client
        .rotate_secret(&created.endpoint.id)
        .await
        .expect("rotate");
    receiver.set_secret(&rotated.secret);
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Succeeded).await;
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let token = daemon.token();

    daemon.stop().await;
    let log = format!("{}{}", daemon.stderr(), daemon.stdout());

    assert!(!log.contains(&token), "output contains the ingest token");
    assert!(!log.contains(&created.secret), "output contains a secret");
    assert!(!log.contains(&rotated.secret), "output contains a secret");
}

#[tokio::test]
async fn second_daemon_keeps_off_socket() {
    let daemon = DaemonProcess::start().await;
    let other_dir = tempfile::tempdir().expect("temporary directory");
    let mut second = Command::new(belterd_path())
        .arg("--data-dir")
        .arg(other_dir.path().join("data"))
        .arg("--control-socket")
        .arg(daemon.socket_path())
        .args(["--ingest-addr", "127.0.0.1:0"])
        .env_remove(INGEST_TOKEN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn a second belterd");

    let exit = tokio::time::timeout(STOP_TIMEOUT, second.wait()).await;
    let health = daemon.client().health().await;

    let status = exit
        .expect("second belterd kept running on a socket in use")
        .expect("wait for the second belterd");
    assert!(!status.success(), "second belterd exited with {status}");
    assert!(health.is_ok(), "first belterd lost its socket: {health:?}");
}
