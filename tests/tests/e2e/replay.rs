//! Replays of one delivery and of many by id or filter.

use belter_common::api::{DeliveryFilter, ReplayRequest, ReplayResponse};
use belter_common::client::ControlClient;
use belter_common::headers;
use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::samples::sample_body;
use belter_common::{DeliveryId, EventType};
use belter_tests::endpoint::subscribe;
use belter_tests::raw::unix_request;
use belter_tests::wait::{poll_until, wait_for_attempts, wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonProcess, Receiver, Reply};
use hyper::StatusCode;

fn csat() -> &'static str {
    sample_body(EventType::CsatReceived)
}

/// Replays one delivery through `POST /v1/replay` with its id.
async fn replay_one_by_id(client: &ControlClient, id: &DeliveryId) -> ReplayResponse {
    client
        .replay_many(&ReplayRequest {
            ids: vec![id.clone()],
            filter: None,
            dry_run: false,
        })
        .await
        .expect("replay")
}

#[tokio::test]
async fn replay_one_resends_delivery() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;

    let replayed = client.replay(id).await.expect("replay");
    let requests = receiver.wait_for_requests(2, WAIT_TIMEOUT).await;
    let detail = wait_for_attempts(&client, id, 2).await;

    assert_eq!(replayed.queued, 1);
    assert_eq!(requests[1].header(headers::DELIVERY), Some(id.as_str()));
    assert_eq!(requests[1].header(headers::ATTEMPT), Some("2"));
    assert_eq!(requests[1].body, requests[0].body);
    assert_eq!(requests[1].signature_valid, Some(true));
    assert_eq!(detail.attempts[1].trigger, AttemptTrigger::Replay);
    assert_eq!(detail.attempts[1].number, 2);
}

#[tokio::test]
async fn failed_replay_of_success_ends() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    receiver.set_reply(Reply::Status(500));

    client.replay(id).await.expect("replay");
    let detail = wait_for_status(&client, id, DeliveryStatus::Failed).await;

    // The delivery had succeeded, so it has no scheduled retries left. The failed replay is
    // its last attempt, and no retry follows within several retry delays.
    receiver
        .expect_no_more_than(2, std::time::Duration::from_millis(1_500))
        .await;
    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.attempts[1].trigger, AttemptTrigger::Replay);
    assert_eq!(detail.attempts[1].status_code, Some(500));
    assert_eq!(detail.delivery.next_attempt_at, None);

    // A second replay, after the first one failed, still finds the earlier success.
    client.replay(id).await.expect("second replay");
    let detail = wait_for_attempts(&client, id, 3).await;
    receiver
        .expect_no_more_than(3, std::time::Duration::from_millis(1_500))
        .await;
    let detail = if detail.delivery.status == DeliveryStatus::Failed {
        detail
    } else {
        wait_for_status(&client, id, DeliveryStatus::Failed).await
    };
    assert_eq!(detail.attempts.len(), 3);
    assert_eq!(detail.delivery.next_attempt_at, None);
}

#[tokio::test]
async fn replay_unknown_is_404() {
    let daemon = DaemonProcess::start().await;

    let error = daemon
        .client()
        .replay(&DeliveryId::generate())
        .await
        .expect_err("unknown delivery replayed");

    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert!(
        error.to_string().contains("not found or past retention"),
        "{error}"
    );
}

#[tokio::test]
async fn replay_by_filter() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let failing = Receiver::with_reply(Reply::Status(500)).await;
    let healthy = Receiver::start().await;
    let failing_endpoint = subscribe(&client, &failing).await;
    subscribe(&client, &healthy).await;
    let mut failed_ids = Vec::new();
    for _ in 0..2 {
        let answer = daemon.ingest_accepted(csat()).await;
        for id in answer.deliveries {
            let detail = client.get_delivery(&id).await.expect("get delivery");
            if detail.delivery.endpoint_id == failing_endpoint.endpoint.id {
                failed_ids.push(id);
            }
        }
    }
    for id in &failed_ids {
        wait_for_status(&client, id, DeliveryStatus::Failed).await;
    }
    healthy.wait_for_requests(2, WAIT_TIMEOUT).await;
    let failing_before = failing.count();
    let filter = DeliveryFilter {
        status: Some(DeliveryStatus::Failed),
        ..DeliveryFilter::default()
    };

    let dry_run = client
        .replay_many(&ReplayRequest {
            ids: Vec::new(),
            filter: Some(filter.clone()),
            dry_run: true,
        })
        .await
        .expect("dry run");
    let still_failed = client.get_delivery(&failed_ids[0]).await.expect("get");
    failing.set_reply(Reply::Status(200));
    let replayed = client
        .replay_many(&ReplayRequest {
            ids: Vec::new(),
            filter: Some(filter),
            dry_run: false,
        })
        .await
        .expect("replay");
    failing
        .wait_for_requests(failing_before + 2, WAIT_TIMEOUT)
        .await;

    assert!(dry_run.dry_run);
    assert_eq!(dry_run.queued, 2);
    assert_eq!(dry_run.targets.len(), 1);
    assert_eq!(dry_run.targets[0].url, failing.url());
    assert_eq!(dry_run.targets[0].count, 2);
    assert_eq!(still_failed.delivery.status, DeliveryStatus::Failed);
    assert!(!replayed.dry_run);
    assert_eq!(replayed.queued, 2);
    for id in &failed_ids {
        let detail = wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
        let last = detail.attempts.last().expect("attempts");
        assert_eq!(last.trigger, AttemptTrigger::Replay, "{id}");
    }
    assert_eq!(healthy.count(), 2);
}

#[tokio::test]
async fn replay_by_ids() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let first = daemon.ingest_accepted(csat()).await;
    let second = daemon.ingest_accepted(csat()).await;
    let chosen = &first.deliveries[0];
    wait_for_status(&client, chosen, DeliveryStatus::Succeeded).await;
    wait_for_status(&client, &second.deliveries[0], DeliveryStatus::Succeeded).await;

    let replayed = replay_one_by_id(&client, chosen).await;
    let requests = receiver.wait_for_requests(3, WAIT_TIMEOUT).await;

    assert_eq!(replayed.queued, 1);
    assert_eq!(requests[2].header(headers::DELIVERY), Some(chosen.as_str()));
}

#[tokio::test]
async fn replay_skips_deleted_endpoint() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    client
        .delete_endpoint(&created.endpoint.id)
        .await
        .expect("delete endpoint");

    let replayed = replay_one_by_id(&client, id).await;

    assert_eq!(replayed.queued, 0);
    assert_eq!(replayed.skipped, 1);
    assert_eq!(replayed.skipped_in_flight, 0);
    assert_eq!(replayed.skipped_no_endpoint, 1);
}

#[tokio::test]
async fn replay_skips_running_attempt() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::with_reply(Reply::Delayed {
        delay: std::time::Duration::from_secs(3),
        status: 200,
    })
    .await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    poll_until("an attempt in flight", WAIT_TIMEOUT, || async {
        match receiver.in_flight() {
            0 => Err("no request open at the receiver".to_owned()),
            _ => Ok(()),
        }
    })
    .await;

    let replayed = replay_one_by_id(&client, id).await;

    assert_eq!(replayed.queued, 0);
    assert_eq!(replayed.skipped, 1);
    assert_eq!(replayed.skipped_in_flight, 1);
    assert_eq!(replayed.skipped_no_endpoint, 0);
}

#[tokio::test]
async fn misspelled_field_is_rejected() {
    let daemon = DaemonProcess::start().await;
    let cases = [
        (
            "/v1/replay",
            r#"{"filter":{"stauts":"failed"},"dry_run":true}"#,
            "stauts",
        ),
        ("/v1/replay", r#"{"filter":{},"dryrun":true}"#, "dryrun"),
        (
            "/v1/replay",
            r#"{"ids":["del_01ARZ3NDEKTSV4RRFFQ69G5FAV"],"filter":{}}"#,
            "\"filter\"",
        ),
        (
            "/v1/rules",
            r#"{"scope":"global","criterium":"greeting","min_score":80}"#,
            "criterium",
        ),
    ];
    for (path, body, field) in cases {
        let response = belter_tests::raw::unix_request(
            &daemon.socket_path(),
            hyper::Method::POST,
            path,
            &[("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await
        .expect("control request");

        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = response.error_message();
        assert!(message.contains(field), "{body}: {message}");
    }
    let rules = daemon.client().list_rules().await.expect("list rules");
    assert!(
        rules.is_empty(),
        "a rule was created from a misspelled body"
    );
}

#[tokio::test]
async fn unknown_id_queues_nothing() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    let request = ReplayRequest {
        ids: vec![id.clone(), DeliveryId::generate()],
        ..ReplayRequest::default()
    };

    let error = client
        .replay_many(&request)
        .await
        .expect_err("unknown id accepted");
    receiver
        .expect_no_more_than(1, std::time::Duration::from_millis(500))
        .await;
    let detail = client.get_delivery(id).await.expect("detail");

    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(detail.attempts.len(), 1, "the known id was replayed");
}

#[tokio::test]
async fn replay_goes_to_current_url() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let old = Receiver::start().await;
    let moved = Receiver::start().await;
    let created = subscribe(&client, &old).await;
    moved.set_secret(&created.secret);
    let answer = daemon.ingest_accepted(csat()).await;
    let id = &answer.deliveries[0];
    wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    let update = belter_common::api::UpdateEndpoint {
        url: Some(moved.url()),
        ..Default::default()
    };
    client
        .update_endpoint(&created.endpoint.id, &update)
        .await
        .expect("update");

    client.replay(id).await.expect("replay");
    let requests = moved.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(requests[0].header(headers::DELIVERY), Some(id.as_str()));
    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(old.count(), 1);
}

#[tokio::test]
async fn queued_replays_survive_a_crash() {
    let mut daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let created = subscribe(&client, &receiver).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.extend(daemon.ingest_accepted(csat()).await.deliveries);
    }
    for id in &ids {
        wait_for_status(&client, id, DeliveryStatus::Succeeded).await;
    }
    let endpoint = created.endpoint.id.clone();
    client.pause_endpoint(&endpoint).await.expect("pause");
    let by_filter = client
        .replay_many(&ReplayRequest {
            filter: Some(DeliveryFilter {
                endpoint: Some(endpoint.clone()),
                ..DeliveryFilter::default()
            }),
            ..ReplayRequest::default()
        })
        .await
        .expect("replay by filter");
    assert_eq!(by_filter.queued, 5);
    assert_eq!(by_filter.paused, 5);

    // SIGKILL right after the response: sled's own background flush has not run yet, so only a
    // flush before the response keeps the replays.
    daemon.kill().await;
    daemon.start_again().await;
    let client = daemon.client();
    for id in &ids {
        let detail = client
            .get_delivery(id)
            .await
            .expect("delivery after restart");
        assert_eq!(
            detail.delivery.status,
            DeliveryStatus::Paused,
            "{id} lost its replay"
        );
    }
    client.resume_endpoint(&endpoint).await.expect("resume");
    for id in &ids {
        let detail = wait_for_attempts(&client, id, 2).await;
        assert_eq!(detail.attempts[1].trigger, AttemptTrigger::Replay);
    }
    assert_eq!(receiver.requests().len(), 10);
}

#[tokio::test]
async fn single_replay_rejects_options() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe(&client, &receiver).await;
    let id = daemon.ingest_accepted(csat()).await.deliveries[0].clone();
    wait_for_status(&client, &id, DeliveryStatus::Succeeded).await;
    let path = format!("/v1/deliveries/{id}/replay");
    let socket = daemon.socket_path();
    let json = [("content-type", "application/json")];

    let with_body = unix_request(
        &socket,
        hyper::Method::POST,
        &path,
        &json,
        br#"{"dry_run": true}"#.to_vec(),
    )
    .await
    .expect("replay with a body");
    assert_eq!(with_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        with_body.error_message().contains("POST /v1/replay"),
        "{}",
        with_body.error_message()
    );
    let with_query = unix_request(
        &socket,
        hyper::Method::POST,
        &format!("{path}?dry_run=true"),
        &json,
        Vec::new(),
    )
    .await
    .expect("replay with a query");
    assert_eq!(with_query.status, StatusCode::BAD_REQUEST);
    let many_with_query = unix_request(
        &socket,
        hyper::Method::POST,
        "/v1/replay?dry_run=true",
        &json,
        format!(r#"{{"ids":["{id}"]}}"#).into_bytes(),
    )
    .await
    .expect("replay of many with a query");
    assert_eq!(many_with_query.status, StatusCode::BAD_REQUEST);
    let plain = unix_request(&socket, hyper::Method::POST, &path, &json, b"{\n}".to_vec())
        .await
        .expect("replay with an empty object");
    assert_eq!(plain.status, StatusCode::OK);

    let detail = wait_for_attempts(&client, &id, 2).await;
    assert_eq!(detail.attempts.len(), 2, "only the plain replay was sent");
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn reversed_window_is_rejected() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let now = belter_common::Timestamp::now();
    let filter = DeliveryFilter {
        since: Some(now.minus_millis(3_600_000)),
        until: Some(now.minus_millis(7_200_000)),
        ..DeliveryFilter::default()
    };
    let query = belter_common::api::DeliveryQuery {
        since: filter.since,
        until: filter.until,
        ..belter_common::api::DeliveryQuery::default()
    };

    let listed = client
        .list_deliveries(&query)
        .await
        .expect_err("a reversed window lists nothing");
    let replayed = client
        .replay_many(&ReplayRequest {
            ids: Vec::new(),
            filter: Some(filter),
            dry_run: true,
        })
        .await
        .expect_err("a reversed window replays nothing");

    assert_eq!(listed.status(), Some(StatusCode::BAD_REQUEST), "{listed}");
    assert!(listed.to_string().contains("empty time window"), "{listed}");
    assert!(
        listed.to_string().contains("swap the two times"),
        "{listed}"
    );
    assert_eq!(
        replayed.status(),
        Some(StatusCode::UNPROCESSABLE_ENTITY),
        "{replayed}"
    );
    assert!(
        replayed.to_string().contains("empty time window"),
        "{replayed}"
    );
}
