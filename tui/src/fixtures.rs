//! Deterministic records for unit and render tests.

use belter_common::records::{
    Attempt, Delivery, DeliveryDetail, DeliveryStatus, Endpoint, FailureKind, Health, Stats,
    StreamEvent, StreamKind,
};
use belter_common::rules::{RuleScope, ThresholdRule};
use belter_common::{DeliveryId, EndpointId, EventType, Timestamp};

/// The clock every test starts from: 2026-12-03 14:32:08 UTC.
pub(crate) const NOW_MILLIS: u64 = 1_796_308_328_000;

/// Returns the test clock.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MILLIS)
}

fn ulid_text(millis: u64, serial: u64) -> String {
    ulid::Ulid::from_parts(millis, u128::from(serial)).to_string()
}

/// Builds a delivery id created at `millis`, unique per `serial`.
pub(crate) fn delivery_id(millis: u64, serial: u64) -> DeliveryId {
    DeliveryId::parse(&format!("del_{}", ulid_text(millis, serial))).expect("valid id")
}

/// Builds an endpoint id, unique per `serial`.
pub(crate) fn endpoint_id(serial: u64) -> EndpointId {
    EndpointId::parse(&format!(
        "ep_{}",
        ulid_text(NOW_MILLIS - 86_400_000, serial)
    ))
    .expect("valid id")
}

/// Builds succeeded delivery number `serial`, created `serial` seconds before the test clock, so
/// higher serials are older. Records are built from JSON, as the daemon sends them, so fields
/// that the contract adds with a default do not break the tests.
pub(crate) fn delivery(serial: u64) -> Delivery {
    let created = now().minus_millis(serial * 1_000);
    let target_url = if serial % 2 == 0 {
        "https://hooks.example.com/integrations/crm/receive"
    } else {
        "http://127.0.0.1:9000/alerts"
    };
    let json = serde_json::json!({
        "id": delivery_id(created.as_millis(), serial),
        "event_id": format!("evt_{}", ulid_text(created.as_millis(), serial)),
        "event_type": EventType::ALL[(serial % 7) as usize],
        "endpoint_id": endpoint_id(serial % 2),
        "target_url": target_url,
        "status": "succeeded",
        "attempt_count": 1,
        "created_at": created,
        "updated_at": created.plus_millis(120),
        "next_attempt_at": null,
        "last_status_code": 200,
        "last_failure": null,
        "last_error": null,
        "last_latency_ms": 120,
    });
    serde_json::from_value(json).expect("valid delivery")
}

/// Builds a delivery that failed with HTTP 500 after three attempts.
pub(crate) fn failed_delivery(serial: u64) -> Delivery {
    Delivery {
        status: DeliveryStatus::Failed,
        attempt_count: 3,
        last_status_code: Some(500),
        last_failure: Some(FailureKind::HttpStatus),
        last_error: Some("receiver returned 500 Internal Server Error".to_owned()),
        last_latency_ms: Some(35),
        ..delivery(serial)
    }
}

/// Builds a delivery whose latest attempt timed out and that waits for its retry.
pub(crate) fn retrying_delivery(serial: u64) -> Delivery {
    Delivery {
        status: DeliveryStatus::Pending,
        attempt_count: 2,
        last_status_code: None,
        last_failure: Some(FailureKind::Timeout),
        last_error: Some("no response within 3s".to_owned()),
        last_latency_ms: Some(3_000),
        next_attempt_at: Some(now().plus_millis(5_000)),
        ..delivery(serial)
    }
}

/// Builds a failed delivery in full: payload, signed headers and one attempt with a response body.
pub(crate) fn sample_detail() -> DeliveryDetail {
    let delivery = failed_delivery(2);
    let json = serde_json::json!({
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "target_url": delivery.target_url,
        "status": "failed",
        "attempt_count": 1,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "next_attempt_at": null,
        "last_status_code": 500,
        "last_failure": "http_status",
        "last_error": "receiver returned 500",
        "last_latency_ms": 35,
        "payload": {"event": "csat.received", "data": {"score": 2}},
        "request_headers": [
            {"name": "x-webhook-signature", "value": format!("v1={}", "ab".repeat(32))},
            {"name": "x-belter-event", "value": "csat.received"}
        ],
        "attempts": [{
            "number": 1, "trigger": "first", "started_at": delivery.created_at,
            "latency_ms": 35, "succeeded": false, "status_code": 500,
            "failure": "http_status", "error": "receiver returned 500",
            "response_body": "{\"error\":\"boom\"}\nsecond line", "signature": "v1=ab"
        }]
    });
    serde_json::from_value(json).expect("valid detail")
}

/// Builds an endpoint with `consecutive` failures in a row, seven times as many in 24 h, and a
/// last success a minute ago when it has no failures in a row. Endpoint 1 has a payload filter,
/// the Slack format with Standard Webhooks headers, and, when paused, belterd's pause reason.
pub(crate) fn endpoint(serial: u64, url: &str, paused: bool, consecutive: u32) -> Endpoint {
    let json = serde_json::json!({
        "id": endpoint_id(serial),
        "url": url,
        "event_types": if serial == 0 { vec!["*"] } else { vec!["csat.received", "frustration.detected"] },
        "description": "",
        "state": if paused { "paused" } else { "active" },
        "created_at": now(),
        "updated_at": now(),
        "consecutive_failures": consecutive,
        "recent_failures": u64::from(consecutive) * 7,
        "last_success_at": (consecutive == 0).then(|| now().minus_millis(65_000)),
        "filter": (serial == 1).then_some("data.brand == \"northwind\" && data.level >= 0.8"),
        "paused_reason": (paused && serial == 1)
            .then_some("paused by belterd: every attempt failed since 2026-11-30T09:12:44.000Z"),
        "format": if serial == 1 { "slack" } else { "raw" },
        "standard_webhooks": serial == 1,
    });
    serde_json::from_value(json).expect("valid endpoint")
}

/// Builds 24 h totals: 3,892 succeeded and 14 failed attempts, 3 pending deliveries.
pub(crate) fn stats() -> Stats {
    let json = serde_json::json!({
        "window_secs": 86_400,
        "since": now().minus_millis(86_400_000),
        "ok": 3_892,
        "failed": 14,
        "gave_up": 2,
        "pending": 3,
        "endpoints": 2,
    });
    serde_json::from_value(json).expect("valid stats")
}

/// Builds the health of a daemon that started 2 h 13 m before the test clock.
pub(crate) fn health() -> Health {
    let json = serde_json::json!({
        "status": "ok",
        "version": "0.1.0",
        "started_at": now().minus_millis(7_980_000),
        "ingest_addr": "127.0.0.1:7700",
        "data_dir": "/var/lib/belter",
    });
    serde_json::from_value(json).expect("valid health")
}

/// Builds a first attempt that ended with `status_code`.
pub(crate) fn attempt(status_code: u16) -> Attempt {
    let json = serde_json::json!({
        "number": 1,
        "trigger": "first",
        "started_at": now(),
        "latency_ms": 20,
        "succeeded": (200..300).contains(&status_code),
        "status_code": status_code,
        "failure": if (200..300).contains(&status_code) { None } else { Some("http_status") },
        "error": null,
        "response_body": null,
        "signature": "v1=00",
    });
    serde_json::from_value(json).expect("valid attempt")
}

/// Builds a stream line.
pub(crate) fn stream_event(
    kind: StreamKind,
    delivery: Option<Delivery>,
    attempt: Option<Attempt>,
) -> StreamEvent {
    let json = serde_json::json!({
        "kind": kind,
        "delivery": delivery,
        "attempt": attempt,
    });
    serde_json::from_value(json).expect("valid stream event")
}

/// Builds threshold rule number `serial`, created `serial` hours before the test clock.
pub(crate) fn rule(
    serial: u64,
    scope: RuleScope,
    scope_id: Option<&str>,
    criterion: Option<&str>,
    min_score: f64,
) -> ThresholdRule {
    let created = now().minus_millis(serial * 3_600_000);
    let json = serde_json::json!({
        "id": format!("rule_{}", ulid_text(created.as_millis(), serial)),
        "scope": scope,
        "scope_id": scope_id,
        "criterion": criterion,
        "min_score": min_score,
        "created_at": created,
    });
    serde_json::from_value(json).expect("valid rule")
}

/// Builds the rules of the render tests: one of each scope, overall and per criterion.
pub(crate) fn rules() -> Vec<ThresholdRule> {
    vec![
        rule(1, RuleScope::Global, None, None, 60.0),
        rule(
            2,
            RuleScope::Brand,
            Some("northwind"),
            Some("disclosure"),
            70.0,
        ),
        rule(
            3,
            RuleScope::Team,
            Some("billing-emea"),
            Some("greeting"),
            80.0,
        ),
        rule(4, RuleScope::Agent, Some("agent_1187"), None, 72.5),
    ]
}
