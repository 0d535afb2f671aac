//! `GET /metrics` on the ingest listener: counters after real deliveries, queue gauges while a
//! slow receiver delays the queue, and a body that a strict OpenMetrics parser accepts.

use std::time::Duration;

use belter_common::records::{DeliveryStatus, EventSelection};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::{subscribe, subscribe_with};
use belter_tests::http::{get, HttpResponse};
use belter_tests::wait::{poll_until, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};
use hyper::StatusCode;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// Fetches `/metrics` without a token and parses it as OpenMetrics text.
async fn scrape(daemon: &DaemonProcess) -> Exposition {
    let url = format!("http://{}/metrics", daemon.ingest_addr());
    let response: HttpResponse = get(&url, &[]).await.expect("GET /metrics");
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{}",
        response.error_message()
    );
    let content_type = response
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "content type {content_type:?}"
    );
    let text = String::from_utf8(response.body.to_vec()).expect("metrics are UTF-8");
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|error| panic!("invalid OpenMetrics text ({error:?}):\n{text}"))
}

/// Returns the value of one series of a family, by the value of its only label, or of its unlabelled
/// series when `label` is `None`.
fn value(exposition: &Exposition, family: &str, label: Option<&str>) -> Option<f64> {
    let family = exposition.families.get(family)?;
    let label_values: Vec<String> = label.into_iter().map(str::to_owned).collect();
    let sample = family.get_sample_by_label_values(&label_values)?;
    match &sample.value {
        OpenMetricsValue::Counter(counter) => Some(counter.value.as_f64()),
        OpenMetricsValue::Gauge(number) => Some(number.as_f64()),
        OpenMetricsValue::Histogram(histogram) => histogram.count.map(|count| count as f64),
        other => panic!("{} has an unexpected value {other:?}", family.family_name),
    }
}

#[tokio::test]
async fn metrics_count_deliveries() {
    let options = DaemonOptions {
        retry_schedule: "50ms".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let healthy_receiver = Receiver::start().await;
    let failing_receiver = Receiver::with_reply(Reply::Status(500)).await;
    let healthy = subscribe(&client, &healthy_receiver).await;
    let failing = subscribe(&client, &failing_receiver).await;
    let bodies = [
        sample_body(EventType::CsatReceived),
        sample_body(EventType::CsatReceived),
        sample_body(EventType::FrustrationDetected),
    ];
    for body in bodies {
        let answer = daemon.ingest_accepted(body).await;
        for id in &answer.deliveries {
            let detail = client.get_delivery(id).await.expect("get delivery");
            let expected = if detail.delivery.endpoint_id == healthy.endpoint.id {
                DeliveryStatus::Succeeded
            } else {
                DeliveryStatus::Failed
            };
            wait_for_status(&client, id, expected).await;
        }
    }

    // The queue gauges follow the counters by a moment, so wait for the queue to drain.
    let metrics = poll_until("an empty queue in /metrics", WAIT_TIMEOUT, || async {
        let metrics = scrape(&daemon).await;
        let due = value(&metrics, "belter_due_queue_depth", None);
        let in_flight = value(&metrics, "belter_attempts_in_flight", None);
        if due == Some(0.0) && in_flight == Some(0.0) {
            Ok(metrics)
        } else {
            Err(format!("due {due:?}, in flight {in_flight:?}"))
        }
    })
    .await;

    let events = "belter_events_accepted";
    assert_eq!(value(&metrics, events, Some("csat.received")), Some(2.0));
    assert_eq!(
        value(&metrics, events, Some("frustration.detected")),
        Some(1.0)
    );
    assert_eq!(value(&metrics, events, Some("sentiment.analyzed")), None);
    let deliveries = "belter_deliveries";
    assert_eq!(value(&metrics, deliveries, Some("succeeded")), Some(3.0));
    assert_eq!(value(&metrics, deliveries, Some("failed")), Some(3.0));
    let attempts = "belter_attempts";
    assert_eq!(value(&metrics, attempts, Some("succeeded")), Some(3.0));
    assert_eq!(value(&metrics, attempts, Some("http_status")), Some(6.0));
    let latency = "belter_attempt_duration_seconds";
    assert_eq!(value(&metrics, latency, None), Some(9.0));
    assert_eq!(
        value(&metrics, "belter_due_oldest_age_seconds", None),
        Some(0.0)
    );
    let failures = "belter_endpoint_consecutive_failures";
    assert_eq!(
        value(&metrics, failures, Some(failing.endpoint.id.as_str())),
        Some(6.0)
    );
    assert_eq!(
        value(&metrics, failures, Some(healthy.endpoint.id.as_str())),
        Some(0.0)
    );
}

#[tokio::test]
async fn metrics_show_waiting_queue() {
    let options = DaemonOptions {
        attempt_timeout: "10s".to_owned(),
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), "1".to_owned()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let slow_receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_secs(3),
        status: 200,
    })
    .await;
    subscribe(&daemon.client(), &slow_receiver).await;
    for _ in 0..3 {
        daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
    }

    // One attempt runs in the endpoint's only slot, and the other two wait past their due time,
    // so the oldest due age grows.
    poll_until("a held-back queue in /metrics", WAIT_TIMEOUT, || async {
        let metrics = scrape(&daemon).await;
        let due = value(&metrics, "belter_due_queue_depth", None);
        let in_flight = value(&metrics, "belter_attempts_in_flight", None);
        let age = value(&metrics, "belter_due_oldest_age_seconds", None);
        let held_back = due == Some(2.0) && in_flight == Some(1.0);
        if held_back && age.is_some_and(|age| age >= 0.5) {
            Ok(())
        } else {
            Err(format!("due {due:?}, in flight {in_flight:?}, age {age:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn metrics_count_cancelled_deliveries() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let paused = subscribe_with(&client, &receiver, EventSelection::All, true).await;
    for _ in 0..2 {
        daemon
            .ingest_accepted(sample_body(EventType::CsatReceived))
            .await;
    }
    let queued = scrape(&daemon).await;
    assert_eq!(value(&queued, "belter_due_queue_depth", None), Some(2.0));

    client
        .delete_endpoint(&paused.endpoint.id)
        .await
        .expect("delete the paused endpoint");

    let metrics = scrape(&daemon).await;
    let deliveries = "belter_deliveries";
    assert_eq!(value(&metrics, deliveries, Some("cancelled")), Some(2.0));
    assert_eq!(value(&metrics, "belter_due_queue_depth", None), Some(0.0));
    assert_eq!(receiver.count(), 0, "a paused endpoint received a delivery");
}
