//! The baseline: a plain client signs the delivery body with HMAC-SHA256 and posts it straight
//! to the receiver, with the scenario's concurrency. The client is the HTTP/1.1 client that
//! belterd sends `http://` deliveries with, the fastest one at hand. It runs in a process of its
//! own, this program started again with `--baseline-client`, because belterd runs in one too.
//! Its rate is the limit of signing plus loopback HTTP between two processes on this machine,
//! and belterd's delivery rates are compared with it.
//!
//! The first baseline of a run also measures the client inside this process, beside the
//! receiver, for comparison with runs before the client had a process of its own.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use belter_common::http1_client::{Http1Client, Request};
use belter_common::{headers, signing, DeliveryId, EventId};
use serde::{Deserialize, Serialize};

use crate::options::Options;
use crate::payload::{delivery_body, EVENT_TYPE};
use crate::percentiles::Spread;
use crate::progress::{note, Ticker};
use crate::receiver::{Behaviour, Receiver};
use crate::speed;
use crate::system::{cpu_seconds, CpuMeter, WakeupMeter, Wakeups};

/// Secret the baseline signs with; its length matches belterd's generated secrets.
const SECRET: &str = "whsec_YmVsdGVyLWJlbmNoLWJhc2VsaW5lLXNlY3JldC0wMDAwMA==";

/// Connect timeout of the baseline's client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Response bytes the baseline keeps, as belterd keeps an excerpt of each response.
const EXCERPT_BYTES: usize = 4 * 1024;

/// Time the client process may take beyond its duration to start and report.
const CLIENT_GRACE: Duration = Duration::from_secs(30);

/// The receiver's path the baseline posts to.
const PATH: &str = "/hook";

/// Results of the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    /// Requests in flight.
    pub concurrency: usize,
    /// Requests that got a 2xx response with a whole body.
    pub requests: u64,
    /// Requests that failed or got another status.
    pub errors: u64,
    /// Requests with a 2xx response per second.
    pub requests_per_sec: f64,
    /// Time from signing to the full response.
    pub latency: Option<Spread>,
    /// Size of the signed body.
    pub body_bytes: usize,
    /// Requests whose signature the receiver rejected.
    pub bad_signatures: u64,
    /// CPU of the client's process, in cores.
    pub client_cores: f64,
    /// CPU of this process, which runs the receiver, in cores.
    pub receiver_cores: f64,
    /// CPU of the client and receiver together per request, in µs.
    pub cpu_us_per_request: f64,
    /// The same client run inside this process beside the receiver, in the first baseline of a
    /// run only.
    pub in_process: Option<InProcessResult>,
    /// The speed probe's median while the client ran, in µs; lower is faster.
    pub speed_probe_us: Option<f64>,
    /// The machine's wake-ups per request while the client ran.
    pub wakeups: Wakeups,
}

/// The baseline's client run inside the bench's process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InProcessResult {
    /// Requests with a 2xx response per second.
    pub requests_per_sec: f64,
    /// CPU of the client and receiver together per request, in µs.
    pub cpu_us_per_request: f64,
    /// The speed probe's median while the client ran, in µs; lower is faster.
    pub speed_probe_us: Option<f64>,
}

/// The counts and request times of one run of the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRun {
    /// Requests that got a 2xx response with a whole body.
    pub requests: u64,
    /// Requests that failed or got another status.
    pub errors: u64,
    /// Time from the first request to the end of the last, in seconds.
    pub elapsed_secs: f64,
    /// Time from signing to the full response.
    pub latency: Option<Spread>,
}

/// Runs the baseline for the run's duration, with the client in a process of its own. With
/// `in_process`, it first runs the client inside this process as well.
pub async fn run(options: &Options, in_process: bool) -> anyhow::Result<BaselineResult> {
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    receiver.set_secret(PATH, SECRET);
    let url = receiver.url(PATH);
    let in_process = if in_process {
        Some(run_in_process(options, &url).await?)
    } else {
        None
    };

    note(
        "baseline",
        &format!(
            "{} signed POSTs in flight for {:?}, from a client process",
            options.concurrency, options.duration
        ),
    );
    let ticker = {
        let receiver = Arc::clone(&receiver);
        let count_at_start = receiver.count();
        Ticker::start("baseline", move |elapsed| {
            let done = receiver.count() - count_at_start;
            format!(
                "{:.0}s: {done} requests ({:.0}/s)",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64()
            )
        })
    };
    let own_start = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let bad_before = receiver.bad_signatures();
    let wakeup_meter = WakeupMeter::start();
    let started = Instant::now();
    let (run, client_cpu_secs) = spawn_client(options, &url).await?;
    let wakeups = wakeup_meter.per(run.requests);
    let receiver_cpu_secs = cpu_seconds(std::process::id()).unwrap_or(0.0) - own_start;
    let wall_secs = started.elapsed().as_secs_f64();
    let speed_probe_us = speed::median_us(started, Instant::now());
    drop(ticker);

    let requests_per_sec = ratio(run.requests as f64, run.elapsed_secs);
    let cpu_secs_per_request = ratio(client_cpu_secs + receiver_cpu_secs, run.requests as f64);
    let result = BaselineResult {
        concurrency: options.concurrency,
        requests: run.requests,
        errors: run.errors,
        requests_per_sec,
        latency: run.latency,
        body_bytes: delivery_body(EVENT_TYPE)?.len(),
        bad_signatures: receiver.bad_signatures() - bad_before,
        client_cores: ratio(client_cpu_secs, wall_secs),
        receiver_cores: ratio(receiver_cpu_secs, wall_secs),
        cpu_us_per_request: cpu_secs_per_request * 1e6,
        in_process,
        speed_probe_us,
        wakeups,
    };
    note(
        "baseline",
        &format!("{:.0} requests/s", result.requests_per_sec),
    );
    Ok(result)
}

/// Runs the client inside this process, beside the receiver at `url`.
async fn run_in_process(options: &Options, url: &str) -> anyhow::Result<InProcessResult> {
    note(
        "baseline",
        &format!(
            "{} signed POSTs in flight for {:?}, from a client in this process",
            options.concurrency, options.duration
        ),
    );
    let cpu_meter = CpuMeter::start(None);
    let started = Instant::now();
    let run = post_signed(url, options.concurrency, options.duration).await?;
    let cpu = cpu_meter.read(started.elapsed());
    let requests_per_sec = ratio(run.requests as f64, run.elapsed_secs);
    note(
        "baseline",
        &format!("{requests_per_sec:.0} requests/s in this process"),
    );
    Ok(InProcessResult {
        requests_per_sec,
        cpu_us_per_request: micros_per(cpu.bench_cores, requests_per_sec),
        speed_probe_us: speed::median_us(started, Instant::now()),
    })
}

/// Starts this program as the baseline's client of `url`, waits for it, and returns its
/// report and the CPU seconds it used.
async fn spawn_client(options: &Options, url: &str) -> anyhow::Result<(ClientRun, f64)> {
    let program = std::env::current_exe().context("cannot locate the running program")?;
    let mut child = tokio::process::Command::new(&program)
        .arg("--baseline-client")
        .arg(url)
        .arg("--concurrency")
        .arg(options.concurrency.to_string())
        .arg("--duration")
        .arg(format!("{}ms", options.duration.as_millis()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the baseline client {}", program.display()))?;

    // The client stops when its standard input closes, which happens when this process ends
    // however it ends, so the input stays open until the client has exited.
    let input = child.stdin.take();
    let mut stdout = child
        .stdout
        .take()
        .context("the baseline client has no standard output")?;
    let finished = async {
        let mut report = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut report).await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, report))
    };

    let limit = options.duration + CLIENT_GRACE;
    let (status, report) = tokio::time::timeout(limit, finished)
        .await
        .with_context(|| format!("the baseline client did not finish within {limit:?}"))?
        .context("cannot read the baseline client's report")?;
    drop(input);

    anyhow::ensure!(status.success(), "the baseline client exited with {status}");
    let report: ClientReport =
        serde_json::from_slice(&report).context("the baseline client printed no valid report")?;
    Ok((report.run, report.cpu_secs))
}

/// The client process's output: its run and the CPU seconds the whole process used.
#[derive(Debug, Serialize, Deserialize)]
struct ClientReport {
    run: ClientRun,
    cpu_secs: f64,
}

/// Runs the client process: posts to `url` for `duration` with `concurrency` requests in
/// flight, and prints its report as JSON on standard output.
pub async fn client_main(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("invalid receiver URL {url}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        _ => false,
    };
    anyhow::ensure!(
        loopback,
        "--baseline-client takes a receiver on a loopback address such as 127.0.0.1, got {url}"
    );
    // The bench keeps this process's standard input open while it waits, so end of input
    // means that the bench has stopped and the report would be lost.
    std::thread::spawn(|| {
        let mut buffer = [0_u8; 64];
        let mut input = std::io::stdin();
        while matches!(std::io::Read::read(&mut input, &mut buffer), Ok(1..)) {}
        eprintln!("[baseline] the bench that started this client stopped, so the client stops too");
        std::process::exit(1);
    });
    let run = post_signed(url, concurrency, duration).await?;
    let report = ClientReport {
        run,
        cpu_secs: cpu_seconds(std::process::id())
            .context("cannot read this process's CPU time from /proc")?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Signs and posts the delivery body to `url` for `duration`, with `concurrency` loops that
/// each wait for a response before the next request.
pub async fn post_signed(
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ClientRun> {
    let url = url::Url::parse(url).with_context(|| format!("invalid receiver URL {url}"))?;
    let body = delivery_body(EVENT_TYPE)?;
    let event_id = EventId::generate().to_string();
    // belterd's client for `http://` endpoints, with an address policy that permits all.
    let client = Http1Client::new(CONNECT_TIMEOUT, Arc::new(|_| true));
    let user_agent = headers::user_agent();
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies_ms = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        let body = body.clone();
        let event_id = event_id.clone();
        let user_agent = user_agent.clone();
        let requests = Arc::clone(&requests);
        let errors = Arc::clone(&errors);
        let latencies_ms = Arc::clone(&latencies_ms);
        tasks.spawn(async move {
            let mut own_latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let signature = signing::sign(SECRET, &body);
                let delivery_id = DeliveryId::generate();
                // The headers belterd sends with a delivery, in its order.
                let sent_headers = [
                    ("content-type", "application/json"),
                    ("accept", "*/*"),
                    ("user-agent", user_agent.as_str()),
                    (headers::EVENT, EVENT_TYPE.as_str()),
                    (headers::EVENT_ID, event_id.as_str()),
                    (headers::DELIVERY, delivery_id.as_str()),
                    (headers::ATTEMPT, "1"),
                    (headers::SIGNATURE, signature.as_str()),
                ];
                let request = Request {
                    url: &url,
                    headers: &sent_headers,
                    body: &body,
                };
                let succeeded = match client.post(&request, false, EXCERPT_BYTES).await {
                    Ok(response) => {
                        (200..300).contains(&response.status) && response.body_error.is_none()
                    }
                    Err(_) => false,
                };
                if succeeded {
                    requests.fetch_add(1, Ordering::Relaxed);
                    own_latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(own_latencies);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed_secs = started.elapsed().as_secs_f64();
    let latency = Spread::of(&latencies_ms.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(ClientRun {
        requests: requests.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed_secs,
        latency,
    })
}

/// CPU time per item in µs, from the cores used and the items per second; 0 without items.
pub fn micros_per(cores: f64, per_second: f64) -> f64 {
    if per_second > 0.0 {
        cores / per_second * 1e6
    } else {
        0.0
    }
}

/// `count` over `elapsed`, per second; 0 for an empty interval.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// `part` over `whole`; 0 when `whole` is not positive.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_rejects_other_hosts() {
        // Rejected before any request, so nothing is sent to the documentation address.
        let error = client_main("http://192.0.2.1:9/hook", 1, Duration::from_millis(1))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
    }

    #[test]
    fn ratio_of_zero_whole_is_zero() {
        assert_eq!(ratio(10.0, 0.0), 0.0);
        assert_eq!(ratio(10.0, 2.0), 5.0);
    }
}
