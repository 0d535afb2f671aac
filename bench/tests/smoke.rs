//! A short run of the bench program against a real belterd, to prove that it measures and
//! writes its report. Its numbers are not checked, because a debug build on a busy machine does
//! not show belterd's speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Maximum time the smoke run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Pause between two checks whether the run has ended.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Returns `$BELTER_BIN_DIR/belterd`, or builds belterd next to the bench binary so that the run
/// never uses a stale daemon. `--workspace` resolves features as `cargo test --workspace` does,
/// so after a workspace build this only links the binary.
fn belterd_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("BELTER_BIN_DIR") {
        return PathBuf::from(dir).join("belterd");
    }
    let bench = Path::new(env!("CARGO_BIN_EXE_belter-bench"));
    let profile_dir = bench.parent().expect("binary directory");
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
}

#[test]
fn short_run_writes_report() {
    let belterd = belterd_path();
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let json_path = dir.path().join("results.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_belter-bench"))
        .args(["--scenario", "throughput", "--scenario", "latency"])
        .args(["--scenario", "backlog", "--scenario", "query"])
        .args(["--duration", "1s", "--rate", "200"])
        .args(["--backlog", "1000", "--concurrency", "8"])
        .arg("--json")
        .arg(&json_path)
        .arg("--belterd")
        .arg(&belterd)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start belter-bench");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for belter-bench") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("belter-bench did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let output = child
        .wait_with_output()
        .expect("read belter-bench's output");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "belter-bench failed: {status}\n{table}");
    assert!(table.contains("delivered/s"), "{table}");
    assert!(table.contains("targets:"), "{table}");

    let text = std::fs::read_to_string(&json_path).expect("read the JSON report");
    let report: serde_json::Value = serde_json::from_str(&text).expect("parse the JSON report");
    assert!(report["machine"]["cpus"].as_u64().unwrap_or(0) > 0);
    assert!(report["errors"].as_array().is_some_and(Vec::is_empty));

    let results = &report["results"];
    assert!(
        results["baseline"]["requests_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(results["baseline"]["bad_signatures"], 0);
    assert!(
        results["baseline"]["cpu_us_per_request"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "the baseline's CPU per request is measured"
    );
    assert!(
        results["baseline"]["client_cores"].as_f64().unwrap_or(0.0) > 0.0,
        "the client process's CPU is measured"
    );
    assert!(
        results["baseline"]["in_process"]["requests_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "the client is also measured in the bench's process"
    );

    let throughput = &results["throughput"];
    let accepted = throughput["accepted"].as_u64().unwrap_or(0);
    assert!(accepted > 0, "{throughput}");
    assert_eq!(throughput["delivered"].as_u64(), Some(accepted));
    assert_eq!(throughput["drained"], true);
    assert_eq!(throughput["bad_signatures"], 0);
    assert!(
        throughput["delivered_over_baseline"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        throughput["daemon_cpu_us_per_event"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "belterd's CPU per event is measured"
    );
    for measured in [
        "baseline_after_per_sec",
        "baseline_after_cpu_us_per_request",
        "cpu_ratio",
        "daemon_cpu_us_per_accepted",
    ] {
        assert!(
            throughput[measured].as_f64().unwrap_or(0.0) > 0.0,
            "{measured} is measured: {throughput}"
        );
    }

    let latency = &results["latency"];
    assert!(latency["accepted"].as_u64().unwrap_or(0) > 0, "{latency}");
    assert_eq!(latency["undelivered"], 0, "{latency}");
    for measured in ["daemon_cpu_us_per_event", "bench_cpu_us_per_event"] {
        assert!(
            latency[measured].as_f64().unwrap_or(0.0) > 0.0,
            "{measured} is measured: {latency}"
        );
    }

    let backlog = &results["backlog"];
    assert_eq!(backlog["created"], 1000);
    assert!(backlog["rss_with_backlog_mib"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(backlog["store_disk_mib"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(backlog["restart_to_first_delivery_ms"].as_f64().is_some());
    assert_eq!(backlog["bad_signatures"], 0);
    // A drain of 1,000 can end within one tick of the kernel's CPU clock, so only the presence
    // of the drain's CPU figures is checked here.
    for measured in [
        "drain_daemon_cpu_us_per_delivery",
        "drain_bench_cpu_us_per_delivery",
    ] {
        assert!(
            backlog[measured].as_f64().is_some_and(|us| us >= 0.0),
            "{measured} is reported: {backlog}"
        );
    }

    let query = &results["query"];
    assert_eq!(query["failed_page"]["returned"], 10);
    assert_eq!(query["newest_page"]["returned"], 50);
    assert_eq!(query["no_match"]["returned"], 0);

    let targets: Vec<&str> = report["targets"]
        .as_array()
        .expect("targets array")
        .iter()
        .filter_map(|check| check["name"].as_str())
        .collect();
    for name in [
        "delivered/s over the baselines' mean",
        "accepted events/s",
        "RSS with backlog",
        "failed page query p50",
    ] {
        assert!(targets.contains(&name), "{name} missing from {targets:?}");
    }
}

/// Runs the bench with `args`, which must fail before any scenario starts, and returns its
/// standard error.
fn rejected_run(args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_belter-bench"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run belter-bench");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("[baseline]"),
        "the baseline started: {stderr}"
    );
    stderr
}

#[test]
fn unwritable_report_fails_first() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let json_path = dir.path().join("missing").join("results.json");
    // Any existing file passes the program check, which comes first.
    let program = Path::new(env!("CARGO_BIN_EXE_belter-bench"));
    let stderr = rejected_run(&[
        "--json".as_ref(),
        json_path.as_os_str(),
        "--belterd".as_ref(),
        program.as_os_str(),
    ]);
    assert!(stderr.contains("cannot create the report file"), "{stderr}");
    assert!(stderr.contains("--json"), "{stderr}");
}

#[test]
fn baseline_alone_needs_no_belterd() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let json_path = dir.path().join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_belter-bench"))
        .args([
            "--scenario",
            "baseline",
            "--duration",
            "1s",
            "--concurrency",
            "4",
        ])
        .arg("--belterd")
        .arg(dir.path().join("no-such-belterd"))
        .arg("--json")
        .arg(&json_path)
        .stdin(Stdio::null())
        .output()
        .expect("run belter-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("read the report"))
            .expect("parse the report");
    let requests = report["results"]["baseline"]["requests"].as_u64();
    assert!(requests.is_some_and(|count| count > 0), "{report}");
    assert!(report["results"]["throughput"].is_null(), "{report}");
}

#[test]
fn directory_as_belterd_rejected() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let stderr = rejected_run(&["--belterd".as_ref(), dir.path().as_os_str()]);
    assert!(stderr.contains("is a directory"), "{stderr}");
}

#[test]
fn stopped_run_keeps_old_report() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let json_path = dir.path().join("results.json");
    std::fs::write(&json_path, "{\"old\": true}").expect("write an old report");
    let program = Path::new(env!("CARGO_BIN_EXE_belter-bench"));
    let mut child = Command::new(program)
        .args(["--scenario", "baseline", "--duration", "30s"])
        .arg("--json")
        .arg(&json_path)
        .arg("--belterd")
        .arg(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start belter-bench");
    // The report path is checked first, so a second is well into the baseline.
    std::thread::sleep(Duration::from_secs(1));
    child.kill().expect("stop belter-bench");
    child.wait().expect("wait for belter-bench");
    let report = std::fs::read_to_string(&json_path).expect("read the report");
    assert_eq!(report, "{\"old\": true}");
}
