//! End-to-end runs of the real `belter-tui` binary in tmux, against a real `belterd` child and a
//! real receiver on 127.0.0.1. Keys go in with `tmux send-keys`, and the screen is read with
//! `tmux capture-pane -p`.
//!
//! `belterd` is built into this test's target directory on first use, because Cargo builds only
//! this package's binaries for its tests, or taken from `$BELTER_BIN_DIR`. Needs tmux; without it
//! the test prints why and passes without checking anything.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use belter_common::api::{CreateEndpoint, IngestResponse};
use belter_common::client::ControlClient;
use belter_common::records::EventSelection;
use belter_common::rules::RuleScope;
use belter_common::samples::sample_body;
use belter_common::{headers, EventType};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// Maximum wait for anything on screen or at the receiver.
const WAIT: Duration = Duration::from_secs(20);

/// Pause between two screen reads.
const POLL: Duration = Duration::from_millis(100);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    delivery: String,
    attempt: String,
}

/// A receiver on 127.0.0.1 that records requests. `/fail` returns `fail_status`, others 200.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    fail_status: Arc<AtomicU16>,
}

impl Receiver {
    fn start(runtime: &Runtime) -> Receiver {
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .expect("bind the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let fail_status = Arc::new(AtomicU16::new(500));
        let (log, status) = (Arc::clone(&received), Arc::clone(&fail_status));
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, status) = (Arc::clone(&log), Arc::clone(&status));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (log, status) = (Arc::clone(&log), Arc::clone(&status));
                        async move {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .and_then(|value| value.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let entry = Received {
                                path: request.uri().path().to_owned(),
                                delivery: header(headers::DELIVERY),
                                attempt: header(headers::ATTEMPT),
                            };
                            let _ = request.into_body().collect().await;
                            let code = if entry.path == "/fail" {
                                status.load(Ordering::SeqCst)
                            } else {
                                200
                            };
                            log.lock().expect("receiver log").push(entry);
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"{\"seen\":true}")));
                            *response.status_mut() =
                                StatusCode::from_u16(code).expect("valid status");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            port,
            received,
            fail_status,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("receiver log").clone()
    }
}

/// The belterd child, stopped with SIGTERM by its PID when dropped.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmux server of this test's own, on its own socket name, killed when dropped.
struct Tmux {
    server: String,
    session: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.server]);
        command
    }

    fn run(&self, args: &[&str]) {
        let status = self.command().args(args).status().expect("run tmux");
        assert!(status.success(), "tmux {args:?} failed");
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", text]);
    }

    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("capture the pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Presses Enter on the log until `check` accepts the screen, and returns that screen. A key
    /// that arrives while a page of the log is loading finds no row selected and does nothing,
    /// so the key is pressed again while the log still shows.
    fn open_from_log(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        const TRIES: u32 = 5;
        for _ in 0..TRIES {
            self.keys(&["Enter"]);
            let deadline = Instant::now() + WAIT / TRIES;
            while Instant::now() < deadline {
                let screen = self.screen();
                if check(&screen) {
                    return screen;
                }
                std::thread::sleep(POLL);
            }
            if !self.screen().contains("TIME UTC") {
                break;
            }
        }
        self.wait_for(what, check)
    }

    /// Waits until `check` accepts the screen, and returns that screen.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; the screen was:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

/// Returns `$BELTER_BIN_DIR/belterd`, or builds belterd next to `belter-tui` on first use, so the
/// test never runs a stale daemon. `--workspace` resolves features as `cargo test --workspace`
/// does, so this only links the binary after a workspace build.
fn belterd_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BELTER_BIN_DIR") {
            return PathBuf::from(dir).join("belterd");
        }
        let console = Path::new(env!("CARGO_BIN_EXE_belter-tui"));
        let profile_dir = console.parent().expect("binary directory");
        let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .args(["build", "--quiet", "--workspace", "--bin", "belterd"])
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--profile", profile]);
        if let Some(target_dir) = profile_dir.parent() {
            if target_dir.join("CACHEDIR.TAG").is_file() {
                command.arg("--target-dir").arg(target_dir);
            }
        }
        let output = command.output().expect("run cargo to build belterd");
        assert!(
            output.status.success(),
            "cargo build --bin belterd failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        profile_dir.join("belterd")
    })
    .clone()
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn start_daemon(runtime: &Runtime, dir: &Path) -> (Daemon, ControlClient) {
    let socket = dir.join("control.sock");
    let log = std::fs::File::create(dir.join("belterd.log")).expect("daemon log");
    let child = Command::new(belterd_path())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--control-socket")
        .arg(&socket)
        .args([
            "--ingest-addr",
            "127.0.0.1:0",
            "--retry-schedule",
            "100ms,200ms",
            "--attempt-timeout",
            "2s",
            "--allow-network",
            "127.0.0.0/8",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("daemon log"))
        .stderr(log)
        .spawn()
        .expect("start belterd");
    let daemon = Daemon { child };
    let client = ControlClient::new(&socket);
    let deadline = Instant::now() + WAIT;
    while runtime.block_on(client.health()).is_err() {
        assert!(
            Instant::now() < deadline,
            "belterd did not respond on {}",
            socket.display()
        );
        std::thread::sleep(POLL);
    }
    (daemon, client)
}

fn create_endpoint(runtime: &Runtime, client: &ControlClient, url: String, events: EventSelection) {
    // Built from JSON so that optional fields the contract adds keep their defaults.
    let request: CreateEndpoint = serde_json::from_value(serde_json::json!({
        "url": url,
        "event_types": events,
    }))
    .expect("valid endpoint request");
    runtime
        .block_on(client.create_endpoint(&request))
        .expect("create endpoint");
}

/// Posts an `evaluation.completed` whose greeting criterion scores `greeting`, and returns the
/// daemon's answer with the events it derived.
fn post_evaluation(runtime: &Runtime, client: &ControlClient, greeting: u32) -> IngestResponse {
    let mut body: serde_json::Value =
        serde_json::from_str(sample_body(EventType::EvaluationCompleted)).expect("sample JSON");
    let criteria = body["data"]["criteria"]
        .as_array_mut()
        .expect("the sample has criteria");
    let criterion = criteria
        .iter_mut()
        .find(|item| item["criterion"] == "greeting")
        .expect("the sample scores the greeting");
    criterion["score"] = serde_json::json!(greeting);
    runtime
        .block_on(client.post_event(body.to_string().into_bytes(), None))
        .expect("post evaluation")
}

fn post(runtime: &Runtime, client: &ControlClient, kind: EventType) {
    runtime
        .block_on(client.post_event(sample_body(kind).as_bytes().to_vec(), None))
        .expect("post event");
}

fn lines_with<'a>(screen: &'a str, needle: &str) -> Vec<&'a str> {
    screen
        .lines()
        .filter(|line| line.contains(needle))
        .collect()
}

#[test]
fn console_follows_filters_shows_and_replays() {
    if !tmux_available() {
        eprintln!("SKIPPED console_follows_filters_shows_and_replays: tmux is not installed");
        return;
    }
    let runtime = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(&runtime);
    let (_daemon, client) = start_daemon(&runtime, dir.path());
    create_endpoint(&runtime, &client, receiver.url("/ok"), EventSelection::All);
    create_endpoint(
        &runtime,
        &client,
        receiver.url("/fail"),
        EventSelection::Only(vec![EventType::FrustrationDetected]),
    );

    let tmux = Tmux {
        server: format!("belter-e2e-{}", std::process::id()),
        session: "console".to_owned(),
    };
    let console = format!(
        "{} --socket {} --log-file {}; echo console-exit=$?; sleep 30",
        env!("CARGO_BIN_EXE_belter-tui"),
        dir.path().join("control.sock").display(),
        dir.path().join("console.log").display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        &tmux.session,
        "-x",
        "100",
        "-y",
        "30",
        &console,
    ]);
    tmux.wait_for("the live stream", |screen| screen.contains("● live"));

    // A delivery that succeeds, then one that fails, appear without a key press.
    post(&runtime, &client, EventType::CsatReceived);
    tmux.wait_for("the csat delivery", |screen| {
        lines_with(screen, "csat.received")
            .iter()
            .any(|line| line.contains("✔ 200"))
    });
    post(&runtime, &client, EventType::FrustrationDetected);
    let screen = tmux.wait_for("the failed delivery", |screen| {
        lines_with(screen, "/fail")
            .iter()
            .any(|line| line.contains("frustration.detected") && line.contains("✖ 500"))
    });
    assert!(screen.contains("failed"), "{screen}");

    // The filter narrows the log on the daemon side.
    tmux.keys(&["/"]);
    tmux.type_text("event:csat.received");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the event filter", |screen| {
        screen.contains("filter event:csat.received") && screen.contains("csat.received  ")
    });
    assert!(!screen.contains("frustration.detected"), "{screen}");
    tmux.keys(&["/", "C-u"]);
    tmux.type_text("status:failed");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the failed-only view", |screen| {
        screen.contains("filter status:failed") && screen.contains("✖ 500")
    });
    assert!(!screen.contains("✔ 200"), "{screen}");
    assert!(!screen.contains("csat.received"), "{screen}");

    // The detail view shows the payload and the signature sent.
    // Each wait checks every expected line at once: tmux may capture a frame half drawn.
    tmux.open_from_log("the detail view", |screen| {
        screen.contains("Payload") && screen.contains("x-webhook-signature: v1=")
    });
    tmux.keys(&["Tab", "Tab"]);
    tmux.wait_for("the payload", |screen| {
        screen.contains("\"conversation_id\": \"conv_84310\"") && screen.contains("\"level\": 0.87")
    });

    // A replay from the console reaches the receiver, and the new attempt shows up.
    let failed = receiver
        .requests()
        .into_iter()
        .find(|request| request.path == "/fail")
        .expect("a request to /fail");
    receiver.fail_status.store(200, Ordering::SeqCst);
    tmux.keys(&["r"]);
    let deadline = Instant::now() + WAIT;
    let replayed = loop {
        let found = receiver
            .requests()
            .into_iter()
            .find(|request| request.delivery == failed.delivery && request.attempt == "4");
        if let Some(request) = found {
            break request;
        }
        assert!(
            Instant::now() < deadline,
            "the replay never reached the receiver"
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(replayed.path, "/fail");
    tmux.keys(&["End"]);
    tmux.wait_for("the replayed attempt", |screen| {
        lines_with(screen, "#4")
            .iter()
            .any(|line| line.contains("replay") && line.contains("✔ 200"))
    });

    // Several deliveries replay only after a confirmation that counts them.
    // Esc and the next key go in separate calls, or the pair reads as Alt and that key.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the log", |screen| screen.contains("TIME UTC"));
    tmux.keys(&["f"]);
    tmux.wait_for("the whole log", |screen| screen.contains("filter none"));
    tmux.keys(&["Home", "Space", "Space", "r"]);
    let screen = tmux.wait_for("the confirmation", |screen| {
        screen.contains("Replay 2 deliveries?")
    });
    assert!(screen.contains("2 marked deliveries"), "{screen}");
    let before = receiver.requests().len();
    tmux.keys(&["y"]);
    let deadline = Instant::now() + WAIT;
    while receiver.requests().len() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the confirmed replay never arrived"
        );
        std::thread::sleep(POLL);
    }

    // Quitting restores the terminal and exits with status 0.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the console to exit", |screen| {
        screen.contains("console-exit=")
    });
    assert!(screen.contains("console-exit=0"), "{screen}");
    assert!(
        !screen.contains("● live"),
        "the alternate screen was not left:\n{screen}"
    );
}

#[test]
fn console_rule_derives_breach_delivery() {
    if !tmux_available() {
        eprintln!("SKIPPED console_rule_derives_breach_delivery: tmux is not installed");
        return;
    }
    let runtime = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(&runtime);
    let (_daemon, client) = start_daemon(&runtime, dir.path());
    create_endpoint(&runtime, &client, receiver.url("/ok"), EventSelection::All);

    let tmux = Tmux {
        server: format!("belter-e2e-rules-{}", std::process::id()),
        session: "console".to_owned(),
    };
    let console = format!(
        "{} --socket {} --log-file {}; echo console-exit=$?; sleep 30",
        env!("CARGO_BIN_EXE_belter-tui"),
        dir.path().join("control.sock").display(),
        dir.path().join("console.log").display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        &tmux.session,
        "-x",
        "100",
        "-y",
        "30",
        &console,
    ]);
    tmux.wait_for("the live stream", |screen| screen.contains("● live"));

    // The endpoints pane shows the format and the filter of each endpoint.
    tmux.keys(&["e"]);
    tmux.wait_for("the endpoints pane", |screen| {
        screen.contains("format raw · no filter")
    });

    tmux.keys(&["t"]);
    tmux.wait_for("the empty rules pane", |screen| {
        screen.contains("no threshold rules yet")
    });
    tmux.keys(&["a"]);
    tmux.wait_for("the rule line", |screen| screen.contains("new rule>"));

    // A line the console can check never reaches the daemon.
    tmux.type_text("scope:team min:80");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the console's error", |screen| {
        screen.contains("missing id for scope:team: add the team id")
    });

    // A line only the daemon rejects shows the daemon's own message.
    tmux.keys(&["C-u"]);
    tmux.type_text(&format!("scope:team id:{} min:80", "x".repeat(300)));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the daemon's rejection", |screen| {
        screen.contains("belterd rejected the rule: scope_id must be 1 to 256 bytes long")
    });
    assert!(
        runtime
            .block_on(client.list_rules())
            .expect("list rules")
            .is_empty(),
        "a rejected rule was stored"
    );

    tmux.keys(&["C-u"]);
    tmux.type_text("scope:team id:billing-emea criterion:greeting min:80");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the new rule", |screen| {
        let listed = lines_with(screen, "billing-emea")
            .iter()
            .any(|line| line.starts_with("team") && line.contains("greeting"));
        listed && !screen.contains("new rule>")
    });
    let rules = runtime.block_on(client.list_rules()).expect("list rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.scope, RuleScope::Team);
    assert_eq!(rule.scope_id.as_deref(), Some("billing-emea"));
    assert_eq!(rule.criterion.as_deref(), Some("greeting"));
    assert_eq!(rule.min_score, 80.0);

    // An evaluation below the rule derives a breach, which the receiver gets.
    let ingested = post_evaluation(&runtime, &client, 40);
    assert_eq!(ingested.derived.len(), 1, "{ingested:?}");
    assert_eq!(ingested.derived[0].event, EventType::ScoreThresholdBreached);
    tmux.keys(&["Escape"]);
    tmux.wait_for("the breach in the log", |screen| {
        lines_with(screen, "score.threshold_brea")
            .iter()
            .any(|line| line.contains("✔ 200"))
    });

    // Its detail names the rule and the evaluation it came from.
    tmux.keys(&["/"]);
    tmux.type_text("event:score.threshold_breached");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the breach filter", |screen| {
        screen.contains("filter event:score.threshold_breached")
            && screen.contains("score.threshold_brea")
            && !screen.contains("evaluation.completed")
    });
    let origin = format!(
        "derived   from rule {} on event {}",
        rule.id, ingested.event_id
    );
    tmux.open_from_log("the breach's origin", |screen| screen.contains(&origin));

    // Deleting the rule needs a yes, and then evaluations derive nothing.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the log", |screen| screen.contains("TIME UTC"));
    tmux.keys(&["t"]);
    tmux.wait_for("the rule", |screen| screen.contains("billing-emea"));
    tmux.keys(&["d"]);
    tmux.wait_for("the confirmation", |screen| {
        screen.contains(&format!("Delete rule {}?", rule.id))
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the rule to go", |screen| {
        screen.contains("no threshold rules yet")
    });
    assert!(runtime
        .block_on(client.list_rules())
        .expect("list rules")
        .is_empty());
    let ingested = post_evaluation(&runtime, &client, 40);
    assert!(ingested.derived.is_empty(), "{ingested:?}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the console to exit", |screen| {
        screen.contains("console-exit=")
    });
    assert!(screen.contains("console-exit=0"), "{screen}");
}

#[test]
fn demo_runs_and_cleans_up() {
    if !tmux_available() {
        eprintln!("SKIPPED demo_runs_and_cleans_up: tmux is not installed");
        return;
    }
    let tmux = Tmux {
        server: format!("belter-e2e-demo-{}", std::process::id()),
        session: "demo".to_owned(),
    };
    let console = format!(
        "{} --demo --belterd {}; echo console-exit=$?; sleep 30",
        env!("CARGO_BIN_EXE_belter-tui"),
        belterd_path().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        &tmux.session,
        "-x",
        "80",
        "-y",
        "24",
        &console,
    ]);
    tmux.wait_for("demo deliveries", |screen| {
        screen.contains("● live") && screen.contains("ks/crm") && screen.contains("✔ 200")
    });
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the demo to exit", |screen| {
        screen.contains("console-exit=")
    });
    assert!(screen.contains("console-exit=0"), "{screen}");
    // The demo names its directory before the console starts; the pane may wrap that line.
    let joined: String = screen.lines().collect();
    let start = joined
        .find("/belter-demo-")
        .expect("the demo's directory is named");
    let prefix = &joined[..start];
    let dir_start = prefix.rfind(' ').map_or(0, |space| space + 1);
    let name_end = joined[start + 1..]
        .find(|character: char| !(character.is_ascii_alphanumeric() || character == '-'))
        .map_or(joined.len(), |end| start + 1 + end);
    let directory = &joined[dir_start..name_end];
    assert!(
        !Path::new(directory).exists(),
        "the demo left {directory} behind"
    );
}

#[test]
fn missing_daemon_names_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("nobody.sock");
    let output = Command::new(env!("CARGO_BIN_EXE_belter-tui"))
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .expect("run belter-tui");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(stderr.contains("Is belterd running?"), "{stderr}");
}
