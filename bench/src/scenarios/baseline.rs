//! The baseline: a plain client signs the delivery body with HMAC-SHA256 and posts it straight
//! to the receiver, with the scenario's concurrency. The client is the HTTP/1.1 client that
//! belterd sends `http://` deliveries with, the fastest one at hand. Its rate is the limit of
//! signing plus loopback HTTP on this machine, which belterd's delivery rates are compared with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use belter_common::http1_client::{Http1Client, Request};
use belter_common::{headers, signing, DeliveryId, EventId};
use serde::Serialize;

use crate::options::Options;
use crate::payload::{delivery_body, EVENT_TYPE};
use crate::percentiles::Spread;
use crate::progress::{note, Ticker};
use crate::receiver::{Behaviour, Receiver};
use crate::system::{CpuMeter, CpuUse};

/// Secret the baseline signs with; its length matches belterd's generated secrets.
const SECRET: &str = "whsec_YmVsdGVyLWJlbmNoLWJhc2VsaW5lLXNlY3JldC0wMDAwMA==";

/// Connect timeout of the baseline's client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Response bytes the baseline keeps, as belterd keeps an excerpt of each response.
const EXCERPT_BYTES: usize = 4 * 1024;

/// Results of the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    /// Requests in flight.
    pub concurrency: usize,
    /// Requests that got a 200 response.
    pub requests: u64,
    /// Requests that failed or got another status.
    pub errors: u64,
    /// Requests with a 200 response per second.
    pub requests_per_sec: f64,
    /// Time from signing to the full response.
    pub latency: Option<Spread>,
    /// Size of the signed body.
    pub body_bytes: usize,
    /// Requests whose signature the receiver rejected.
    pub bad_signatures: u64,
    /// CPU the client and receiver used, in cores.
    pub cpu: CpuUse,
    /// CPU of the client and receiver together per request, in µs.
    pub cpu_us_per_request: f64,
}

/// Runs the baseline for the run's duration.
pub async fn run(options: &Options) -> anyhow::Result<BaselineResult> {
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    receiver.set_secret("/hook", SECRET);
    let url = url::Url::parse(&receiver.url("/hook"))?;
    let body = delivery_body(EVENT_TYPE)?;
    let event_id = EventId::generate().to_string();
    // belterd's client for `http://` endpoints, with an address policy that permits all.
    let client = Http1Client::new(CONNECT_TIMEOUT, Arc::new(|_| true));
    let user_agent = headers::user_agent();

    note(
        "baseline",
        &format!(
            "{} signed POSTs in flight for {:?}",
            options.concurrency, options.duration
        ),
    );
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies_ms = Arc::new(Mutex::new(Vec::new()));
    let ticker = {
        let requests = Arc::clone(&requests);
        Ticker::start("baseline", move |elapsed| {
            let done = requests.load(Ordering::Relaxed);
            format!(
                "{:.0}s: {done} requests ({:.0}/s)",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64()
            )
        })
    };
    let cpu_meter = CpuMeter::start(None);
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
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
    let elapsed = started.elapsed();
    let cpu = cpu_meter.read(elapsed);
    drop(ticker);

    let requests = requests.load(Ordering::Relaxed);
    let latencies = latencies_ms
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let result = BaselineResult {
        concurrency: options.concurrency,
        requests,
        errors: errors.load(Ordering::Relaxed),
        requests_per_sec: per_second(requests, elapsed),
        latency: Spread::of(&latencies),
        body_bytes: body.len(),
        bad_signatures: receiver.bad_signatures(),
        cpu,
        cpu_us_per_request: micros_per(cpu.bench_cores, per_second(requests, elapsed)),
    };
    note(
        "baseline",
        &format!("{:.0} requests/s", result.requests_per_sec),
    );
    Ok(result)
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
