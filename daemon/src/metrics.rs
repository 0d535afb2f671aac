//! Prometheus metrics: the registry, the counters and histogram that ingest and the scheduler
//! update as they work, and the gauges that a scrape computes from the daemon's state.
//!
//! `GET /metrics` on the ingest listener serves them in the OpenMetrics text format, without a
//! token. Every name starts with `belter_`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use belter_common::records::{DeliveryStatus, FailureKind};
use belter_common::{EventType, Timestamp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::state::AppState;
use crate::store::{AttemptRecord, Completion};

/// Content type of a scrape response, as the OpenMetrics 1.0 text format defines it.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the attempt latency buckets, in seconds. They reach past the default attempt
/// timeout of 15 s, so a timed-out attempt still falls in a finite bucket.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint_id: String,
}

/// The values that a scrape reads from the daemon's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct QueueSnapshot {
    /// Deliveries queued for an attempt, paused endpoints included, attempts in flight excluded.
    pub(crate) due: i64,
    /// Attempts running now.
    pub(crate) in_flight: i64,
    /// Time since the oldest overdue entry of an active endpoint became due, in seconds, or 0
    /// when nothing is overdue.
    pub(crate) oldest_due_age_seconds: f64,
    /// Consecutive failed attempts of every endpoint, by endpoint id.
    pub(crate) consecutive_failures: Vec<(String, u32)>,
}

/// The daemon's metrics. Counters and the histogram change as work happens, and the gauges are
/// set from a [`QueueSnapshot`] right before each scrape is encoded.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// The registry, locked for a whole scrape so two scrapes never interleave their gauge
    /// updates.
    registry: Mutex<Registry>,
    events_accepted: Family<EventLabels, Counter>,
    deliveries: Family<OutcomeLabels, Counter>,
    attempts: Family<ResultLabels, Counter>,
    attempt_duration: Histogram,
    due_deliveries: Gauge,
    in_flight: Gauge,
    oldest_due_age: Gauge<f64, AtomicU64>,
    consecutive_failures: Family<EndpointLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Builds the registry with every metric at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("belter");
        let events_accepted = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_accepted",
            "Events stored at ingest, derived events included, by event type",
            events_accepted.clone(),
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Deliveries that reached a final status, by outcome: succeeded, failed or cancelled",
            deliveries.clone(),
        );
        let attempts = Family::<ResultLabels, Counter>::default();
        registry.register(
            "attempts",
            "Delivery attempts that ended, by result: succeeded, or the failure kind such as http_status or timeout",
            attempts.clone(),
        );
        let attempt_duration = Histogram::new(LATENCY_BUCKETS_SECONDS);
        // The name carries the unit. A UNIT line is left out because some OpenMetrics parsers
        // reject it on histograms.
        registry.register(
            "attempt_duration_seconds",
            "Time from the start of an attempt's request to the end of its response excerpt",
            attempt_duration.clone(),
        );
        let due_deliveries = Gauge::default();
        registry.register(
            "due_queue_depth",
            "Deliveries queued for an attempt, paused endpoints included",
            due_deliveries.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "attempts_in_flight",
            "Delivery attempts running now",
            in_flight.clone(),
        );
        let oldest_due_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "due_oldest_age",
            "Time since the oldest overdue delivery of an active endpoint became due, or 0 when none is overdue",
            Unit::Seconds,
            oldest_due_age.clone(),
        );
        let consecutive_failures = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "endpoint_consecutive_failures",
            "Failed attempts in a row since the endpoint's last success, kept across restarts",
            consecutive_failures.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            events_accepted,
            deliveries,
            attempts,
            attempt_duration,
            due_deliveries,
            in_flight,
            oldest_due_age,
            consecutive_failures,
        }
    }

    /// Counts one event stored at ingest.
    pub(crate) fn record_event(&self, kind: EventType) {
        let labels = EventLabels {
            event_type: kind.as_str(),
        };
        self.events_accepted.get_or_create(&labels).inc();
    }

    /// Counts one finished attempt, observes its latency, and counts the delivery's final
    /// outcome when the attempt ended it.
    pub(crate) fn record_attempt(&self, attempt: &AttemptRecord, completion: Completion) {
        let result = match attempt.failure {
            _ if attempt.succeeded => "succeeded",
            Some(kind) => failure_label(kind),
            None => "failed",
        };
        self.attempts.get_or_create(&ResultLabels { result }).inc();
        self.attempt_duration
            .observe(attempt.latency_ms as f64 / 1_000.0);
        if let Completion::Final(status) = completion {
            let labels = OutcomeLabels {
                outcome: final_label(status),
            };
            self.deliveries.get_or_create(&labels).inc();
        }
    }

    /// Counts deliveries cancelled without an attempt, because their endpoint was deleted.
    pub(crate) fn record_cancelled(&self, count: usize) {
        let labels = OutcomeLabels {
            outcome: final_label(DeliveryStatus::Cancelled),
        };
        self.deliveries
            .get_or_create(&labels)
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Sets the gauges from `snapshot` and encodes every metric in the OpenMetrics text format.
    pub(crate) fn encode(&self, snapshot: &QueueSnapshot) -> Result<String, std::fmt::Error> {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.due_deliveries.set(snapshot.due);
        self.in_flight.set(snapshot.in_flight);
        self.oldest_due_age.set(snapshot.oldest_due_age_seconds);
        // Cleared first so that deleted endpoints drop out of the scrape.
        self.consecutive_failures.clear();
        for (endpoint_id, failures) in &snapshot.consecutive_failures {
            let labels = EndpointLabels {
                endpoint_id: endpoint_id.clone(),
            };
            self.consecutive_failures
                .get_or_create(&labels)
                .set(i64::from(*failures));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// The wire name of a failure kind, as the API writes it.
fn failure_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::HttpStatus => "http_status",
        FailureKind::Timeout => "timeout",
        FailureKind::ConnectionRefused => "connection_refused",
        FailureKind::Dns => "dns",
        FailureKind::Tls => "tls",
        FailureKind::Reset => "reset",
        FailureKind::Connect => "connect",
        FailureKind::BlockedByPolicy => "blocked_by_policy",
        FailureKind::Other => "other",
    }
}

/// The outcome label of a final status. Only succeeded, failed and cancelled are final, so the
/// other statuses never reach here.
fn final_label(status: DeliveryStatus) -> &'static str {
    status.as_str()
}

/// Reads the scrape-time values: the queue counts from memory, and the first due entry of each
/// active endpoint from the due index, one key per endpoint, or from the ready lanes for new
/// deliveries whose due entry is not written yet.
pub(crate) fn snapshot(state: &AppState, now_ms: u64) -> QueueSnapshot {
    let endpoints = state.endpoints.all();
    let in_flight: usize = endpoints
        .iter()
        .map(|entry| entry.health.in_flight.load(Ordering::Relaxed))
        .sum();
    let in_flight = i64::try_from(in_flight).unwrap_or(i64::MAX);
    let waiting = i64::try_from(state.waiting()).unwrap_or(i64::MAX);
    let unindexed = state.ready.earliest_unindexed();
    let mut oldest_due: Option<u64> = None;
    for entry in endpoints.iter().filter(|entry| !entry.record.paused) {
        let indexed = match state.store.next_due(&entry.id) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, endpoint_id = %entry.id, "cannot read the due index for metrics");
                None
            }
        };
        let earliest = match (indexed, unindexed.get(&entry.id)) {
            (Some(due), Some(&other)) => Some(due.min(other)),
            (due, other) => due.or(other.copied()),
        };
        if let Some(due) = earliest.filter(|due| *due <= now_ms) {
            oldest_due = Some(oldest_due.map_or(due, |oldest| oldest.min(due)));
        }
    }
    QueueSnapshot {
        due: waiting.saturating_sub(in_flight).max(0),
        in_flight,
        oldest_due_age_seconds: oldest_due
            .map(|due| (now_ms - due) as f64 / 1_000.0)
            .unwrap_or(0.0),
        consecutive_failures: endpoints
            .iter()
            .map(|entry| (entry.id.to_string(), entry.health.consecutive_failures()))
            .collect(),
    }
}

/// `GET /metrics`: every metric in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "daemon",
    summary = "Prometheus metrics in the OpenMetrics text format, on the ingest listener only",
    responses((
        status = 200,
        description = "Every metric, ending with # EOF",
        body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    ))
)]
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let snapshot = snapshot(&state, Timestamp::now().as_millis());
    match state.metrics.encode(&snapshot) {
        Ok(text) => {
            let mut response = text.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use belter_common::records::AttemptTrigger;

    fn attempt(succeeded: bool, failure: Option<FailureKind>, latency_ms: u64) -> AttemptRecord {
        AttemptRecord {
            number: 1,
            trigger: AttemptTrigger::First,
            started_at: 0,
            latency_ms,
            succeeded,
            status_code: None,
            failure,
            error: None,
            response_body: None,
            signature: String::new(),
            standard_signature: None,
        }
    }

    fn line_value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    #[test]
    fn counters_follow_records() {
        let metrics = Metrics::new();
        metrics.record_event(EventType::CsatReceived);
        metrics.record_event(EventType::CsatReceived);
        metrics.record_attempt(
            &attempt(false, Some(FailureKind::Timeout), 1_500),
            Completion::RetryAt(10),
        );
        metrics.record_attempt(
            &attempt(true, None, 20),
            Completion::Final(DeliveryStatus::Succeeded),
        );
        metrics.record_cancelled(2);

        let text = metrics.encode(&QueueSnapshot::default()).unwrap();

        let events = r#"belter_events_accepted_total{event_type="csat.received"}"#;
        assert_eq!(line_value(&text, events).as_deref(), Some("2"));
        let timeouts = r#"belter_attempts_total{result="timeout"}"#;
        assert_eq!(line_value(&text, timeouts).as_deref(), Some("1"));
        let delivered = r#"belter_deliveries_total{outcome="succeeded"}"#;
        assert_eq!(line_value(&text, delivered).as_deref(), Some("1"));
        let cancelled = r#"belter_deliveries_total{outcome="cancelled"}"#;
        assert_eq!(line_value(&text, cancelled).as_deref(), Some("2"));
        let failed = r#"belter_deliveries_total{outcome="failed"}"#;
        assert_eq!(line_value(&text, failed), None);
        let count = "belter_attempt_duration_seconds_count";
        assert_eq!(line_value(&text, count).as_deref(), Some("2"));
        let le_one = r#"belter_attempt_duration_seconds_bucket{le="1.0"}"#;
        assert_eq!(line_value(&text, le_one).as_deref(), Some("1"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn gauges_follow_latest_snapshot() {
        let metrics = Metrics::new();
        let first = QueueSnapshot {
            due: 3,
            in_flight: 1,
            oldest_due_age_seconds: 2.5,
            consecutive_failures: vec![("ep_a".to_owned(), 4), ("ep_b".to_owned(), 0)],
        };
        let text = metrics.encode(&first).unwrap();
        assert_eq!(
            line_value(&text, "belter_due_queue_depth").as_deref(),
            Some("3")
        );
        assert_eq!(
            line_value(&text, "belter_due_oldest_age_seconds").as_deref(),
            Some("2.5")
        );
        let failures = r#"belter_endpoint_consecutive_failures{endpoint_id="ep_a"}"#;
        assert_eq!(line_value(&text, failures).as_deref(), Some("4"));

        let second = QueueSnapshot {
            consecutive_failures: vec![("ep_b".to_owned(), 1)],
            ..QueueSnapshot::default()
        };
        let text = metrics.encode(&second).unwrap();
        assert_eq!(line_value(&text, failures), None, "deleted endpoint stays");
        assert_eq!(
            line_value(&text, "belter_attempts_in_flight").as_deref(),
            Some("0")
        );
    }
}
