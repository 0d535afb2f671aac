//! belterd's log lines on standard error: readable text by default, and one JSON object per line
//! with the event's fields at the top level under `--log-format json`.

use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, StderrMode};

/// Prefix of the marker lines that the fixture writes into the stderr file before each start.
const START_MARKER: &str = "--- belter-tests:";

/// Runs a daemon with `extra_args` through one successful delivery and a stop, and returns its
/// log lines without the fixture's markers, along with the endpoint secret and the ingest token.
async fn log_one_delivery(extra_args: &[&str]) -> (Vec<String>, String, String) {
    let options = DaemonOptions {
        // Successful deliveries are logged at debug; info keeps only starts, stops, retries
        // and failures.
        log_filter: "debug".to_owned(),
        extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Succeeded).await;
    let token = daemon.token();
    let status = daemon.stop().await;
    assert!(status.success(), "belterd exited with {status}");

    let lines = daemon
        .stderr()
        .lines()
        .filter(|line| !line.starts_with(START_MARKER))
        .map(str::to_owned)
        .collect();
    (lines, created.secret, token)
}

/// Finds the first JSON line whose `message` is `message`.
fn find_message<'a>(lines: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|line| line["message"] == message)
        .unwrap_or_else(|| panic!("no log line with message {message:?} in {lines:#?}"))
}

#[tokio::test]
async fn json_logs_parse_with_fields() {
    let (lines, secret, token) = log_one_delivery(&["--log-format", "json"]).await;

    assert!(!lines.is_empty(), "belterd logged nothing");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("log line is not JSON ({error}): {line}"))
        })
        .collect();
    for line in &parsed {
        assert!(line.is_object(), "log line is not an object: {line}");
        assert!(line["timestamp"].is_string(), "no timestamp: {line}");
        assert!(line["level"].is_string(), "no level: {line}");
        assert!(line["message"].is_string(), "no message: {line}");
    }
    let started = find_message(&parsed, "belterd started");
    assert_eq!(started["level"], "INFO");
    assert!(started["ingest_addr"].is_string(), "{started}");
    let delivered = find_message(&parsed, "delivered");
    assert!(
        delivered["delivery_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("del_")),
        "{delivered}"
    );
    assert!(
        delivered["endpoint_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ep_")),
        "{delivered}"
    );
    assert_eq!(delivered["attempt"], 1, "{delivered}");
    assert_eq!(delivered["status"], "200", "{delivered}");
    find_message(&parsed, "belterd stopped");
    for line in &lines {
        assert!(
            !line.contains(&secret),
            "endpoint secret in the log: {line}"
        );
        assert!(!line.contains(&token), "ingest token in the log: {line}");
    }
}

#[tokio::test]
async fn invalid_log_filter_is_warned() {
    let options = DaemonOptions {
        log_filter: "belter_daemon=lol[".to_owned(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let status = daemon.stop().await;
    assert!(status.success(), "belterd exited with {status}");

    let stderr = daemon.stderr();
    let warning = stderr
        .lines()
        .find(|line| line.contains("invalid BELTER_LOG"))
        .unwrap_or_else(|| panic!("no warning about BELTER_LOG in {stderr}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("belter_daemon=lol["), "{warning}");
    assert!(warning.contains("logs at info"), "{warning}");
    assert!(stderr.contains("belterd started"), "{stderr}");
}

#[tokio::test]
async fn human_logs_are_default() {
    let (lines, _, _) = log_one_delivery(&[]).await;

    let started = lines
        .iter()
        .find(|line| line.contains("belterd started"))
        .unwrap_or_else(|| panic!("no start line in {lines:#?}"));
    assert!(started.contains("INFO"), "{started}");
    assert!(started.contains("ingest_addr="), "{started}");
    for line in &lines {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        assert!(parsed.is_err(), "JSON line in the default format: {line}");
    }
}

/// Runs a daemon with `stderr` through `events` deliveries and a clean stop.
async fn deliver_and_stop(stderr: StderrMode, events: usize) {
    let options = DaemonOptions {
        stderr,
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let mut deliveries = Vec::new();
    for _ in 0..events {
        let answer = daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
        deliveries.extend(answer.deliveries);
    }
    for id in &deliveries {
        // Each attempt logs before its outcome is recorded. A failed or blocked log write there
        // must not leave the delivery in flight.
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    assert_eq!(receiver.requests().len(), deliveries.len());

    // The signal handler logs before it begins the stop.
    let status = daemon.stop().await;
    assert!(status.success(), "belterd exited with {status}");
}

#[tokio::test]
async fn closed_stderr_loses_log_lines_but_nothing_else() {
    deliver_and_stop(StderrMode::Closed, 5).await;
}

#[tokio::test]
async fn unread_stderr_does_not_stall_deliveries() {
    // At debug level each event logs several lines of roughly 200 bytes, so 400 events fill
    // a 64 KiB pipe many times over.
    deliver_and_stop(StderrMode::Unread, 400).await;
}
