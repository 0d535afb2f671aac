//! Ingest latency at a fixed rate: the time to the 202, and from the 202 to the receiver
//! getting the delivery. Posts are sent on a fixed schedule whether or not earlier responses
//! came back, so a slow response does not lower the rate.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use belter_common::records::EventSelection;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::baseline::{micros_per, per_second};
use crate::daemon::{endpoint_request, Daemon, DaemonSettings};
use crate::ingest::IngestClient;
use crate::options::Options;
use crate::payload::{ingest_body, EVENT_TYPE};
use crate::percentiles::{millis_between, Spread};
use crate::progress::{note, Ticker};
use crate::receiver::{Behaviour, Receiver};
use crate::system::{CpuMeter, CpuUse};

/// Maximum posts waiting for their response at once. A tick beyond this is skipped and counted.
const MAX_OUTSTANDING: usize = 4_096;

/// Time the last responses and deliveries get after the posting schedule ends.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Results of the latency scenario.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    /// The schedule's events per second.
    pub rate_per_sec: u32,
    /// Posts sent.
    pub sent: u64,
    /// Posts answered with 202.
    pub accepted: u64,
    /// Posts that failed or got another status.
    pub rejected: u64,
    /// Ticks skipped because [`MAX_OUTSTANDING`] posts were waiting.
    pub skipped: u64,
    /// Accepted events per second, over the schedule's length.
    pub accepted_per_sec: f64,
    /// Time from sending a post to its 202.
    pub accepted_latency: Option<Spread>,
    /// Time from the 202 to the receiver getting the delivery. The scheduler may send the
    /// delivery before the client has read the 202, so a sample can be negative.
    pub delivery_latency: Option<Spread>,
    /// Accepted events whose delivery did not arrive within the settle timeout.
    pub undelivered: u64,
    /// Deliveries whose signature did not verify.
    pub bad_signatures: u64,
    /// CPU from the first post until every delivery arrived.
    pub cpu: CpuUse,
    /// belterd's CPU per accepted event, accepting and delivering it, in µs.
    pub daemon_cpu_us_per_event: f64,
    /// The bench's CPU per accepted event (its poster and receiver), in µs.
    pub bench_cpu_us_per_event: f64,
}

/// One answered post: when it was sent, when the 202 came back, and its delivery id.
struct Answered {
    sent: Instant,
    answered: Instant,
    delivery_id: String,
}

/// Runs the latency scenario.
pub async fn run(options: &Options) -> anyhow::Result<LatencyResult> {
    let mut daemon = Daemon::start(
        &options.belterd,
        DaemonSettings::with_concurrency(options.concurrency),
    )
    .await?;
    let receiver = Arc::new(Receiver::start(Behaviour::Answer).await?);
    let created = daemon
        .client()
        .create_endpoint(&endpoint_request(
            &receiver.url("/hook"),
            EventSelection::All,
            "belter-bench latency receiver",
            false,
        )?)
        .await?;
    receiver.set_secret("/hook", &created.secret);
    receiver.record_arrivals();
    let client = IngestClient::new(daemon.ingest_url(), &daemon.token()?)?;
    let body = ingest_body(EVENT_TYPE);

    let answers: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let outstanding = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let ticker = {
        let answers = Arc::clone(&answers);
        let receiver = Arc::clone(&receiver);
        Ticker::start("latency", move |elapsed| {
            let accepted = answers.lock().unwrap_or_else(PoisonError::into_inner).len();
            format!(
                "{:.0}s: accepted {accepted}, delivered {}",
                elapsed.as_secs_f64(),
                receiver.count()
            )
        })
    };
    note(
        "latency",
        &format!("{} events/s for {:?}", options.rate, options.duration),
    );
    let period = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
    let mut schedule = tokio::time::interval(period);
    schedule.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let cpu_meter = CpuMeter::start(daemon.pid());
    let deadline = started + options.duration;
    let mut sent = 0u64;
    let mut skipped = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        schedule.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let Ok(permit) = Arc::clone(&outstanding).try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        sent += 1;
        let client = client.clone();
        let body = body.clone();
        let answers = Arc::clone(&answers);
        let rejected = Arc::clone(&rejected);
        tasks.spawn(async move {
            let sent = Instant::now();
            let outcome = client.post_accepted(body).await;
            let answered = Instant::now();
            drop(permit);
            let delivery_id = outcome
                .ok()
                .and_then(|answer| answer.deliveries.first().map(ToString::to_string));
            match delivery_id {
                Some(delivery_id) => {
                    answers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Answered {
                            sent,
                            answered,
                            delivery_id,
                        })
                }
                None => {
                    rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    let schedule_time = started.elapsed();
    let _ = tokio::time::timeout(SETTLE_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(PoisonError::into_inner));
    receiver
        .wait_for_count(answers.len() as u64, SETTLE_TIMEOUT)
        .await;
    drop(ticker);
    let busy = started.elapsed();
    let cpu = cpu_meter.read(busy);

    let arrivals = receiver.arrivals();
    let mut accepted_ms = Vec::with_capacity(answers.len());
    let mut delivery_ms = Vec::with_capacity(answers.len());
    let mut undelivered = 0;
    for answer in &answers {
        accepted_ms.push(millis_between(answer.sent, answer.answered));
        match arrivals.get(&answer.delivery_id) {
            Some(&arrived) => delivery_ms.push(millis_between(answer.answered, arrived)),
            None => undelivered += 1,
        }
    }
    let accepted = answers.len() as u64;
    daemon.stop().await?;
    let result = LatencyResult {
        rate_per_sec: options.rate,
        sent,
        accepted,
        rejected: rejected.load(std::sync::atomic::Ordering::Relaxed),
        skipped,
        accepted_per_sec: per_second(accepted, schedule_time),
        accepted_latency: Spread::of(&accepted_ms),
        delivery_latency: Spread::of(&delivery_ms),
        undelivered,
        bad_signatures: receiver.bad_signatures(),
        cpu,
        daemon_cpu_us_per_event: micros_per(cpu.daemon_cores, per_second(accepted, busy)),
        bench_cpu_us_per_event: micros_per(cpu.bench_cores, per_second(accepted, busy)),
    };
    if let (Some(ack), Some(delivery)) = (&result.accepted_latency, &result.delivery_latency) {
        note(
            "latency",
            &format!(
                "202 p50 {:.2} ms p99 {:.2} ms; 202 to receiver p50 {:.2} ms p99 {:.2} ms",
                ack.p50_ms, ack.p99_ms, delivery.p50_ms, delivery.p99_ms
            ),
        );
    }
    Ok(result)
}
