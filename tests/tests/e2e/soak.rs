//! A soak test of bounded length: twenty endpoints, some slow, some failing and one paused,
//! under steady ingest. The daemon's resident memory stays bounded, fast endpoints keep up, and
//! at the end the due index agrees with the delivery log and the stats.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use belter_common::api::DeliveryQuery;
use belter_common::client::ControlClient;
use belter_common::records::{Delivery, DeliveryStatus};
use belter_common::samples::sample_body;
use belter_common::{EndpointId, EventType};
use belter_tests::raw::create_endpoint;
use belter_tests::receiver::refused_url;
use belter_tests::wait::wait_for_pending;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};

/// Endpoints that respond 200 at once.
const FAST: usize = 13;
/// Endpoints that respond 200 after [`SLOW_DELAY`], within the attempt timeout.
const SLOW: usize = 3;
/// Endpoints that respond 500.
const FAILING: usize = 2;

const SLOW_DELAY: Duration = Duration::from_millis(600);

/// How long events are posted.
const INGEST_FOR: Duration = Duration::from_secs(25);

/// Time between two posted events.
const POST_INTERVAL: Duration = Duration::from_millis(100);

/// Resident memory is sampled once per this many posts, once a second.
const POSTS_PER_SAMPLE: u32 = 10;

/// The sample taken this long after the load began is the baseline of the growth bound, so the
/// allocator and the store's cache have warmed up.
const WARM_UP: Duration = Duration::from_secs(5);

/// Largest growth of resident memory from the baseline to the end of the load.
const MAX_RSS_GROWTH_KIB: u64 = 24 * 1024;

/// Maximum time from ingest to success for a delivery to a fast endpoint.
const FAST_BOUND: Duration = Duration::from_secs(3);

/// Time the daemon has to finish every delivery once the load stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Kinds of endpoints in the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fast,
    Slow,
    Failing,
    Refused,
    Paused,
}

/// Reads `VmRSS` of a process from `/proc`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/status: {error}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Lists every delivery in the log, newest first.
async fn all_deliveries(client: &ControlClient) -> Vec<Delivery> {
    let mut deliveries = Vec::new();
    let mut query = DeliveryQuery {
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    loop {
        let page = client
            .list_deliveries(&query)
            .await
            .expect("list deliveries");
        deliveries.extend(page.deliveries);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return deliveries,
        }
    }
}

/// Returns the value at `share` (0 to 1) of sorted `values`.
fn percentile(values: &[Duration], share: f64) -> Duration {
    let index = ((values.len() as f64 - 1.0) * share).round() as usize;
    values.get(index).copied().unwrap_or_default()
}

#[tokio::test]
async fn soak_stays_bounded() {
    let options = DaemonOptions {
        log_filter: "info".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let socket = daemon.socket_path();
    let pid = daemon.pid().expect("belterd runs");
    let mut receivers = Vec::new();
    let mut kinds: BTreeMap<EndpointId, Kind> = BTreeMap::new();
    let plan = [
        (Kind::Fast, FAST),
        (Kind::Slow, SLOW),
        (Kind::Failing, FAILING),
        (Kind::Refused, 1),
        (Kind::Paused, 1),
    ];
    for (kind, count) in plan {
        for _ in 0..count {
            let (url, receiver) = match kind {
                Kind::Refused => (refused_url().await, None),
                _ => {
                    let reply = match kind {
                        Kind::Slow => Reply::Delayed {
                            delay: SLOW_DELAY,
                            status: 200,
                        },
                        Kind::Failing => Reply::Status(500),
                        _ => Reply::Status(200),
                    };
                    let receiver = Receiver::with_reply(reply).await;
                    (receiver.url(), Some(receiver))
                }
            };
            let created = create_endpoint(&socket, &url, kind == Kind::Paused).await;
            kinds.insert(created.endpoint.id.clone(), kind);
            receivers.extend(receiver.map(|receiver| (kind, receiver)));
        }
    }
    let endpoint_count = kinds.len();

    let started = Instant::now();
    let mut ticks = tokio::time::interval(POST_INTERVAL);
    let mut events: u64 = 0;
    let mut posts: u32 = 0;
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < INGEST_FOR {
        ticks.tick().await;
        daemon
            .ingest_accepted(sample_body(EventType::FrustrationDetected))
            .await;
        events += 1;
        posts += 1;
        if posts % POSTS_PER_SAMPLE == 0 {
            samples.push((started.elapsed(), rss_kib(pid)));
        }
    }
    let load_time = started.elapsed();
    let paused_count = events;
    wait_for_pending(&client, paused_count, DRAIN_TIMEOUT).await;
    let drained_after = started.elapsed() - load_time;
    let deliveries = all_deliveries(&client).await;
    let stats = client.stats(None).await.expect("stats");
    let paused_id = kinds
        .iter()
        .find(|(_, kind)| **kind == Kind::Paused)
        .map(|(id, _)| id.clone())
        .expect("a paused endpoint");
    client
        .resume_endpoint(&paused_id)
        .await
        .expect("resume the paused endpoint");
    wait_for_pending(&client, 0, DRAIN_TIMEOUT).await;

    let baseline = samples
        .iter()
        .find(|(at, _)| *at >= WARM_UP)
        .map(|(_, rss)| *rss)
        .expect("a sample after the warm-up");
    let peak = samples.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
    let last = samples.last().map(|(_, rss)| *rss).unwrap_or(0);
    let mut fast_times: Vec<Duration> = deliveries
        .iter()
        .filter(|delivery| kinds.get(&delivery.endpoint_id) == Some(&Kind::Fast))
        .map(|delivery| {
            let millis = delivery
                .updated_at
                .as_millis()
                .saturating_sub(delivery.created_at.as_millis());
            Duration::from_millis(millis)
        })
        .collect();
    fast_times.sort();
    let slowest_fast = fast_times.last().copied().unwrap_or_default();
    println!(
        "soak: {events} events, {} deliveries to {endpoint_count} endpoints in {load_time:?}, \
         drained {drained_after:?} later",
        deliveries.len()
    );
    println!(
        "soak: RSS {} KiB at the first sample, {baseline} KiB after {WARM_UP:?}, peak {peak} KiB, \
         last {last} KiB",
        samples.first().map(|(_, rss)| *rss).unwrap_or(0)
    );
    println!(
        "soak: fast deliveries succeeded after p50 {:?}, p99 {:?}, max {slowest_fast:?}",
        percentile(&fast_times, 0.5),
        percentile(&fast_times, 0.99)
    );

    assert_eq!(deliveries.len() as u64, events * endpoint_count as u64);
    let mut waiting = 0;
    for delivery in &deliveries {
        let kind = kinds[&delivery.endpoint_id];
        let expected = match kind {
            Kind::Fast | Kind::Slow => DeliveryStatus::Succeeded,
            Kind::Failing | Kind::Refused => DeliveryStatus::Failed,
            Kind::Paused => DeliveryStatus::Paused,
        };
        assert_eq!(delivery.status, expected, "{kind:?} {}", delivery.id);
        if delivery.status.is_final() {
            assert_eq!(delivery.next_attempt_at, None, "{}", delivery.id);
        } else {
            assert!(delivery.next_attempt_at.is_some(), "{}", delivery.id);
            waiting += 1;
        }
        if kind == Kind::Failing || kind == Kind::Refused {
            assert_eq!(delivery.attempt_count, 3, "{}", delivery.id);
        }
    }
    assert_eq!(stats.pending, waiting);
    assert_eq!(waiting, paused_count);
    assert!(
        last <= baseline + MAX_RSS_GROWTH_KIB,
        "RSS grew from {baseline} KiB to {last} KiB"
    );
    assert!(
        slowest_fast <= FAST_BOUND,
        "a fast delivery took {slowest_fast:?}"
    );
    for (kind, receiver) in &receivers {
        let expected = match kind {
            Kind::Failing => events as usize * 3,
            _ => events as usize,
        };
        assert_eq!(receiver.count(), expected, "{kind:?} receiver");
    }
}
