//! Endpoint management as deliveries see it: pause and resume, delete, URL change, secret
//! rotation, and the endpoint records themselves.

use std::time::Duration;

use belter_common::api::{CreateEndpoint, DeliveryQuery, UpdateEndpoint};
use belter_common::records::{DeliveryStatus, EndpointState, EventSelection};
use belter_common::rules::{CreateRule, RuleScope};
use belter_common::samples::sample_body;
use belter_common::{headers, EndpointId, EventType};
use belter_tests::endpoint::{subscribe, subscribe_with};
use belter_tests::http::post;
use belter_tests::queue::{
    behind_slow_attempt, busy_paused_queue, delete_while_busy, BusyQueue, SlowQueue,
};
use belter_tests::raw::unix_request;
use belter_tests::signature::signature_matches;
use belter_tests::wait::{
    poll_until, wait_for_attempts, wait_for_none_pending_to, wait_for_pending, wait_for_status,
    WAIT_TIMEOUT,
};
use belter_tests::{DaemonOptions, DaemonProcess, Receiver, Reply};
use hyper::{Method, StatusCode};

/// Time a test watches a paused or cancelled delivery for a request that must not come.
const QUIET_WINDOW: Duration = Duration::from_millis(500);

fn csat() -> &'static str {
    sample_body(EventType::CsatReceived)
}

#[tokio::test]
async fn paused_endpoint_holds_deliveries() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let endpoint_id = &created.endpoint.id;

    let paused = client.pause_endpoint(endpoint_id).await.expect("pause");
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Paused).await;
    receiver.expect_no_more_than(0, QUIET_WINDOW).await;
    let resumed = client.resume_endpoint(endpoint_id).await.expect("resume");
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;
    let detail = wait_for_status(&client, id, DeliveryStatus::Succeeded).await;

    assert_eq!(paused.state, EndpointState::Paused);
    assert_eq!(resumed.state, EndpointState::Active);
    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(detail.delivery.attempt_count, 1);
}

#[tokio::test]
async fn delete_cancels_queued() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe_with(&client, &receiver, EventSelection::All, true).await;
    let first = daemon.ingest_accepted(csat()).await;
    let second = daemon.ingest_accepted(csat()).await;
    let ids = [&first.deliveries[0], &second.deliveries[0]];
    for id in ids {
        wait_for_status(&client, id, DeliveryStatus::Paused).await;
    }

    client
        .delete_endpoint(&created.endpoint.id)
        .await
        .expect("delete endpoint");

    for id in ids {
        let detail = client.get_delivery(id).await.expect("history is kept");
        assert_eq!(detail.delivery.status, DeliveryStatus::Cancelled, "{id}");
    }
    let endpoints = client.list_endpoints().await.expect("list endpoints");
    assert!(endpoints.iter().all(|e| e.id != created.endpoint.id));
    receiver.expect_no_more_than(0, QUIET_WINDOW).await;
}

#[tokio::test]
async fn delete_cancels_deliveries_waiting_in_memory() {
    let SlowQueue {
        daemon,
        receiver,
        endpoint_id,
        ids,
    } = behind_slow_attempt(4, Duration::from_secs(1)).await;
    let client = daemon.client();

    client
        .delete_endpoint(&endpoint_id)
        .await
        .expect("delete endpoint");

    let sent = receiver.requests();
    assert_eq!(sent.len(), 1, "one attempt ran before the delete");
    let running = sent[0].header(headers::DELIVERY).expect("delivery header");
    for id in ids.iter().filter(|id| id.as_str() != running) {
        let detail = client.get_delivery(id).await.expect("history is kept");
        assert_eq!(detail.delivery.status, DeliveryStatus::Cancelled, "{id}");
    }
    receiver
        .expect_no_more_than(1, Duration::from_millis(1_500))
        .await;
}

/// A delivery whose attempt runs when its endpoint is deleted ends with that attempt. It is not
/// cancelled while the attempt runs, and it leaves the pending count once.
#[tokio::test]
async fn delete_during_attempt_ends_it_once() {
    let options = DaemonOptions {
        attempt_timeout: "5s".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let slow = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_secs(3),
        status: 200,
    })
    .await;
    let created = subscribe(&client, &slow).await;
    let running = daemon.ingest_accepted(csat()).await.deliveries[0].clone();
    slow.wait_for_requests(1, WAIT_TIMEOUT).await;
    // A delivery that stays pending, so a count that drops below the truth shows.
    let paused_receiver = Receiver::start().await;
    subscribe_with(&client, &paused_receiver, EventSelection::All, true).await;
    let second = daemon.ingest_accepted(csat()).await;
    assert_eq!(second.deliveries.len(), 2, "both endpoints subscribe");

    client
        .delete_endpoint(&created.endpoint.id)
        .await
        .expect("delete endpoint");
    // Long enough for several indexer sweeps (one each 200 ms), and shorter than the attempt.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let during = client.get_delivery(&running).await.expect("get delivery");
    assert_ne!(
        during.delivery.status,
        DeliveryStatus::Cancelled,
        "the attempt of {running} still runs"
    );

    wait_for_status(&client, &running, DeliveryStatus::Succeeded).await;
    // One delivery waits: the paused endpoint's.
    wait_for_pending(&client, 1, WAIT_TIMEOUT).await;
}

/// Events in each batch that a delete races.
const RACE_BATCH_EVENTS: usize = 1_000;

/// Batches that a delete races, each at another point of its ingest.
const RACE_ROUNDS: u32 = 30;

/// Starts posting a batch of `RACE_BATCH_EVENTS` events. The task returns the response status
/// and the time the request took.
fn post_race_batch(daemon: &DaemonProcess) -> tokio::task::JoinHandle<(StatusCode, Duration)> {
    let event: serde_json::Value = serde_json::from_str(csat()).expect("sample is JSON");
    let body = serde_json::json!({ "events": vec![event; RACE_BATCH_EVENTS] });
    let url = format!("{}/batch", daemon.ingest_url());
    let authorization = format!("Bearer {}", daemon.token());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let request_headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
        ];
        let response = post(&url, &request_headers, body.to_string().into_bytes())
            .await
            .unwrap_or_else(|error| panic!("batch request failed: {error:#}"));
        (response.status, started.elapsed())
    })
}

/// Deletes endpoints while batches of events for them are written, at delays spread over the
/// time a batch takes. Every delivery that a batch made for a deleted endpoint must end
/// cancelled or attempted, and none may stay pending.
#[tokio::test]
async fn delete_during_batch_leaves_none_pending() {
    let options = DaemonOptions {
        extra_args: vec!["--max-in-flight-per-endpoint".to_owned(), "1".to_owned()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: Duration::from_millis(300),
        status: 200,
    })
    .await;
    let calibration = subscribe(&client, &receiver).await.endpoint.id;
    let (status, batch_time) = post_race_batch(&daemon).await.expect("batch task");
    assert_eq!(status, StatusCode::ACCEPTED);
    client
        .delete_endpoint(&calibration)
        .await
        .expect("delete endpoint");

    for round in 0..RACE_ROUNDS {
        let mut endpoints = Vec::new();
        for _ in 0..3 {
            endpoints.push(subscribe(&client, &receiver).await.endpoint.id);
        }
        let posting = post_race_batch(&daemon);
        tokio::time::sleep(batch_time * round / RACE_ROUNDS).await;
        for endpoint in &endpoints {
            client
                .delete_endpoint(endpoint)
                .await
                .expect("delete endpoint");
        }
        let (status, _) = posting.await.expect("batch task");
        assert_eq!(status, StatusCode::ACCEPTED, "round {round}");

        for endpoint in &endpoints {
            wait_for_none_pending_to(&client, endpoint, Duration::from_secs(3)).await;
        }
    }
}

/// Deletes an endpoint with a queue while its attempts end one after another. The outcome
/// writer cancels the queue of a deleted endpoint too, so it cancels while the delete does.
/// Each cancelled delivery leaves the count of waiting deliveries once. The deliveries of a
/// paused endpoint stay counted, so a count that drops below them shows.
#[tokio::test]
async fn busy_delete_counts_each_cancel_once() {
    let BusyQueue {
        daemon,
        receiver,
        endpoint_id,
        events,
        ..
    } = busy_paused_queue(1, 10).await;
    let client = daemon.client();

    delete_while_busy(&client, &receiver, &endpoint_id).await;

    wait_for_none_pending_to(&client, &endpoint_id, WAIT_TIMEOUT).await;
    wait_for_pending(&client, events as u64, WAIT_TIMEOUT).await;
}

#[tokio::test]
async fn pause_keeps_deliveries_waiting_in_memory() {
    let SlowQueue {
        daemon,
        receiver,
        endpoint_id,
        ids,
    } = behind_slow_attempt(4, Duration::from_secs(1)).await;
    let client = daemon.client();

    client.pause_endpoint(&endpoint_id).await.expect("pause");
    receiver.set_reply(Reply::Status(200));
    // Held until the queue no longer waits in memory; a resume then reads it from the store.
    receiver
        .expect_no_more_than(1, Duration::from_millis(1_500))
        .await;
    client.resume_endpoint(&endpoint_id).await.expect("resume");

    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    let received: std::collections::BTreeSet<String> = receiver
        .requests()
        .iter()
        .filter_map(|request| request.header(headers::DELIVERY).map(str::to_owned))
        .collect();
    assert_eq!(received.len(), ids.len());
}

#[tokio::test]
async fn delete_cancels_pending_retry() {
    let options = DaemonOptions {
        retry_schedule: "500ms".to_owned(),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Status(500)).await;
    let created = subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_attempts(&client, id, 1).await;

    client
        .delete_endpoint(&created.endpoint.id)
        .await
        .expect("delete endpoint");

    let detail = client.get_delivery(id).await.expect("history is kept");
    assert_eq!(detail.delivery.status, DeliveryStatus::Cancelled);
    assert_eq!(detail.attempts.len(), 1);
    receiver
        .expect_no_more_than(1, Duration::from_secs(1))
        .await;
}

#[tokio::test]
async fn endpoint_crud_round_trip() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let id = &created.endpoint.id;

    let fetched = client.get_endpoint(id).await.expect("get endpoint");
    let listed = client.list_endpoints().await.expect("list endpoints");
    let update = UpdateEndpoint {
        description: Some("billing alerts".to_owned()),
        event_types: Some(EventSelection::Only(vec![EventType::SmartAlertCreated])),
        url: None,
        filter: None,
        format: None,
        routing_key: None,
        standard_webhooks: None,
    };
    let updated = client.update_endpoint(id, &update).await.expect("update");
    let refetched = client.get_endpoint(id).await.expect("get endpoint");

    assert_eq!(fetched.url, receiver.url());
    assert_eq!(fetched.state, EndpointState::Active);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, *id);
    assert_eq!(updated.description, "billing alerts");
    assert_eq!(refetched.description, "billing alerts");
    assert_eq!(
        refetched.event_types,
        EventSelection::Only(vec![EventType::SmartAlertCreated])
    );
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
}

#[tokio::test]
async fn endpoint_rejects_bad_url() {
    let daemon = DaemonProcess::start().await;
    let request = CreateEndpoint {
        url: "ftp://127.0.0.1/hook".to_owned(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: None,
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };

    let error = daemon
        .client()
        .create_endpoint(&request)
        .await
        .expect_err("ftp URL accepted");

    let status = error.status().expect("an API error");
    assert!(status.is_client_error(), "{status}");
    assert!(error.to_string().contains("url"), "{error}");
}

#[tokio::test]
async fn unknown_endpoint_is_404() {
    let daemon = DaemonProcess::start().await;

    let error = daemon
        .client()
        .get_endpoint(&EndpointId::generate())
        .await
        .expect_err("unknown endpoint found");

    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn rotated_secret_signs_next() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let id = &created.endpoint.id;

    let shown = client.endpoint_secret(id).await.expect("secret");
    let rotated = client.rotate_secret(id).await.expect("rotate");
    let shown_after = client.endpoint_secret(id).await.expect("secret");
    receiver.set_secret(&rotated.secret);
    daemon.ingest_accepted(csat()).await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(shown.secret, created.secret);
    assert_ne!(rotated.secret, created.secret);
    assert_eq!(shown_after.secret, rotated.secret);
    assert_eq!(requests[0].signature_valid, Some(true));
    let header = requests[0]
        .header("x-webhook-signature")
        .unwrap_or_default();
    assert!(!signature_matches(
        &created.secret,
        &requests[0].body,
        header
    ));
}

#[tokio::test]
async fn grace_rotation_signs_both() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;

    let rotated = client
        .rotate_secret_with_grace(&created.endpoint.id, "1h")
        .await
        .expect("rotate with grace");
    receiver.set_secret(&rotated.secret);
    daemon.ingest_accepted(csat()).await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_ne!(rotated.secret, created.secret);
    assert_eq!(requests[0].signature_valid, Some(true));
    let header = requests[0]
        .header("x-webhook-signature")
        .unwrap_or_default();
    assert!(signature_matches(
        &created.secret,
        &requests[0].body,
        header
    ));
}

#[tokio::test]
async fn url_change_applies_to_new() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    let created = subscribe(&client, &old).await;
    new.set_secret(&created.secret);
    let update = UpdateEndpoint {
        url: Some(new.url()),
        ..UpdateEndpoint::default()
    };

    client
        .update_endpoint(&created.endpoint.id, &update)
        .await
        .expect("update URL");
    let answer = daemon.ingest_accepted(csat()).await;
    let requests = new.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(old.count(), 0);
    let page = client
        .list_deliveries(&DeliveryQuery::default())
        .await
        .expect("list deliveries");
    assert_eq!(page.deliveries[0].id, answer.deliveries[0]);
    assert_eq!(page.deliveries[0].target_url, new.url());
}

#[tokio::test]
async fn failing_endpoint_auto_paused() {
    let options = DaemonOptions {
        retry_schedule: "200ms,200ms,200ms".to_owned(),
        extra_args: vec!["--auto-pause-after".to_owned(), "300ms".to_owned()],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Status(500)).await;
    let created = subscribe(&client, &receiver).await;
    let endpoint_id = &created.endpoint.id;
    daemon.ingest_accepted(csat()).await;

    poll_until(
        "the failing endpoint to be paused",
        WAIT_TIMEOUT,
        || async {
            match client.get_endpoint(endpoint_id).await {
                Ok(endpoint) if endpoint.state == EndpointState::Paused => Ok(()),
                Ok(endpoint) => Err(format!("{:?}", endpoint.state)),
                Err(error) => Err(error.to_string()),
            }
        },
    )
    .await;
    let seen = receiver.count();
    let answer = daemon.ingest_accepted(csat()).await;
    let held = wait_for_status(&client, &answer.deliveries[0], DeliveryStatus::Paused).await;

    assert_eq!(held.attempts.len(), 0);
    receiver.expect_no_more_than(seen, QUIET_WINDOW).await;
}

#[tokio::test]
async fn change_routes_reject_options() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let socket = daemon.socket_path();
    let receiver = Receiver::start().await;
    let endpoint_id = subscribe(&client, &receiver).await.endpoint.id;
    let rule = client
        .create_rule(&CreateRule {
            scope: RuleScope::Global,
            scope_id: None,
            criterion: None,
            min_score: 50.0,
        })
        .await
        .expect("create rule");
    let json = [("content-type", "application/json")];
    let cases = [
        (
            Method::DELETE,
            format!("/v1/endpoints/{endpoint_id}"),
            r#"{"dry_run":true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::DELETE,
            format!("/v1/endpoints/{endpoint_id}?dry_run=true"),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_id}/pause"),
            "garbage",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_id}/resume"),
            r#"{"paused":false}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::DELETE,
            format!("/v1/rules/{}", rule.id),
            r#"{"dry_run":true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (method, path, body, expected) in cases {
        let response = unix_request(&socket, method.clone(), &path, &json, body.into())
            .await
            .expect("control request");
        let text = String::from_utf8_lossy(&response.body).into_owned();
        assert_eq!(response.status, expected, "{method} {path}: {text}");
        assert!(text.contains("send the request without one"), "{text}");
    }

    let endpoint = client
        .get_endpoint(&endpoint_id)
        .await
        .expect("endpoint kept");
    assert_eq!(
        endpoint.state,
        EndpointState::Active,
        "the pause was rejected"
    );
    let rules = client.list_rules().await.expect("list rules");
    assert!(rules.iter().any(|kept| kept.id == rule.id), "rule kept");

    for (method, path) in [
        (Method::POST, format!("/v1/endpoints/{endpoint_id}/pause")),
        (Method::DELETE, format!("/v1/rules/{}", rule.id)),
        (Method::DELETE, format!("/v1/endpoints/{endpoint_id}")),
    ] {
        let response = unix_request(&socket, method.clone(), &path, &json, b"{}".to_vec())
            .await
            .expect("control request");
        assert_eq!(response.status, StatusCode::OK, "{method} {path} with {{}}");
    }
}

#[tokio::test]
async fn body_routes_reject_query_options() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let socket = daemon.socket_path();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let endpoint_id = created.endpoint.id;
    let json = [("content-type", "application/json")];
    let create_body = format!(r#"{{"url": "{}"}}"#, receiver.url());
    let cases = [
        (
            Method::POST,
            "/v1/endpoints?paused=true".to_owned(),
            create_body,
        ),
        (
            Method::PATCH,
            format!("/v1/endpoints/{endpoint_id}?dry_run=true"),
            r#"{"description": "changed"}"#.to_owned(),
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_id}/rotate-secret?grace=24h"),
            "{}".to_owned(),
        ),
        (
            Method::POST,
            "/v1/rules?dry_run=true".to_owned(),
            r#"{"scope": "global", "min_score": 50}"#.to_owned(),
        ),
        (
            Method::POST,
            "/v1/ingest-token/rotate?grace=1h".to_owned(),
            "{}".to_owned(),
        ),
    ];
    for (method, path, body) in cases {
        let response = unix_request(&socket, method.clone(), &path, &json, body.into_bytes())
            .await
            .expect("control request");
        let text = String::from_utf8_lossy(&response.body).into_owned();
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {text}"
        );
        assert!(text.contains("in the JSON body"), "{text}");
    }

    let endpoints = client.list_endpoints().await.expect("list endpoints");
    assert_eq!(endpoints.len(), 1, "no endpoint was created");
    assert_eq!(endpoints[0].description, created.endpoint.description);
    let secret = client.endpoint_secret(&endpoint_id).await.expect("secret");
    assert_eq!(secret.secret, created.secret, "the secret was not rotated");
    assert!(client.list_rules().await.expect("list rules").is_empty());
}
