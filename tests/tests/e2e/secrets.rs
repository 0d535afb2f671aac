//! Secrets stay where they belong: endpoint secrets appear only in the responses of creation,
//! rotation and the `secret` route. Neither they nor the ingest token appear in the daemon's
//! output at trace level, the live stream, other API responses or error messages.

use std::sync::{Arc, Mutex, PoisonError};

use belter_common::headers;
use belter_common::records::DeliveryStatus;
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::raw::{create_endpoint, unix_request};
use belter_tests::signature::signature_matches;
use belter_tests::wait::{poll_until, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};
use hyper::Method;

/// Reads the text of a control API response, whatever its status.
async fn control_text(daemon: &DaemonProcess, method: Method, path: &str, body: &str) -> String {
    let response = unix_request(
        &daemon.socket_path(),
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes().to_vec(),
    )
    .await
    .unwrap_or_else(|error| panic!("{path}: {error:#}"));
    String::from_utf8_lossy(&response.body).into_owned()
}

/// A PagerDuty routing key, an integration credential that is sent in the body of every delivery
/// to a `pagerduty` endpoint.
const ROUTING_KEY: &str = "pd-routing-key-7f3a9c41e2b8";

/// Creates a `pagerduty` endpoint with [`ROUTING_KEY`] at the receiver and returns its id.
async fn create_pagerduty_endpoint(daemon: &DaemonProcess, receiver: &Receiver) -> String {
    let body = serde_json::json!({
        "url": receiver.url(),
        "format": "pagerduty",
        "routing_key": ROUTING_KEY,
    })
    .to_string();
    let created = control_text(daemon, Method::POST, "/v1/endpoints", &body).await;
    let created: serde_json::Value = serde_json::from_str(&created).expect("endpoint JSON");
    created["endpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no endpoint id in {created}"))
        .to_owned()
}

/// Posts one event and waits until its delivery to the only endpoint ends with `status`.
async fn deliver_one(daemon: &DaemonProcess, status: DeliveryStatus) -> DeliveryId {
    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let id = answer.deliveries[0].clone();
    wait_for_status(&daemon.client(), &id, status).await;
    id
}

#[tokio::test]
async fn secrets_stay_out_of_output() {
    let options = DaemonOptions {
        log_filter: "trace".to_owned(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let stream_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut stream = client.stream().await.expect("open the stream");
    let collector = {
        let lines = Arc::clone(&stream_lines);
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let line = serde_json::to_string(&event).unwrap_or_default();
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        })
    };
    let receiver = Receiver::start().await;
    let mut secrets = Vec::new();
    let mut other_answers = Vec::new();

    // Create an endpoint and deliver to it with the first secret.
    let created = create_endpoint(&daemon.socket_path(), &receiver.url(), false).await;
    let id = created.endpoint.id.clone();
    secrets.push(created.secret.clone());
    receiver.set_secret(&created.secret);
    deliver_one(&daemon, DeliveryStatus::Succeeded).await;

    // Rotate with a grace period: both secrets sign.
    let graced = client
        .rotate_secret_with_grace(&id, "1h")
        .await
        .expect("rotate with grace");
    secrets.push(graced.secret.clone());
    receiver.set_secret(&graced.secret);
    let during_grace = deliver_one(&daemon, DeliveryStatus::Succeeded).await;

    // Rotate without grace, as after a leak: only the newest secret signs.
    let immediate = client.rotate_secret(&id).await.expect("rotate at once");
    secrets.push(immediate.secret.clone());
    receiver.set_secret(&immediate.secret);
    let after_leak = deliver_one(&daemon, DeliveryStatus::Succeeded).await;
    let shown = client.endpoint_secret(&id).await.expect("secret route");

    // Failures and replays are logged with their errors.
    receiver.set_reply(Reply::Status(500));
    let failed = deliver_one(&daemon, DeliveryStatus::Failed).await;
    receiver.set_reply(Reply::Status(200));
    client.replay(&failed).await.expect("replay");
    wait_for_status(&client, &failed, DeliveryStatus::Succeeded).await;

    // Responses that must not carry a secret, and errors that name the endpoint.
    for path in [
        "/v1/endpoints".to_owned(),
        format!("/v1/endpoints/{id}"),
        "/v1/deliveries?limit=1000".to_owned(),
        format!("/v1/deliveries/{during_grace}"),
        format!("/v1/deliveries/{after_leak}"),
        format!("/v1/deliveries/{failed}"),
        "/v1/stats".to_owned(),
    ] {
        other_answers.push(control_text(&daemon, Method::GET, &path, "").await);
    }
    let rotate = format!("/v1/endpoints/{id}/rotate-secret");
    let endpoint = format!("/v1/endpoints/{id}");
    for (method, path, body) in [
        (Method::POST, rotate.as_str(), r#"{"grace":"forever"}"#),
        (Method::POST, rotate.as_str(), r#"{"grace":"400d"}"#),
        (Method::POST, rotate.as_str(), r#"{"grace":7}"#),
        (
            Method::PATCH,
            endpoint.as_str(),
            r#"{"url":"ftp://x.invalid/"}"#,
        ),
        (
            Method::POST,
            "/v1/endpoints",
            r#"{"url":"http://u:p@x.invalid/"}"#,
        ),
    ] {
        other_answers.push(control_text(&daemon, method, path, body).await);
    }
    let token = daemon.token();
    let wrong_token = daemon
        .ingest_with_headers(
            &[
                ("authorization", "Bearer not-the-token"),
                ("content-type", "application/json"),
            ],
            sample_body(EventType::CsatReceived).as_bytes().to_vec(),
        )
        .await;
    other_answers.push(String::from_utf8_lossy(&wrong_token.body).into_owned());
    poll_until("the stream to show the replay", WAIT_TIMEOUT, || async {
        let lines = stream_lines.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = lines
            .iter()
            .filter(|line| line.contains(failed.as_str()))
            .count();
        if seen >= 4 {
            Ok(())
        } else {
            Err(format!("{seen} lines of {failed}"))
        }
    })
    .await;
    daemon.stop().await;
    collector.abort();
    let stderr = daemon.stderr();
    let stdout = daemon.stdout();
    let stream_text = stream_lines
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .join("\n");
    let requests = receiver.requests();

    assert_eq!(shown.secret, immediate.secret);
    assert!(
        stderr.contains("TRACE"),
        "the daemon did not log at trace level"
    );
    assert!(
        stderr.contains("endpoint secret rotated"),
        "no rotation logged"
    );
    let signatures_of = |delivery: &DeliveryId| -> Vec<String> {
        requests
            .iter()
            .filter(|request| request.header(headers::DELIVERY) == Some(delivery.as_str()))
            .filter_map(|request| request.header(headers::SIGNATURE).map(str::to_owned))
            .collect()
    };
    let graced_header = &signatures_of(&during_grace)[0];
    let body_of = |delivery: &DeliveryId| {
        requests
            .iter()
            .find(|request| request.header(headers::DELIVERY) == Some(delivery.as_str()))
            .map(|request| request.body.clone())
            .expect("request of the delivery")
    };
    let graced_body = body_of(&during_grace);
    assert_eq!(graced_header.split(' ').count(), 2, "{graced_header}");
    assert!(signature_matches(&secrets[0], &graced_body, graced_header));
    assert!(signature_matches(&secrets[1], &graced_body, graced_header));
    let leak_header = &signatures_of(&after_leak)[0];
    let leak_body = body_of(&after_leak);
    assert_eq!(leak_header.split(' ').count(), 1, "{leak_header}");
    assert!(signature_matches(&secrets[2], &leak_body, leak_header));
    assert!(!signature_matches(&secrets[1], &leak_body, leak_header));
    let mut values: Vec<(&str, String)> = Vec::new();
    for secret in &secrets {
        values.push(("secret", secret.clone()));
        // The key without its prefix, in case something logs only the random part.
        let random_part = secret.trim_start_matches("whsec_").to_owned();
        values.push(("secret without prefix", random_part));
    }
    values.push(("ingest token", token));
    let places = [
        ("stderr", stderr.as_str()),
        ("stdout", stdout.as_str()),
        ("stream", stream_text.as_str()),
    ];
    for (what, value) in &values {
        for (place, text) in places {
            assert!(!text.contains(value.as_str()), "{what} in {place}");
        }
        for answer in &other_answers {
            assert!(
                !answer.contains(value.as_str()),
                "{what} in an API response: {answer}"
            );
        }
    }
    println!(
        "searched {} secret values in {} bytes of stderr, {} stream lines and {} responses",
        values.len(),
        stderr.len(),
        stream_text.lines().count(),
        other_answers.len()
    );
}

#[tokio::test]
async fn routing_key_stays_out() {
    let options = DaemonOptions {
        log_filter: "trace".to_owned(),
        ..DaemonOptions::default()
    };
    let mut daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let mut stream = client.stream().await.expect("open the stream");
    let receiver = Receiver::start().await;
    let id = create_pagerduty_endpoint(&daemon, &receiver).await;

    deliver_one(&daemon, DeliveryStatus::Succeeded).await;
    let mut answers = Vec::new();
    for path in ["/v1/endpoints".to_owned(), format!("/v1/endpoints/{id}")] {
        answers.push(control_text(&daemon, Method::GET, &path, "").await);
    }
    let mut stream_text = String::new();
    let collect = async {
        while let Some(Ok(event)) = stream.next().await {
            stream_text.push_str(&serde_json::to_string(&event).unwrap_or_default());
            stream_text.push('\n');
            if event.attempt.is_some() {
                return;
            }
        }
    };
    let finished = tokio::time::timeout(WAIT_TIMEOUT, collect).await;
    daemon.stop().await;
    let stderr = daemon.stderr();
    let sent = receiver.requests();

    assert!(finished.is_ok(), "no attempt on the stream: {stream_text}");
    assert!(
        String::from_utf8_lossy(&sent[0].body).contains(ROUTING_KEY),
        "the PagerDuty body lacks the routing key"
    );
    assert!(
        stderr.contains("TRACE"),
        "the daemon did not log at trace level"
    );
    assert!(!stderr.contains(ROUTING_KEY), "routing key in stderr");
    assert!(
        !daemon.stdout().contains(ROUTING_KEY),
        "routing key in stdout"
    );
    assert!(
        !stream_text.contains(ROUTING_KEY),
        "routing key in the stream"
    );
    for answer in &answers {
        assert!(!answer.contains(ROUTING_KEY), "routing key in {answer}");
    }
}

#[tokio::test]
async fn routing_key_hidden_in_detail() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    create_pagerduty_endpoint(&daemon, &receiver).await;

    let delivery = deliver_one(&daemon, DeliveryStatus::Succeeded).await;
    let path = format!("/v1/deliveries/{delivery}");
    let detail = control_text(&daemon, Method::GET, &path, "").await;

    assert!(detail.contains(delivery.as_str()), "{detail}");
    assert!(!detail.contains(ROUTING_KEY), "routing key in {detail}");
}
