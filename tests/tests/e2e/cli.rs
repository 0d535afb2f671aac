//! The `belter` CLI as a script runs it: a real binary against a real daemon, checked by exit
//! status, standard output and what the receiver gets.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use belter_common::api::{CreatedEndpoint, DeliveryPage, IngestResponse, ReplayResponse};
use belter_common::records::{
    DeliveryDetail, DeliveryStatus, Endpoint, EndpointSecret, EndpointState, EventTypeInfo, Health,
    Stats,
};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::binaries::belter_path;
use belter_tests::endpoint::subscribe;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonProcess, Receiver, Reply};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Time one CLI run may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// Time to wait for a delivery request at the receiver.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status of a failed command or a request belterd rejected.
const EXIT_FAILURE: i32 = 1;

/// Exit status when belterd does not listen on the control socket.
const EXIT_NOT_RUNNING: i32 = 3;

/// Runs `belter --socket <socket> ARGS` with `stdin` as standard input (empty when `None`, which
/// is not a terminal).
async fn run_belter(socket: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(belter_path());
    command
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("BELTER_SOCKET")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn belter");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("belter's stdin pipe");
        pipe.write_all(input).await.expect("write belter's stdin");
        drop(pipe);
    }
    tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("belter {args:?} did not exit within {CLI_TIMEOUT:?}"))
        .expect("wait for belter")
}

/// Runs `belter` and checks that it succeeded.
async fn belter_ok(daemon: &DaemonProcess, args: &[&str]) -> String {
    let output = run_belter(&daemon.socket_path(), args, None).await;
    assert!(
        output.status.success(),
        "belter {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("belter's output is UTF-8")
}

/// Runs `belter --json ARGS` and checks that it succeeded.
async fn belter_json_text(daemon: &DaemonProcess, args: &[&str]) -> String {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    belter_ok(daemon, &with_json).await
}

/// Runs `belter --json ARGS`, checks that it succeeded, and parses its output into the type of
/// the binding it is assigned to.
macro_rules! belter_json {
    ($daemon:expr, $args:expr) => {{
        let args: &[&str] = $args;
        let stdout = belter_json_text($daemon, args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("belter {args:?} printed invalid JSON ({error}): {stdout}")
        })
    }};
}

/// Runs `belter` and checks that it failed with `code`, returning its standard error.
async fn belter_fails(daemon: &DaemonProcess, args: &[&str], code: i32) -> String {
    let output = run_belter(&daemon.socket_path(), args, None).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "belter {args:?}: stdout {} stderr {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// Posts the sample event of `kind` through `belter events post -`.
async fn post_sample(daemon: &DaemonProcess, kind: EventType) -> IngestResponse {
    let output = run_belter(
        &daemon.socket_path(),
        &["--json", "events", "post", "-"],
        Some(sample_body(kind).as_bytes()),
    )
    .await;
    assert!(
        output.status.success(),
        "events post failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("events post prints the ingest response")
}

#[tokio::test]
async fn cli_reports_missing_daemon() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let socket = dir.path().join("control.sock");
    let output = run_belter(&socket, &["health"], None).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_NOT_RUNNING), "{stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(stderr.contains("belterd"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn cli_health_and_types() {
    let daemon = DaemonProcess::start().await;
    let health: Health = belter_json!(&daemon, &["health"]);
    assert_eq!(health.status, "ok");
    assert_eq!(health.ingest_addr, daemon.ingest_addr().to_string());

    let text = belter_ok(&daemon, &["health"]).await;
    assert!(text.starts_with("status"), "{text}");
    assert!(
        text.contains(&daemon.socket_path().display().to_string()),
        "{text}"
    );

    let types: Vec<EventTypeInfo> = belter_json!(&daemon, &["events", "types"]);
    assert_eq!(types.len(), EventType::ALL.len());
    let text = belter_ok(&daemon, &["events", "types"]).await;
    for kind in EventType::ALL {
        assert!(text.contains(kind.as_str()), "{kind} missing from {text}");
    }
}

#[tokio::test]
async fn cli_endpoint_lifecycle() {
    let daemon = DaemonProcess::start().await;
    let url = "http://127.0.0.1:9/hook";

    let created: CreatedEndpoint = belter_json!(
        &daemon,
        &[
            "endpoints",
            "add",
            url,
            "--events",
            "csat.received,frustration.detected",
            "--description",
            "support",
        ]
    );
    let id = created.endpoint.id.to_string();
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    assert_eq!(created.endpoint.url, url);
    assert_eq!(created.endpoint.description, "support");

    let list = belter_ok(&daemon, &["endpoints", "list"]).await;
    assert!(list.starts_with("ID "), "{list}");
    assert!(list.contains(&id), "{list}");
    assert!(
        list.contains("csat.received,frustration.detected"),
        "{list}"
    );
    assert!(
        !list.contains(&created.secret),
        "list shows the secret: {list}"
    );

    let shown = belter_ok(&daemon, &["endpoints", "show", &id]).await;
    assert!(shown.contains(url), "{shown}");
    assert!(
        !shown.contains(&created.secret),
        "show shows the secret: {shown}"
    );

    let updated: Endpoint = belter_json!(&daemon, &["endpoints", "update", &id, "--events", "*"]);
    assert_eq!(updated.event_types.to_text(), "*");
    assert_eq!(updated.description, "support");

    let paused: Endpoint = belter_json!(&daemon, &["endpoints", "pause", &id]);
    assert_eq!(paused.state, EndpointState::Paused);
    let resumed: Endpoint = belter_json!(&daemon, &["endpoints", "resume", &id]);
    assert_eq!(resumed.state, EndpointState::Active);

    let secret = belter_ok(&daemon, &["endpoints", "secret", &id]).await;
    assert_eq!(secret.trim(), created.secret);
    let rotated: EndpointSecret = belter_json!(&daemon, &["endpoints", "rotate-secret", &id]);
    assert_ne!(rotated.secret, created.secret);
    let secret = belter_ok(&daemon, &["endpoints", "secret", &id]).await;
    assert_eq!(secret.trim(), rotated.secret);
    assert_eq!(rotated.previous_valid_until, None);
    let graceful: EndpointSecret = belter_json!(
        &daemon,
        &["endpoints", "rotate-secret", &id, "--grace", "1h"]
    );
    assert_ne!(graceful.secret, rotated.secret);
    assert!(graceful.previous_valid_until.is_some(), "{graceful:?}");

    belter_ok(&daemon, &["endpoints", "remove", &id]).await;
    let endpoints: Vec<Endpoint> = belter_json!(&daemon, &["endpoints", "list"]);
    assert!(endpoints.is_empty(), "{endpoints:?}");
}

#[tokio::test]
async fn cli_shows_daemon_errors() {
    let daemon = DaemonProcess::start().await;
    let stderr = belter_fails(
        &daemon,
        &["endpoints", "show", "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        EXIT_FAILURE,
    )
    .await;
    assert!(stderr.contains("404"), "{stderr}");

    let invalid = r#"{"event":"frustration.detected","data":{"conversation_id":"c1","level":"high","threshold":0.7}}"#;
    let output = run_belter(
        &daemon.socket_path(),
        &["events", "post", "-"],
        Some(invalid.as_bytes()),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_FAILURE), "{stderr}");
    assert!(stderr.contains("422"), "{stderr}");
    assert!(stderr.contains("data.level"), "{stderr}");
}

#[tokio::test]
async fn cli_posts_and_shows_delivery() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let client = daemon.client();
    subscribe(&client, &receiver).await;

    let file = daemon.dir().join("event.json");
    std::fs::write(&file, sample_body(EventType::CsatReceived)).expect("write the event file");
    let file = file.display().to_string();
    let text = belter_ok(&daemon, &["events", "post", &file]).await;
    assert!(text.contains("accepted, 1 delivery"), "{text}");

    let requests = receiver.wait_for_requests(1, RECEIVE_TIMEOUT).await;
    assert_eq!(requests[0].signature_valid, Some(true));
    let delivery_id = requests[0]
        .header("x-belter-delivery")
        .expect("X-Belter-Delivery header")
        .to_owned();
    let id = delivery_id.parse().expect("a delivery id");
    wait_for_status(&client, &id, DeliveryStatus::Succeeded).await;

    let page: DeliveryPage = belter_json!(&daemon, &["deliveries", "list", "--since", "1h"]);
    assert_eq!(page.deliveries.len(), 1);
    assert_eq!(page.deliveries[0].id.to_string(), delivery_id);

    let detail: DeliveryDetail = belter_json!(&daemon, &["deliveries", "show", &delivery_id]);
    assert_eq!(detail.attempts.len(), 1);

    let text = belter_ok(&daemon, &["deliveries", "show", &delivery_id]).await;
    assert!(text.contains("status        succeeded"), "{text}");
    assert!(text.contains("Payload:\n{\n  \"id\": \"evt_"), "{text}");
    assert!(text.contains("x-webhook-signature: v1="), "{text}");
    assert!(text.contains("Attempts:\n#"), "{text}");
}

#[tokio::test]
async fn cli_lists_deliveries_by_page() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    for _ in 0..3 {
        post_sample(&daemon, EventType::CsatReceived).await;
    }
    post_sample(&daemon, EventType::FrustrationDetected).await;

    let first: DeliveryPage = belter_json!(&daemon, &["deliveries", "list", "--limit", "2"]);
    assert_eq!(first.deliveries.len(), 2);
    let cursor = first
        .next_cursor
        .expect("a next_cursor after 2 of 4")
        .to_string();
    let second: DeliveryPage = belter_json!(
        &daemon,
        &["deliveries", "list", "--limit", "2", "--cursor", &cursor]
    );
    assert_eq!(second.deliveries.len(), 2);
    assert!(second.deliveries[0].id < first.deliveries[1].id);

    let csat: DeliveryPage =
        belter_json!(&daemon, &["deliveries", "list", "--event", "csat.received"]);
    assert_eq!(csat.deliveries.len(), 3);
    let future: DeliveryPage = belter_json!(
        &daemon,
        &["deliveries", "list", "--since", "2999-01-01T00:00:00Z"]
    );
    assert!(future.deliveries.is_empty());
}

#[tokio::test]
async fn cli_replays_by_id() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let client = daemon.client();
    subscribe(&client, &receiver).await;
    let accepted = post_sample(&daemon, EventType::CsatReceived).await;
    let id = accepted.deliveries[0].clone();
    wait_for_status(&client, &id, DeliveryStatus::Succeeded).await;

    let response: ReplayResponse = belter_json!(&daemon, &["replay", id.as_str()]);
    assert_eq!(response.queued, 1);

    let requests = receiver.wait_for_requests(2, RECEIVE_TIMEOUT).await;
    assert_eq!(requests[1].header("x-belter-delivery"), Some(id.as_str()));
    assert_eq!(requests[1].header("x-belter-attempt"), Some("2"));
    assert_eq!(requests[1].body, requests[0].body);
}

#[tokio::test]
async fn cli_replay_by_filter_needs_yes() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::with_reply(Reply::Status(500)).await;
    let client = daemon.client();
    subscribe(&client, &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let accepted = post_sample(&daemon, EventType::CsatReceived).await;
        ids.push(accepted.deliveries[0].clone());
    }
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Failed).await;
    }
    let before = receiver.count();

    let dry_run = belter_ok(&daemon, &["replay", "--status", "failed", "--dry-run"]).await;
    assert!(dry_run.starts_with("would queue 2 deliveries"), "{dry_run}");
    assert!(dry_run.contains(&receiver.url()), "{dry_run}");

    let stderr = belter_fails(&daemon, &["replay", "--status", "failed"], EXIT_FAILURE).await;
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(stderr.contains(&receiver.url()), "{stderr}");
    receiver
        .expect_no_more_than(before, Duration::from_millis(500))
        .await;

    receiver.set_reply(Reply::Status(200));
    let response: ReplayResponse =
        belter_json!(&daemon, &["replay", "--status", "failed", "--yes"]);
    assert_eq!(response.queued, 2);
    assert!(!response.dry_run);
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
}

#[tokio::test]
async fn cli_stats_counts_attempts() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let client = daemon.client();
    subscribe(&client, &receiver).await;
    let accepted = post_sample(&daemon, EventType::CsatReceived).await;
    wait_for_status(&client, &accepted.deliveries[0], DeliveryStatus::Succeeded).await;

    let stats: Stats = belter_json!(&daemon, &["stats", "--window", "1h"]);
    assert_eq!(stats.window_secs, 3_600);
    assert_eq!(stats.ok, 1);
    assert_eq!(stats.endpoints, 1);
    let text = belter_ok(&daemon, &["stats"]).await;
    assert!(text.contains("attempts ok      1"), "{text}");
}

#[tokio::test]
async fn cli_manages_rules_and_filters() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;

    let added = belter_ok(
        &daemon,
        &[
            "rules",
            "add",
            "--scope",
            "team",
            "--scope-id",
            "billing-emea",
            "--criterion",
            "resolution",
            "--min-score",
            "95",
        ],
    )
    .await;
    let listed = belter_ok(&daemon, &["rules", "list"]).await;
    let rules: Vec<belter_common::rules::ThresholdRule> = belter_json!(&daemon, &["rules", "list"]);
    let answer = post_sample(&daemon, EventType::EvaluationCompleted).await;
    let bad_filter = belter_fails(
        &daemon,
        &[
            "endpoints",
            "add",
            &receiver.url(),
            "--filter",
            "data.level >>",
        ],
        EXIT_FAILURE,
    )
    .await;
    let created: CreatedEndpoint = belter_json!(
        &daemon,
        &[
            "endpoints",
            "add",
            &receiver.url(),
            "--filter",
            "data.brand == \"northwind\""
        ]
    );
    let removed = belter_ok(&daemon, &["rules", "remove", rules[0].id.as_str()]).await;
    let after: Vec<belter_common::rules::ThresholdRule> = belter_json!(&daemon, &["rules", "list"]);

    assert!(
        added.contains("team billing-emea: resolution below 95"),
        "{added}"
    );
    assert!(listed.contains("billing-emea"), "{listed}");
    assert_eq!(rules.len(), 1);
    assert_eq!(answer.derived.len(), 1);
    assert_eq!(answer.derived[0].event, EventType::ScoreThresholdBreached);
    assert!(bad_filter.contains("column"), "{bad_filter}");
    assert_eq!(
        created.endpoint.filter.as_deref(),
        Some("data.brand == \"northwind\"")
    );
    assert!(removed.contains("removed"), "{removed}");
    assert!(after.is_empty());
}

#[tokio::test]
async fn cli_names_repeated_idempotency_key() {
    let daemon = DaemonProcess::start().await;
    let file = daemon.dir().join("event.json");
    std::fs::write(&file, sample_body(EventType::CsatReceived)).expect("write the event file");
    let file = file.display().to_string();
    let args = ["events", "post", &file, "--idempotency-key", "order-17"];

    let first = run_belter(&daemon.socket_path(), &args, None).await;
    let second = run_belter(&daemon.socket_path(), &args, None).await;

    let first_stderr = String::from_utf8_lossy(&first.stderr);
    let second_stderr = String::from_utf8_lossy(&second.stderr);
    assert!(first.status.success(), "{first_stderr}");
    assert!(second.status.success(), "{second_stderr}");
    assert!(!first_stderr.contains("used before"), "{first_stderr}");
    assert!(
        second_stderr.contains("\"order-17\" was used before"),
        "{second_stderr}"
    );
    assert_eq!(first.stdout, second.stdout, "the first response comes back");

    let json_args = [
        "--json",
        "events",
        "post",
        &file,
        "--idempotency-key",
        "order-17",
    ];
    let repeated = run_belter(&daemon.socket_path(), &json_args, None).await;
    let stderr = String::from_utf8_lossy(&repeated.stderr);
    assert!(repeated.status.success(), "{stderr}");
    assert!(stderr.contains("\"order-17\" was used before"), "{stderr}");
    let response: serde_json::Value =
        serde_json::from_slice(&repeated.stdout).expect("standard output stays JSON");
    assert!(response["event_id"].is_string(), "{response}");
}
