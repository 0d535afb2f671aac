//! Threshold rules that derive `score.threshold_breached` events, and endpoint payload filters.

use belter_common::api::{CreateEndpoint, IngestResponse, UpdateEndpoint};
use belter_common::client::ControlClient;
use belter_common::records::{DeliveryStatus, EventSelection};
use belter_common::rules::{CreateRule, RuleScope};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::endpoint::subscribe_with;
use belter_tests::wait::{wait_for_status, WAIT_TIMEOUT};
use belter_tests::{DaemonProcess, Receiver};
use hyper::StatusCode;

/// The sample evaluation scores 94 overall, greeting 100, resolution 90, for agent_1187 in team
/// billing-emea of brand northwind.
fn evaluation() -> &'static str {
    sample_body(EventType::EvaluationCompleted)
}

fn breaches_only() -> EventSelection {
    EventSelection::Only(vec![EventType::ScoreThresholdBreached])
}

async fn add_rule(
    client: &ControlClient,
    scope: RuleScope,
    scope_id: Option<&str>,
    criterion: Option<&str>,
    min_score: f64,
) {
    let request = CreateRule {
        scope,
        scope_id: scope_id.map(str::to_owned),
        criterion: criterion.map(str::to_owned),
        min_score,
    };
    client.create_rule(&request).await.expect("create rule");
}

fn breach_count(answer: &IngestResponse) -> usize {
    answer.derived.len()
}

#[tokio::test]
async fn each_scope_derives_breach() {
    let cases = [
        (RuleScope::Global, None),
        (RuleScope::Brand, Some("northwind")),
        (RuleScope::Team, Some("billing-emea")),
        (RuleScope::Agent, Some("agent_1187")),
    ];
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe_with(&client, &receiver, breaches_only(), false).await;
    for (index, (scope, scope_id)) in cases.into_iter().enumerate() {
        for rule in client.list_rules().await.expect("list rules") {
            client.delete_rule(&rule.id).await.expect("delete rule");
        }
        add_rule(&client, scope, scope_id, None, 95.0).await;

        let answer = daemon.ingest_accepted(evaluation()).await;
        let requests = receiver.wait_for_requests(index + 1, WAIT_TIMEOUT).await;

        assert_eq!(breach_count(&answer), 1, "{scope:?}");
        let body = requests[index].json();
        assert_eq!(body["event"], "score.threshold_breached", "{scope:?}");
        assert_eq!(body["data"]["scope"], scope.as_str(), "{scope:?}");
        assert_eq!(body["data"]["score"], 94.0, "{scope:?}");
        assert_eq!(body["data"]["threshold"], 95.0, "{scope:?}");
        assert_eq!(body["data"]["criterion"], serde_json::Value::Null);
        assert_eq!(body["data"]["source_event_id"], answer.event_id.as_str());
        assert_eq!(requests[index].signature_valid, Some(true), "{scope:?}");
    }
}

#[tokio::test]
async fn other_scope_ids_do_not_match() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    add_rule(&client, RuleScope::Brand, Some("contoso"), None, 99.0).await;
    add_rule(&client, RuleScope::Agent, Some("agent_2"), None, 99.0).await;

    let answer = daemon.ingest_accepted(evaluation()).await;

    assert_eq!(breach_count(&answer), 0);
}

#[tokio::test]
async fn most_specific_rule_decides() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    // The stricter global and team rules would fire, but the agent's own rule allows 94.
    add_rule(&client, RuleScope::Global, None, None, 99.0).await;
    add_rule(&client, RuleScope::Team, Some("billing-emea"), None, 98.0).await;
    add_rule(&client, RuleScope::Agent, Some("agent_1187"), None, 90.0).await;

    let quiet = daemon.ingest_accepted(evaluation()).await;
    add_rule(
        &client,
        RuleScope::Agent,
        Some("agent_1187"),
        Some("resolution"),
        95.0,
    )
    .await;
    add_rule(&client, RuleScope::Global, None, Some("resolution"), 50.0).await;
    let loud = daemon.ingest_accepted(evaluation()).await;

    assert_eq!(breach_count(&quiet), 0);
    assert_eq!(breach_count(&loud), 1, "one breach per criterion");
}

#[tokio::test]
async fn criterion_and_overall_are_separate() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    subscribe_with(&client, &receiver, breaches_only(), false).await;
    add_rule(&client, RuleScope::Global, None, Some("resolution"), 91.0).await;
    add_rule(&client, RuleScope::Global, None, None, 90.0).await;

    let answer = daemon.ingest_accepted(evaluation()).await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(breach_count(&answer), 1);
    let data = &requests[0].json()["data"];
    assert_eq!(data["criterion"], "resolution");
    assert_eq!(data["score"], 90.0);
    assert_eq!(data["threshold"], 91.0);
}

#[tokio::test]
async fn rule_changes_apply_to_next_event() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();

    let before = daemon.ingest_accepted(evaluation()).await;
    add_rule(&client, RuleScope::Global, None, None, 95.0).await;
    let during = daemon.ingest_accepted(evaluation()).await;
    let rules = client.list_rules().await.expect("list rules");
    client.delete_rule(&rules[0].id).await.expect("delete rule");
    let after = daemon.ingest_accepted(evaluation()).await;

    assert_eq!(breach_count(&before), 0);
    assert_eq!(breach_count(&during), 1);
    assert_eq!(breach_count(&after), 0);
}

#[tokio::test]
async fn invalid_rules_are_rejected() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let request = CreateRule {
        scope: RuleScope::Team,
        scope_id: None,
        criterion: None,
        min_score: 80.0,
    };

    let error = client
        .create_rule(&request)
        .await
        .expect_err("rule accepted");

    assert_eq!(error.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert!(
        error.to_string().contains("scope_id is required"),
        "{error}"
    );
}

#[tokio::test]
async fn derived_events_survive_restart() {
    let mut daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;
    let endpoint = subscribe_with(&client, &receiver, breaches_only(), true).await;
    add_rule(&client, RuleScope::Brand, Some("northwind"), None, 95.0).await;
    let answer = daemon.ingest_accepted(evaluation()).await;
    let derived = answer.derived[0].clone();

    daemon.kill().await;
    daemon.start_again().await;
    let client = daemon.client();
    client
        .resume_endpoint(&endpoint.endpoint.id)
        .await
        .expect("resume");
    let detail = wait_for_status(&client, &derived.deliveries[0], DeliveryStatus::Succeeded).await;
    let requests = receiver.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(requests[0].json()["id"], derived.event_id.as_str());
    let origin = detail.derived_from.expect("derived_from in the detail");
    assert_eq!(origin.event_id, answer.event_id);
    let rules = client.list_rules().await.expect("rules survive a restart");
    assert_eq!(origin.rule_id, rules[0].id);
}

async fn endpoint_with_filter(
    client: &ControlClient,
    receiver: &Receiver,
    filter: &str,
) -> Result<belter_common::api::CreatedEndpoint, belter_common::client::ClientError> {
    let request = CreateEndpoint {
        url: receiver.url(),
        event_types: EventSelection::All,
        description: String::new(),
        paused: false,
        filter: Some(filter.to_owned()),
        format: Default::default(),
        routing_key: None,
        standard_webhooks: false,
    };
    client.create_endpoint(&request).await
}

#[tokio::test]
async fn filter_selects_deliveries() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let northwind = Receiver::start().await;
    let contoso = Receiver::start().await;
    let frustrated = Receiver::start().await;
    let created = endpoint_with_filter(&client, &northwind, "data.brand == \"northwind\"")
        .await
        .expect("create");
    northwind.set_secret(&created.secret);
    endpoint_with_filter(&client, &contoso, "data.brand == \"contoso\"")
        .await
        .expect("create");
    endpoint_with_filter(
        &client,
        &frustrated,
        "event == \"frustration.detected\" and data.level >= 0.8",
    )
    .await
    .expect("create");

    let evaluation_answer = daemon.ingest_accepted(evaluation()).await;
    let frustration_answer = daemon
        .ingest_accepted(sample_body(EventType::FrustrationDetected))
        .await;
    let requests = northwind.wait_for_requests(1, WAIT_TIMEOUT).await;

    assert_eq!(evaluation_answer.deliveries.len(), 1, "only northwind");
    assert_eq!(requests[0].signature_valid, Some(true));
    assert_eq!(contoso.count(), 0);
    let listed = client.list_endpoints().await.expect("list");
    assert!(listed
        .iter()
        .any(|endpoint| endpoint.filter.as_deref() == Some("data.brand == \"contoso\"")));
    // The sample frustration level is 0.87 and names no brand.
    assert_eq!(
        frustration_answer.deliveries.len(),
        1,
        "only the level filter"
    );
}

#[tokio::test]
async fn invalid_filter_points_at_mistake() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    let receiver = Receiver::start().await;

    let error = endpoint_with_filter(&client, &receiver, "data.level >= ")
        .await
        .expect_err("invalid filter accepted");
    let created = endpoint_with_filter(&client, &receiver, "data.level >= 0.5")
        .await
        .expect("create");
    let update = UpdateEndpoint {
        filter: Some("data.level => 0.5".to_owned()),
        ..UpdateEndpoint::default()
    };
    let update_error = client
        .update_endpoint(&created.endpoint.id, &update)
        .await
        .expect_err("invalid filter accepted on update");
    let kept = client
        .get_endpoint(&created.endpoint.id)
        .await
        .expect("get");

    assert_eq!(error.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert!(error.to_string().contains("column 14"), "{error}");
    assert!(error.to_string().contains("expected a value"), "{error}");
    assert_eq!(
        update_error.status(),
        Some(StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert_eq!(kept.filter.as_deref(), Some("data.level >= 0.5"));
}

#[tokio::test]
async fn duplicate_rule_is_rejected() {
    let daemon = DaemonProcess::start().await;
    let client = daemon.client();
    add_rule(&client, RuleScope::Team, Some("billing-emea"), None, 80.0).await;
    let again = CreateRule {
        scope: RuleScope::Team,
        scope_id: Some("billing-emea".to_owned()),
        criterion: None,
        min_score: 70.0,
    };

    let error = client
        .create_rule(&again)
        .await
        .expect_err("duplicate rule accepted");
    let rules = client.list_rules().await.expect("list rules");

    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    assert!(error.to_string().contains(rules[0].id.as_str()), "{error}");
    assert_eq!(rules.len(), 1);
}
