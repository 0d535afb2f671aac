//! Standard Webhooks headers, checked with the reference `standardwebhooks` Python package, and
//! the Slack, PagerDuty and Teams body formats.

use std::process::Command;

use belter_common::api::{CreateEndpoint, CreatedEndpoint};
use belter_common::client::ControlClient;
use belter_common::records::{DeliveryFormat, EventSelection};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::receiver::ReceivedRequest;
use belter_tests::wait::WAIT_TIMEOUT;
use belter_tests::{DaemonProcess, Receiver};
use hyper::StatusCode;

/// Verifies a request with `standardwebhooks.Webhook(secret).verify`, with the clock moved by
/// `clock_offset_secs`; returns the script's output on failure.
const VERIFY_SCRIPT: &str = r#"
import json, sys, datetime
from standardwebhooks import webhooks
secret, body_path, headers_path, offset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
class ShiftedClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) + datetime.timedelta(seconds=offset)
webhooks.datetime = ShiftedClock
body = open(body_path, "rb").read()
headers = json.load(open(headers_path))
try:
    webhooks.Webhook(secret).verify(body, headers)
except webhooks.WebhookVerificationError as error:
    print(error)
    sys.exit(1)
"#;

fn verify_with_python(
    request: &ReceivedRequest,
    secret: &str,
    clock_offset_secs: i64,
) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_path = dir.path().join("body");
    let headers_path = dir.path().join("headers.json");
    std::fs::write(&body_path, &request.body).expect("write body");
    let mut headers = serde_json::Map::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = request.header(name).unwrap_or_default();
        headers.insert(name.to_owned(), serde_json::Value::from(value));
    }
    std::fs::write(
        &headers_path,
        serde_json::Value::Object(headers).to_string(),
    )
    .expect("write headers");
    let output = Command::new("python3")
        .args(["-c", VERIFY_SCRIPT, secret])
        .arg(&body_path)
        .arg(&headers_path)
        .arg(clock_offset_secs.to_string())
        .output()
        .expect("run python3; .ci/run installs the standardwebhooks package");
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

async fn endpoint(
    client: &ControlClient,
    receiver: &Receiver,
    format: DeliveryFormat,
    standard_webhooks: bool,
) -> CreatedEndpoint {
    let request = CreateEndpoint {
        url: receiver.url(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: None,
        format,
        routing_key: (format == DeliveryFormat::Pagerduty).then(|| "R0UT1NGKEY".to_owned()),
        standard_webhooks,
    };
    let created = client
        .create_endpoint(&request)
        .await
        .expect("create endpoint");
    receiver.set_secret(&created.secret);
    created
}

#[tokio::test]
async fn standard_webhooks_verify() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = endpoint(&client, &receiver, DeliveryFormat::Raw, true).await;

    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let request = &requests[0];

    assert_eq!(
        request.header("webhook-id"),
        Some(answer.deliveries[0].as_str())
    );
    assert_eq!(
        request.signature_valid,
        Some(true),
        "X-Webhook-Signature unchanged"
    );
    assert_eq!(verify_with_python(request, &created.secret, 0), Ok(()));
    let stale = verify_with_python(request, &created.secret, 600).unwrap_err();
    assert!(stale.contains("too old"), "{stale}");
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(verify_with_python(request, other, 0).is_err());
}

#[tokio::test]
async fn standard_webhooks_verify_across_rotation() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = endpoint(&client, &receiver, DeliveryFormat::Raw, true).await;
    let rotated = client
        .rotate_secret_with_grace(&created.endpoint.id, "1h")
        .await
        .expect("rotate");
    receiver.set_secret(&rotated.secret);

    daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let request = &requests[0];
    let signatures = request.header("webhook-signature").unwrap_or_default();

    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert_eq!(verify_with_python(request, &rotated.secret, 0), Ok(()));
    assert_eq!(verify_with_python(request, &created.secret, 0), Ok(()));
}

#[tokio::test]
async fn plain_endpoints_omit_standard_headers() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    endpoint(&client, &receiver, DeliveryFormat::Raw, false).await;

    daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(requests[0].header("webhook-signature"), None);
    assert_eq!(requests[0].signature_valid, Some(true));
}

#[tokio::test]
async fn slack_format_summarizes() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    endpoint(&client, &receiver, DeliveryFormat::Slack, false).await;

    let answer = daemon
        .ingest_accepted(sample_body(EventType::FrustrationDetected))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let message = requests[0].json();
    let detail = client
        .get_delivery(&answer.deliveries[0])
        .await
        .expect("detail");

    let text = message["text"].as_str().unwrap_or_default();
    assert!(text.contains("conv_84310"), "{text}");
    assert!(text.contains("0.87"), "{text}");
    assert_eq!(message["blocks"][0]["type"], "header");
    assert_eq!(requests[0].signature_valid, Some(true));
    let shown: serde_json::Value =
        serde_json::from_str(detail.payload.get()).expect("payload is JSON");
    assert_eq!(shown, message, "the detail shows the body as sent");
}

#[tokio::test]
async fn pagerduty_format_is_enqueue_body() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    endpoint(&client, &receiver, DeliveryFormat::Pagerduty, false).await;

    daemon
        .ingest_accepted(sample_body(EventType::SmartAlertCreated))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let body = requests[0].json();

    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], "belter:smart_alert.created:alrt_2291");
    assert_eq!(body["payload"]["source"], "belter");
    assert!(body["payload"]["summary"].is_string());
    assert_eq!(body["payload"]["severity"], "error");
    assert_eq!(
        body["payload"]["custom_details"]["event"],
        "smart_alert.created"
    );
    assert_eq!(requests[0].signature_valid, Some(true));
}

#[tokio::test]
async fn pagerduty_needs_routing_key() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    let request = CreateEndpoint {
        url: receiver.url(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: None,
        format: DeliveryFormat::Pagerduty,
        routing_key: None,
        standard_webhooks: false,
    };

    let error = daemon
        .client()
        .create_endpoint(&request)
        .await
        .expect_err("pagerduty without a routing key accepted");

    assert_eq!(error.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert!(error.to_string().contains("routing_key"), "{error}");
}

#[tokio::test]
async fn teams_format_is_message_card() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    endpoint(&client, &receiver, DeliveryFormat::Teams, false).await;

    daemon
        .ingest_accepted(sample_body(EventType::ScoreThresholdBreached))
        .await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let card = requests[0].json();

    assert_eq!(card["@type"], "MessageCard");
    assert_eq!(card["title"], "Score below threshold");
    assert!(card["sections"][0]["facts"].is_array());
    assert_eq!(requests[0].signature_valid, Some(true));
}
