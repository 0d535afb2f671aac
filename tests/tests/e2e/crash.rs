//! Crashes and stops under load: every event that ingest accepted with 202 reaches its
//! receivers, across SIGKILL at random moments and SIGTERM with attempts in flight.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use belter_common::api::{DeliveryQuery, IngestResponse};
use belter_common::client::ControlClient;
use belter_common::headers;
use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::http::post;
use belter_tests::raw::create_endpoint;
use belter_tests::wait::poll_until;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Ingest token of these tests, so that posters need not read the token file.
const TOKEN: &str = "crash-test-token-0123456789";

/// Tasks that post events at the same time.
const POSTERS: usize = 2;

/// Time between two posts of one poster. Posts take a few milliseconds, so a kill often lands
/// while one is in flight.
const POST_INTERVAL: Duration = Duration::from_millis(10);

/// Kills in the SIGKILL test.
const KILLS: usize = 4;

/// Range of the random time a daemon runs under load before it is killed, in milliseconds.
const RUN_BEFORE_KILL_MS: (u64, u64) = (2_000, 5_000);

/// Time the posters go on after the last restart.
const LOAD_AFTER_RESTART: Duration = Duration::from_secs(2);

/// Time the daemon has to deliver everything once the load has stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries of these tests: enough that a delivery whose first attempt fails, and whose retry is
/// cut short by kills, still succeeds.
const RETRY_SCHEDULE: &str = "100ms,200ms,300ms,400ms,500ms";

fn options() -> DaemonOptions {
    DaemonOptions {
        retry_schedule: RETRY_SCHEDULE.to_owned(),
        ingest_token: Some(TOKEN.to_owned()),
        log_filter: "info".to_owned(),
        ..DaemonOptions::default()
    }
}

/// What the posters saw.
#[derive(Debug, Default)]
struct PostLog {
    accepted: Vec<IngestResponse>,
    /// Requests that failed without a response, while the daemon was down or dying.
    failed: usize,
    /// Responses other than 202, with their status.
    rejected: Vec<u16>,
}

/// Posts events to whichever ingest URL `url` holds, until `stop` turns true.
struct Load {
    url: watch::Sender<Option<String>>,
    stop: watch::Sender<bool>,
    log: Arc<Mutex<PostLog>>,
    tasks: JoinSet<()>,
}

impl Load {
    fn start(ingest_url: String) -> Self {
        let (url, _) = watch::channel(Some(ingest_url));
        let (stop, _) = watch::channel(false);
        let log = Arc::new(Mutex::new(PostLog::default()));
        let mut tasks = JoinSet::new();
        for _ in 0..POSTERS {
            tasks.spawn(post_until_stopped(
                url.subscribe(),
                stop.subscribe(),
                Arc::clone(&log),
            ));
        }
        Self {
            url,
            stop,
            log,
            tasks,
        }
    }

    /// Stops the posters and returns what they saw.
    async fn finish(mut self) -> PostLog {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn post_until_stopped(
    url: watch::Receiver<Option<String>>,
    mut stop: watch::Receiver<bool>,
    log: Arc<Mutex<PostLog>>,
) {
    let authorization = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
    ];
    let body = sample_body(EventType::CsatReceived).as_bytes().to_vec();
    let mut ticks = tokio::time::interval(POST_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticks.tick() => {}
        }
        let Some(target) = url.borrow().clone() else {
            continue;
        };
        let outcome = post(&target, &headers, body.clone()).await;
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(response) if response.status.as_u16() == 202 => {
                match serde_json::from_slice::<IngestResponse>(&response.body) {
                    Ok(answer) => log.accepted.push(answer),
                    Err(_) => log.rejected.push(202),
                }
            }
            Ok(response) => log.rejected.push(response.status.as_u16()),
            Err(_) => log.failed += 1,
        }
    }
}

/// A small xorshift generator seeded from the standard library's random hasher keys, so that
/// each run kills at other moments. The seed is printed, so a failing run can be repeated.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        println!("kill times seeded with {seed}");
        Self(seed)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low + 1)
    }
}

/// Lists every delivery the daemon stores, with its status.
async fn all_statuses(client: &ControlClient) -> BTreeMap<DeliveryId, DeliveryStatus> {
    let mut statuses = BTreeMap::new();
    let mut query = DeliveryQuery {
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    loop {
        let page = client
            .list_deliveries(&query)
            .await
            .expect("list deliveries");
        for delivery in &page.deliveries {
            statuses.insert(delivery.id.clone(), delivery.status);
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return statuses,
        }
    }
}

/// Counts the requests of each delivery id that a receiver got.
fn requests_by_delivery(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in receiver.requests() {
        if let Some(id) = request.header(headers::DELIVERY) {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Waits until every accepted delivery succeeded and the stats count nothing pending, checks that
/// a receiver got a request for each delivery, and returns the number of requests beyond
/// `expected_per_delivery` per receiver.
async fn wait_all_delivered(
    client: &ControlClient,
    accepted: &[IngestResponse],
    receivers: &[(&str, &Receiver, usize)],
) -> Vec<usize> {
    let ids: BTreeSet<DeliveryId> = accepted
        .iter()
        .flat_map(|answer| answer.deliveries.iter().cloned())
        .collect();
    poll_until(
        "every accepted delivery to succeed",
        DRAIN_TIMEOUT,
        || async {
            let statuses = all_statuses(client).await;
            let missing = ids.iter().filter(|id| !statuses.contains_key(*id)).count();
            let unfinished: Vec<String> = ids
                .iter()
                .filter_map(|id| statuses.get(id).map(|status| (id, status)))
                .filter(|(_, status)| **status != DeliveryStatus::Succeeded)
                .take(5)
                .map(|(id, status)| format!("{id} {}", status.as_str()))
                .collect();
            if missing == 0 && unfinished.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{missing} accepted deliveries not in the log; not succeeded: {unfinished:?}"
                ))
            }
        },
    )
    .await;
    poll_until(
        "the stats to count nothing pending",
        DRAIN_TIMEOUT,
        || async {
            let stats = client
                .stats(None)
                .await
                .map_err(|error| error.to_string())?;
            match stats.pending {
                0 => Ok(()),
                pending => Err(format!("{pending} pending")),
            }
        },
    )
    .await;

    let mut extra = Vec::new();
    let mut received_ids = BTreeSet::new();
    for (name, receiver, expected_per_delivery) in receivers {
        let counts = requests_by_delivery(receiver);
        let requests: usize = counts.values().sum();
        let repeated = counts
            .values()
            .filter(|count| **count > *expected_per_delivery)
            .count();
        let beyond: usize = counts
            .values()
            .map(|count| count.saturating_sub(*expected_per_delivery))
            .sum();
        println!(
            "{name}: {} deliveries, {requests} requests, {repeated} deliveries sent more often than \
             {expected_per_delivery}, {beyond} extra requests",
            counts.len()
        );
        extra.push(beyond);
        received_ids.extend(counts.into_keys());
    }
    let lost: Vec<&DeliveryId> = ids
        .iter()
        .filter(|id| !received_ids.contains(id.as_str()))
        .take(5)
        .collect();
    assert!(lost.is_empty(), "accepted but never received: {lost:?}");
    extra
}

#[tokio::test]
async fn sigkill_loses_nothing() {
    let started = Instant::now();
    let mut daemon = DaemonProcess::start_with(options()).await;
    let steady = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(20),
        status: 200,
    })
    .await;
    let flaky = Receiver::with_reply(Reply::FailFirstAttempt { status: 500 }).await;
    create_endpoint(&daemon.socket_path(), &steady.url(), false).await;
    create_endpoint(&daemon.socket_path(), &flaky.url(), false).await;
    let load = Load::start(daemon.ingest_url());
    let mut random = Random::new();

    for kill in 1..=KILLS {
        // The random run time picks the moment of the kill; nothing waits on it for state.
        let run = Duration::from_millis(random.between(RUN_BEFORE_KILL_MS.0, RUN_BEFORE_KILL_MS.1));
        tokio::time::sleep(run).await;
        daemon.kill().await;
        load.url.send_replace(None);
        println!("kill {kill} after {run:?}");
        daemon.start_again().await;
        load.url.send_replace(Some(daemon.ingest_url()));
    }
    tokio::time::sleep(LOAD_AFTER_RESTART).await;
    let log = load.finish().await;
    let client = daemon.client();
    println!(
        "{} events accepted, {} posts failed without an answer, {:?} rejected",
        log.accepted.len(),
        log.failed,
        log.rejected
    );
    let extra = wait_all_delivered(
        &client,
        &log.accepted,
        &[
            ("steady receiver", &steady, 1),
            ("flaky receiver", &flaky, 2),
        ],
    )
    .await;
    println!(
        "{} extra requests after {KILLS} kills, in {:?}",
        extra.iter().sum::<usize>(),
        started.elapsed()
    );

    assert!(log.rejected.is_empty(), "rejected: {:?}", log.rejected);
    assert!(
        log.accepted.len() > 100,
        "only {} events accepted",
        log.accepted.len()
    );
    for answer in &log.accepted {
        assert_eq!(answer.deliveries.len(), 2, "{}", answer.event_id);
    }
}

#[tokio::test]
async fn sigterm_keeps_in_flight() {
    let mut daemon = DaemonProcess::start_with(options()).await;
    let slow = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(400),
        status: 200,
    })
    .await;
    create_endpoint(&daemon.socket_path(), &slow.url(), false).await;
    let load = Load::start(daemon.ingest_url());
    poll_until(
        "attempts in flight at the receiver",
        Duration::from_secs(10),
        || async {
            match slow.in_flight() {
                0 => Err("none in flight".to_owned()),
                open => Ok(open),
            }
        },
    )
    .await;

    let in_flight = slow.in_flight();
    let stopping = Instant::now();
    let status = daemon.stop().await;
    let stop_time = stopping.elapsed();
    load.url.send_replace(None);
    daemon.start_again().await;
    load.url.send_replace(Some(daemon.ingest_url()));
    tokio::time::sleep(LOAD_AFTER_RESTART).await;
    let log = load.finish().await;
    let extra = wait_all_delivered(
        &daemon.client(),
        &log.accepted,
        &[("slow receiver", &slow, 1)],
    )
    .await;
    println!(
        "SIGTERM with {in_flight} attempts in flight took {stop_time:?}; {} events accepted",
        log.accepted.len()
    );

    assert!(
        status.success(),
        "belterd exited with {status} after SIGTERM"
    );
    assert!(log.rejected.is_empty(), "rejected: {:?}", log.rejected);
    assert_eq!(extra, [0], "a graceful stop sent deliveries twice");
}
