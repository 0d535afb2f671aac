//! The ingest API: accepted events, rejected requests and idempotency.

use belter_common::api::{DeliveryQuery, IngestResponse};
use belter_common::records::EventSelection;
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::{subscribe, subscribe_with};
use belter_tests::raw::tcp_exchange;
use belter_tests::wait::WAIT_TIMEOUT;
use belter_tests::{DaemonOptions, DaemonProcess, Receiver};
use hyper::StatusCode;
use serde_json::{json, Value};

/// Parses the csat.received sample as a JSON value.
fn csat_sample() -> Value {
    serde_json::from_str(sample_body(EventType::CsatReceived)).expect("sample is JSON")
}

/// Counts every delivery the daemon stores, in one page of up to 1,000.
async fn delivery_count(daemon: &DaemonProcess) -> usize {
    let query = DeliveryQuery {
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    let page = daemon
        .client()
        .list_deliveries(&query)
        .await
        .expect("list deliveries");
    page.deliveries.len()
}

#[tokio::test]
async fn ingest_returns_ids() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;

    let response = daemon.ingest(sample_body(EventType::CsatReceived)).await;

    assert_eq!(response.status, StatusCode::ACCEPTED);
    let answer: IngestResponse = serde_json::from_slice(&response.body).expect("typed ids");
    assert_eq!(answer.deliveries.len(), 1);
}

#[tokio::test]
async fn ingest_selects_subscribers() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let every = subscribe(&client, &receiver).await;
    let csat_only = subscribe_with(
        &client,
        &receiver,
        EventSelection::Only(vec![EventType::CsatReceived]),
        false,
    )
    .await;
    subscribe_with(
        &client,
        &receiver,
        EventSelection::Only(vec![EventType::FrustrationDetected]),
        false,
    )
    .await;

    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;

    assert_eq!(answer.deliveries.len(), 2);
    let mut endpoints = Vec::new();
    for id in &answer.deliveries {
        let detail = client.get_delivery(id).await.expect("get delivery");
        endpoints.push(detail.delivery.endpoint_id);
    }
    assert!(endpoints.contains(&every.endpoint.id));
    assert!(endpoints.contains(&csat_only.endpoint.id));
}

#[tokio::test]
async fn ingest_on_socket_needs_no_token() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let body = sample_body(EventType::CsatReceived).as_bytes().to_vec();

    let answer = daemon
        .client()
        .post_event(body, None)
        .await
        .expect("ingest on the control socket");

    assert_eq!(answer.deliveries.len(), 1);
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
}

/// One schema violation: the field the error must name, the event type, and the change that
/// breaks the sample.
type SchemaCase = (&'static str, EventType, fn(&mut Value));

#[tokio::test]
async fn ingest_rejects_schema_violations() {
    let cases: [SchemaCase; 16] = [
        ("data.score", EventType::EvaluationCompleted, |data| {
            data["score"] = json!(101)
        }),
        ("data.score", EventType::EvaluationCompleted, |data| {
            data["score"] = json!("high")
        }),
        (
            "data.rubric_version",
            EventType::EvaluationCompleted,
            |data| data["rubric_version"] = json!(0),
        ),
        (
            "data.conversation_id",
            EventType::EvaluationCompleted,
            |data| {
                data.as_object_mut()
                    .map(|object| object.remove("conversation_id"));
            },
        ),
        (
            "data.criteria[1].score",
            EventType::EvaluationCompleted,
            |data| data["criteria"][1]["score"] = json!(-3),
        ),
        ("data.source", EventType::ConversationImported, |data| {
            data["source"] = json!("ftp")
        }),
        (
            "data.imported_at",
            EventType::ConversationImported,
            |data| data["imported_at"] = json!("yesterday"),
        ),
        ("data.scope", EventType::ScoreThresholdBreached, |data| {
            data["scope"] = json!("planet")
        }),
        (
            "data.criterion",
            EventType::ScoreThresholdBreached,
            |data| data["criterion"] = json!(5),
        ),
        ("data.rating", EventType::CsatReceived, |data| {
            data["rating"] = json!(6)
        }),
        ("data.via", EventType::CsatReceived, |data| {
            data["via"] = json!("fax")
        }),
        ("data.start", EventType::SentimentAnalyzed, |data| {
            data["start"] = json!(-1.5)
        }),
        (
            "data.inflection_points",
            EventType::SentimentAnalyzed,
            |data| data["inflection_points"] = json!("none"),
        ),
        (
            "data.conversation_ids[0]",
            EventType::SmartAlertCreated,
            |data| data["conversation_ids"] = json!([""]),
        ),
        ("data.level", EventType::FrustrationDetected, |data| {
            data["level"] = json!(1.5)
        }),
        ("data", EventType::FrustrationDetected, |data| {
            *data = json!([1, 2])
        }),
    ];
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;

    for (field, kind, change) in cases {
        let mut body: Value = serde_json::from_str(sample_body(kind)).expect("sample is JSON");
        change(&mut body["data"]);
        let response = daemon.ingest(&body.to_string()).await;
        let message = response.error_message();

        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} of {kind}: {message}"
        );
        assert!(
            message.contains(field),
            "{kind}: error does not name {field}: {message}"
        );
    }
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn ingest_rejects_bad_envelopes() {
    let cases = [
        (
            "unknown type",
            json!({"event": "csat.recieved", "data": {}}),
            "csat.recieved",
        ),
        (
            "missing event",
            json!({"data": csat_sample()["data"]}),
            "event",
        ),
        ("missing data", json!({"event": "csat.received"}), "data"),
        (
            "event not a string",
            json!({"event": 7, "data": csat_sample()["data"]}),
            "event",
        ),
        (
            "own event id",
            json!({"event": "csat.received", "id": "evt_mine", "data": csat_sample()["data"]}),
            "unknown field \"id\": an event has only \"event\" and \"data\"",
        ),
    ];
    let daemon = DaemonProcess::start().await;

    for (label, body, needle) in cases {
        let response = daemon.ingest(&body.to_string()).await;
        let message = response.error_message();

        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {message}"
        );
        assert!(message.contains(needle), "{label}: {message}");
    }
}

#[tokio::test]
async fn ingest_rejects_repeated_event_key() {
    let daemon = DaemonProcess::start().await;
    let data = csat_sample()["data"].to_string();
    let body =
        format!(r#"{{"event": "csat.received", "event": "frustration.detected", "data": {data}}}"#);

    let response = daemon.ingest(&body).await;

    let message = response.error_message();
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{message}"
    );
    assert!(message.contains("duplicate field `event`"), "{message}");
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn ingest_rejects_repeated_data_keys() {
    let cases = [
        (
            "last value valid",
            r#"{"event":"csat.received","data":{"conversation_id":"c","rating":99,"rating":1,"via":"api"}}"#,
            "data.rating appears more than once: send each key once",
        ),
        (
            "first value valid",
            r#"{"event":"csat.received","data":{"conversation_id":"c","rating":1,"rating":99,"via":"api"}}"#,
            "data.rating appears more than once: send each key once",
        ),
        (
            "in a schema object",
            r#"{"event":"evaluation.completed","data":{"conversation_id":"c","score":90,"rubric_version":1,"criteria":[{"criterion":"a","score":1},{"criterion":"b","score":2,"score":200}]}}"#,
            "data.criteria[1].score appears more than once: send each key once",
        ),
        (
            "in an extra field",
            r#"{"event":"csat.received","data":{"conversation_id":"c","rating":4,"via":"api","labels":{"tier":"gold","tier":"free"}}}"#,
            "data.labels.tier appears more than once: send each key once",
        ),
    ];
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;

    for (label, body, expected) in cases {
        let response = daemon.ingest(body).await;

        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            response.error_message()
        );
        assert_eq!(response.error_message(), expected, "{label}");
    }
    assert_eq!(delivery_count(&daemon).await, 0);
    receiver
        .expect_no_more_than(0, std::time::Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn ingest_rejects_bad_tokens() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let basic = format!("Basic {}", daemon.token());
    let truncated = format!("Bearer {}", &daemon.token()[1..]);
    let cases: [(&str, Option<&str>); 5] = [
        ("missing header", None),
        ("wrong token", Some("Bearer e2e-wrong-token-000000000000")),
        ("empty token", Some("Bearer ")),
        ("basic scheme", Some(&basic)),
        ("truncated token", Some(&truncated)),
    ];

    for (label, authorization) in cases {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        let body = sample_body(EventType::CsatReceived).as_bytes().to_vec();

        let response = daemon.ingest_with_headers(&headers, body).await;

        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{label}");
    }
    assert_eq!(delivery_count(&daemon).await, 0);
}

#[tokio::test]
async fn ingest_rejects_invalid_json() {
    let daemon = DaemonProcess::start().await;

    let response = daemon
        .ingest(r#"{"event": "csat.received", "data": "#)
        .await;

    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ingest_rejects_large_body() {
    let options = DaemonOptions {
        max_body_bytes: Some(1_024),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let mut body = csat_sample();
    body["data"]["comment"] = json!("x".repeat(2_000));

    let large = daemon.ingest(&body.to_string()).await;
    let small = daemon.ingest(sample_body(EventType::CsatReceived)).await;

    assert_eq!(large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(small.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn ingest_checks_content_type() {
    let daemon = DaemonProcess::start().await;
    let authorization = format!("Bearer {}", daemon.token());
    let cases = [
        (Some("text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            Some("application/x-www-form-urlencoded"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            Some("application/json; charset=utf-8"),
            StatusCode::ACCEPTED,
        ),
    ];

    for (content_type, expected) in cases {
        let mut headers = vec![("authorization", authorization.as_str())];
        if let Some(value) = content_type {
            headers.push(("content-type", value));
        }
        let body = sample_body(EventType::CsatReceived).as_bytes().to_vec();

        let response = daemon.ingest_with_headers(&headers, body).await;

        assert_eq!(response.status, expected, "Content-Type {content_type:?}");
    }
}

#[tokio::test]
async fn idempotency_key_repeats_answer() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let body = sample_body(EventType::CsatReceived);

    let first = daemon.ingest_with_key(body, "order-84291").await;
    receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let repeat = daemon.ingest_with_key(body, "order-84291").await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(repeat.status, StatusCode::ACCEPTED);
    assert_eq!(repeat.json(), first.json());
    assert_eq!(delivery_count(&daemon).await, 1);
    receiver
        .expect_no_more_than(1, std::time::Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn idempotency_key_other_is_new() {
    let daemon = DaemonProcess::start().await;
    let receiver = Receiver::start().await;
    subscribe(&daemon.client(), &receiver).await;
    let body = sample_body(EventType::CsatReceived);

    let first = daemon.ingest_with_key(body, "order-1").await;
    let second = daemon.ingest_with_key(body, "order-2").await;

    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_ne!(second.json()["event_id"], first.json()["event_id"]);
    assert_eq!(delivery_count(&daemon).await, 2);
}

#[tokio::test]
async fn idempotency_key_other_body_rejected() {
    let daemon = DaemonProcess::start().await;

    let first = daemon
        .ingest_with_key(sample_body(EventType::CsatReceived), "order-7")
        .await;
    let other = daemon
        .ingest_with_key(sample_body(EventType::FrustrationDetected), "order-7")
        .await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        other.error_message().contains("order-7"),
        "{}",
        other.error_message()
    );
    assert_eq!(delivery_count(&daemon).await, 0, "no endpoint, no delivery");
}

async fn status_with_token(daemon: &DaemonProcess, token: &str) -> StatusCode {
    let authorization = format!("Bearer {token}");
    daemon
        .ingest_with_headers(
            &[
                ("content-type", "application/json"),
                ("authorization", authorization.as_str()),
            ],
            sample_body(EventType::CsatReceived).as_bytes().to_vec(),
        )
        .await
        .status
}

#[tokio::test]
async fn token_rotates_with_grace() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let first = daemon.token();

    let graced = client
        .rotate_ingest_token(Some("1h"))
        .await
        .expect("rotate with grace");
    let second = daemon.token();
    let old_during_grace = status_with_token(&daemon, &first).await;
    let new_token = status_with_token(&daemon, &second).await;
    let abrupt = client.rotate_ingest_token(None).await.expect("rotate");
    let retired = status_with_token(&daemon, &second).await;
    let third = status_with_token(&daemon, &abrupt.token).await;

    assert_eq!(graced.token, second, "the token file holds the new token");
    assert_ne!(first, second);
    assert!(graced.previous_valid_until.is_some());
    assert_eq!(old_during_grace, StatusCode::ACCEPTED);
    assert_eq!(new_token, StatusCode::ACCEPTED);
    assert_eq!(retired, StatusCode::UNAUTHORIZED);
    assert_eq!(third, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn token_grace_survives_restart() {
    let mut daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let first = daemon.token();
    let graced = client
        .rotate_ingest_token(Some("1h"))
        .await
        .expect("rotate with grace");

    let first_stop = daemon.stop().await;
    daemon.start_again().await;
    let old_after_restart = status_with_token(&daemon, &first).await;
    let new_after_restart = status_with_token(&daemon, &graced.token).await;
    let wrong_after_restart = status_with_token(&daemon, "e2e-wrong-token-0123456789").await;
    let abrupt = daemon
        .client()
        .rotate_ingest_token(None)
        .await
        .expect("rotate without grace");
    let second_stop = daemon.stop().await;
    daemon.start_again().await;
    let first_retired = status_with_token(&daemon, &first).await;
    let graced_retired = status_with_token(&daemon, &graced.token).await;
    let newest = status_with_token(&daemon, &abrupt.token).await;

    assert!(first_stop.success(), "belterd exited with {first_stop}");
    assert!(second_stop.success(), "belterd exited with {second_stop}");
    assert!(graced.previous_valid_until.is_some(), "{graced:?}");
    assert_eq!(
        old_after_restart,
        StatusCode::ACCEPTED,
        "old token in grace"
    );
    assert_eq!(new_after_restart, StatusCode::ACCEPTED, "new token");
    assert_eq!(wrong_after_restart, StatusCode::UNAUTHORIZED, "wrong token");
    assert_eq!(first_retired, StatusCode::UNAUTHORIZED, "first token");
    assert_eq!(graced_retired, StatusCode::UNAUTHORIZED, "second token");
    assert_eq!(newest, StatusCode::ACCEPTED, "newest token");
    assert!(
        !daemon.data_dir().join("ingest.token.previous").exists(),
        "the previous token file outlived a rotation without grace"
    );
}

#[tokio::test]
async fn configured_token_ignores_grace_file() {
    const CONFIGURED: &str = "e2e-configured-token-0123456789";
    let mut daemon = DaemonProcess::start().await;
    let first = daemon.token();
    let graced = daemon
        .client()
        .rotate_ingest_token(Some("1h"))
        .await
        .expect("rotate with grace");

    daemon.stop().await;
    daemon.options_mut().ingest_token = Some(CONFIGURED.to_owned());
    daemon.start_again().await;
    let configured = status_with_token(&daemon, CONFIGURED).await;
    let old_generated = status_with_token(&daemon, &first).await;
    let new_generated = status_with_token(&daemon, &graced.token).await;
    let rotation = daemon.client().rotate_ingest_token(Some("1h")).await;

    assert_eq!(configured, StatusCode::ACCEPTED, "configured token");
    assert_eq!(old_generated, StatusCode::UNAUTHORIZED, "token in grace");
    assert_eq!(new_generated, StatusCode::UNAUTHORIZED, "generated token");
    let error = rotation.expect_err("configured token rotated");
    assert_eq!(error.status(), Some(StatusCode::CONFLICT), "{error}");
    assert!(
        daemon.data_dir().join("ingest.token.previous").exists(),
        "a daemon with a configured token removed the previous token file"
    );
}

#[tokio::test]
async fn configured_token_cannot_rotate() {
    let options = DaemonOptions {
        ingest_token: Some("e2e-configured-token-0123456789".to_owned()),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;

    let error = daemon
        .client()
        .rotate_ingest_token(None)
        .await
        .expect_err("configured token rotated");

    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    assert!(error.to_string().contains("BELTER_INGEST_TOKEN"), "{error}");
}

#[tokio::test]
async fn control_route_on_ingest_names_socket() {
    let daemon = DaemonProcess::start().await;
    let request = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: belterd\r\nConnection: close\r\n\r\n").into_bytes()
    };

    let control = tcp_exchange(daemon.ingest_addr(), request("/v1/endpoints"))
        .await
        .expect("request to the ingest listener");
    let unknown = tcp_exchange(daemon.ingest_addr(), request("/v1/endpointless"))
        .await
        .expect("request to the ingest listener");

    assert_eq!(control.status, 404, "{}", control.rest);
    assert!(
        control.rest.contains("the control socket serves it"),
        "{}",
        control.rest
    );
    assert_eq!(unknown.status, 404, "{}", unknown.rest);
    assert!(
        unknown.rest.contains("no route /v1/endpointless"),
        "{}",
        unknown.rest
    );
    assert!(!unknown.rest.contains("control socket"), "{}", unknown.rest);
}

/// Sends a batch ingest request of `body` on a raw connection and closes the connection after
/// `wait`. Returns whether the response came first.
async fn post_and_leave(daemon: &DaemonProcess, body: &[u8], wait: std::time::Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr = daemon.ingest_addr();
    assert!(addr.ip().is_loopback(), "tests send only to loopback");
    let head = format!(
        "POST /v1/events/batch HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        daemon.token(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to ingest");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    stream.write_all(body).await.expect("send the body");
    let mut first = [0u8; 1];
    let answered = matches!(
        tokio::time::timeout(wait, stream.read(&mut first)).await,
        Ok(Ok(1))
    );
    drop(stream);
    answered
}

/// A client that closes its connection while its events are written gets no 202, but every
/// delivery that was stored is still sent, and none stays pending.
#[tokio::test]
async fn client_gone_during_write_leaves_none_pending() {
    const ROUNDS: u32 = 8;
    const MAX_ROUNDS: u32 = 40;
    const GOLDEN_RATIO_FRACTION: f64 = 0.618_033_988_749_895;
    const PER_REQUEST: usize = 3_000;
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    for _ in 0..3 {
        subscribe(&client, &receiver).await;
    }
    let body = json!({ "events": vec![csat_sample(); 1_000] }).to_string();
    let started = std::time::Instant::now();
    let answer = tcp_exchange(daemon.ingest_addr(), {
        let mut request = format!(
            "POST /v1/events/batch HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            daemon.ingest_addr(),
            daemon.token(),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        request
    })
    .await
    .expect("a whole batch request");
    assert_eq!(answer.status, 202);
    let batch_time = started.elapsed();

    // Clients leave at points within 1.5 times the first request's time, until one left before
    // its response and its request was stored. The golden-ratio sequence puts each new point
    // between the earlier ones, so the points get denser instead of repeating.
    let all = DeliveryQuery {
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    let mut answered = 1;
    let mut round = 0;
    let stored_unanswered = loop {
        round += 1;
        let wait = batch_time.mul_f64(1.5 * (f64::from(round) * GOLDEN_RATIO_FRACTION).fract());
        if post_and_leave(&daemon, body.as_bytes(), wait).await {
            answered += 1;
        }
        if round < ROUNDS {
            continue;
        }
        // Every stored request's deliveries show in the log once its write ends.
        tokio::time::sleep(batch_time).await;
        let stored = count_deliveries(&client, &all).await;
        if stored > answered * PER_REQUEST || round == MAX_ROUNDS {
            break stored - answered * PER_REQUEST;
        }
    };
    assert!(
        stored_unanswered > 0,
        "no request whose client left before the answer was stored in {round} rounds"
    );

    let pending = DeliveryQuery {
        status: Some(belter_common::records::DeliveryStatus::Pending),
        limit: Some(1_000),
        ..DeliveryQuery::default()
    };
    belter_tests::wait::poll_until("every stored delivery to be sent", WAIT_TIMEOUT, || async {
        let page = client
            .list_deliveries(&pending)
            .await
            .map_err(|error| error.to_string())?;
        match page.deliveries.len() {
            0 => Ok(()),
            left => Err(format!("{left} pending")),
        }
    })
    .await;
    let stored = count_deliveries(&client, &all).await;
    let delivered = receiver.requests().len();
    assert!(
        delivered >= stored,
        "{stored} deliveries stored, {delivered} sent"
    );
}

/// Counts the deliveries in the log, page by page.
async fn count_deliveries(
    client: &belter_common::client::ControlClient,
    query: &DeliveryQuery,
) -> usize {
    let mut query = query.clone();
    let mut count = 0;
    loop {
        let page = client
            .list_deliveries(&query)
            .await
            .expect("list deliveries");
        count += page.deliveries.len();
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return count,
        }
    }
}
