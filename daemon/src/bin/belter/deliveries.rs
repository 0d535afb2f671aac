//! `belter deliveries …`: list the delivery log page by page and show one delivery in full.

use belter_common::api::{DeliveryPage, DeliveryQuery};
use belter_common::client::ControlClient;
use belter_common::records::{Attempt, AttemptTrigger, Delivery, DeliveryDetail};
use belter_common::Timestamp;

use crate::cli::{DeliveriesCommand, ListDeliveriesArgs};
use crate::output::{print_json, print_text};
use crate::pretty_json::indent_json;
use crate::table::{render_fields, truncate, Table};
use crate::times::format_age;

/// Maximum length of the error or response excerpt in the attempts table, in characters.
const MAX_ATTEMPT_NOTE_CHARS: usize = 72;

/// Runs one `deliveries` subcommand.
pub(crate) async fn run(
    client: &ControlClient,
    json: bool,
    command: DeliveriesCommand,
) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List(args) => list(client, json, args).await,
        DeliveriesCommand::Show(args) => {
            let detail = client.get_delivery(&args.id).await?;
            if json {
                return print_json(&detail);
            }
            print_text(&render_detail(&detail, Timestamp::now()))
        }
    }
}

async fn list(client: &ControlClient, json: bool, args: ListDeliveriesArgs) -> anyhow::Result<()> {
    let mut query = DeliveryQuery::from_filter(args.filter.to_filter(), args.limit);
    query.cursor = args.cursor;
    let page = client.list_deliveries(&query).await?;
    if json {
        return print_json(&page);
    }
    print_text(&render_page(&page, Timestamp::now()))?;
    if let Some(cursor) = &page.next_cursor {
        // The hint goes to standard error so that the table alone can be piped.
        eprintln!("more deliveries: repeat the command with --cursor {cursor}");
    }
    Ok(())
}

fn trigger_label(trigger: AttemptTrigger) -> &'static str {
    match trigger {
        AttemptTrigger::First => "first",
        AttemptTrigger::Retry => "retry",
        AttemptTrigger::Replay => "replay",
    }
}

/// Says when the next attempt is due: `in 30s`, or `due 2m ago` for one that waits past its
/// time, such as on a paused endpoint.
fn next_attempt_label(delivery: &Delivery, now: Timestamp) -> String {
    match delivery.next_attempt_at {
        Some(moment) if moment > now => format_age(moment, now),
        Some(moment) => format!("due {}", format_age(moment, now)),
        None => "-".to_owned(),
    }
}

/// Returns the latest attempt's result, or `-` before the first attempt instead of repeating
/// the STATUS column.
fn last_result_label(delivery: &Delivery) -> String {
    let untried = delivery.attempt_count == 0
        && delivery.last_status_code.is_none()
        && delivery.last_failure.is_none();
    if untried {
        "-".to_owned()
    } else {
        delivery.outcome_label()
    }
}

/// Renders the delivery table of `deliveries list`.
fn render_page(page: &DeliveryPage, now: Timestamp) -> String {
    if page.deliveries.is_empty() {
        return "no deliveries match\n".to_owned();
    }
    let mut table = Table::new(&[
        "ID", "CREATED", "EVENT", "STATUS", "ATTEMPTS", "LAST", "NEXT", "TARGET",
    ]);
    for delivery in &page.deliveries {
        table.push(vec![
            delivery.id.to_string(),
            format_age(delivery.created_at, now),
            delivery.event_type.to_string(),
            delivery.status.as_str().to_owned(),
            delivery.attempt_count.to_string(),
            last_result_label(delivery),
            next_attempt_label(delivery, now),
            delivery.target_url.clone(),
        ]);
    }
    table.render()
}

/// Renders the full view of `deliveries show`: summary, payload, request headers and attempts.
fn render_detail(detail: &DeliveryDetail, now: Timestamp) -> String {
    let delivery = &detail.delivery;
    let mut last_result = last_result_label(delivery);
    if let Some(error) = &delivery.last_error {
        last_result.push_str(&format!(": {error}"));
    }
    let derived_from = match &detail.derived_from {
        Some(origin) => format!("rule {} on event {}", origin.rule_id, origin.event_id),
        None => "-".to_owned(),
    };
    let mut output = render_fields(&[
        ("id", delivery.id.to_string()),
        ("event", delivery.event_type.to_string()),
        ("event id", delivery.event_id.to_string()),
        ("endpoint", delivery.endpoint_id.to_string()),
        ("target", delivery.target_url.clone()),
        ("status", delivery.status.as_str().to_owned()),
        ("attempts", delivery.attempt_count.to_string()),
        ("last result", last_result),
        ("next attempt", next_attempt_label(delivery, now)),
        (
            "created",
            format!(
                "{} ({})",
                delivery.created_at,
                format_age(delivery.created_at, now)
            ),
        ),
        ("updated", delivery.updated_at.to_string()),
        ("derived from", derived_from),
    ]);

    output.push_str("\nPayload:\n");
    output.push_str(&indent_json(detail.payload.get()));
    output.push('\n');

    output.push_str("\nRequest headers:\n");
    for header in &detail.request_headers {
        output.push_str(&format!("  {}: {}\n", header.name, header.value));
    }

    output.push_str("\nAttempts:\n");
    if detail.attempts.is_empty() {
        output.push_str("  none yet\n");
    } else {
        output.push_str(&render_attempts(&detail.attempts));
    }
    output
}

fn render_attempts(attempts: &[Attempt]) -> String {
    let mut table = Table::new(&["#", "TRIGGER", "STARTED", "LATENCY", "RESULT", "DETAIL"]);
    for attempt in attempts {
        let note = attempt
            .error
            .as_deref()
            .or(attempt.response_body.as_deref())
            .unwrap_or("");
        table.push(vec![
            attempt.number.to_string(),
            trigger_label(attempt.trigger).to_owned(),
            attempt.started_at.to_string(),
            format!("{}ms", attempt.latency_ms),
            attempt.status_label(),
            truncate(note, MAX_ATTEMPT_NOTE_CHARS),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use belter_common::records::{DeliveryStatus, FailureKind, Header};
    use belter_common::{DeliveryId, EndpointId, EventId, EventType};
    use serde_json::value::RawValue;

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_796_308_328_120);

    fn delivery(id: &str, status: DeliveryStatus) -> Delivery {
        Delivery {
            id: DeliveryId::parse(id).unwrap(),
            event_id: EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            event_type: EventType::CsatReceived,
            endpoint_id: EndpointId::parse("ep_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            target_url: "http://127.0.0.1:9000/hook".to_owned(),
            status,
            attempt_count: 0,
            created_at: NOW.minus_millis(90_000),
            updated_at: NOW.minus_millis(30_000),
            next_attempt_at: None,
            last_status_code: None,
            last_failure: None,
            last_error: None,
            last_latency_ms: None,
        }
    }

    fn attempt(number: u32, trigger: AttemptTrigger, status_code: Option<u16>) -> Attempt {
        Attempt {
            number,
            trigger,
            started_at: NOW.minus_millis(60_000),
            latency_ms: 12,
            succeeded: status_code.is_some_and(|code| (200..300).contains(&code)),
            status_code,
            failure: None,
            error: None,
            response_body: None,
            signature: "v1=00".to_owned(),
        }
    }

    #[test]
    fn page_shows_outcome_and_next_attempt() {
        let mut failed = delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAV", DeliveryStatus::Pending);
        failed.attempt_count = 2;
        failed.last_status_code = Some(503);
        failed.next_attempt_at = Some(NOW.plus_millis(30_000));
        let mut refused = delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAW", DeliveryStatus::Failed);
        refused.attempt_count = 6;
        refused.last_failure = Some(FailureKind::ConnectionRefused);
        let page = DeliveryPage {
            deliveries: vec![failed, refused],
            next_cursor: None,
        };
        let expected = "\
ID                              CREATED  EVENT          STATUS   ATTEMPTS  LAST     NEXT    TARGET
del_01ARZ3NDEKTSV4RRFFQ69G5FAV  1m ago   csat.received  pending  2         503      in 30s  http://127.0.0.1:9000/hook
del_01ARZ3NDEKTSV4RRFFQ69G5FAW  1m ago   csat.received  failed   6         refused  -       http://127.0.0.1:9000/hook
";
        assert_eq!(render_page(&page, NOW), expected);
    }

    #[test]
    fn untried_delivery_shows_due_time() {
        let mut waiting = delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAV", DeliveryStatus::Paused);
        waiting.next_attempt_at = Some(NOW.minus_millis(808));
        let page = DeliveryPage {
            deliveries: vec![waiting],
            next_cursor: None,
        };
        let expected = "\
ID                              CREATED  EVENT          STATUS  ATTEMPTS  LAST  NEXT           TARGET
del_01ARZ3NDEKTSV4RRFFQ69G5FAV  1m ago   csat.received  paused  0         -     due 808ms ago  http://127.0.0.1:9000/hook
";
        assert_eq!(render_page(&page, NOW), expected);
    }

    #[test]
    fn empty_page_says_so() {
        let page = DeliveryPage {
            deliveries: Vec::new(),
            next_cursor: None,
        };
        assert_eq!(render_page(&page, NOW), "no deliveries match\n");
    }

    #[test]
    fn detail_shows_payload_headers_and_attempts() {
        let mut summary = delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAV", DeliveryStatus::Succeeded);
        summary.attempt_count = 2;
        summary.last_status_code = Some(200);
        let mut first = attempt(1, AttemptTrigger::First, None);
        first.failure = Some(FailureKind::Timeout);
        first.error = Some("timed out after 15s".to_owned());
        let mut second = attempt(2, AttemptTrigger::Retry, Some(200));
        second.response_body = Some("ok\n".to_owned());
        let detail = DeliveryDetail {
            delivery: summary,
            payload: RawValue::from_string(
                r#"{"event":"csat.received","data":{"rating":4}}"#.to_owned(),
            )
            .unwrap(),
            request_headers: vec![Header {
                name: "x-belter-attempt".to_owned(),
                value: "2".to_owned(),
            }],
            attempts: vec![first, second],
            derived_from: None,
        };

        let output = render_detail(&detail, NOW);
        assert!(output.contains("status        succeeded\n"), "{output}");
        assert!(output.contains("last result   200\n"), "{output}");
        assert!(
            output.contains("Payload:\n{\n  \"event\": \"csat.received\",\n  \"data\": {\n    \"rating\": 4\n  }\n}\n"),
            "{output}"
        );
        assert!(
            output.contains("Request headers:\n  x-belter-attempt: 2\n"),
            "{output}"
        );
        assert!(
            output.contains(
                "1  first    2026-12-03T14:31:08.12Z  12ms     timeout  timed out after 15s\n"
            ),
            "{output}"
        );
        assert!(
            output.contains("2  retry    2026-12-03T14:31:08.12Z  12ms     200      ok\n"),
            "{output}"
        );
    }

    #[test]
    fn detail_without_attempts_says_none() {
        let detail = DeliveryDetail {
            delivery: delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAV", DeliveryStatus::Paused),
            payload: RawValue::from_string("{}".to_owned()).unwrap(),
            request_headers: Vec::new(),
            attempts: Vec::new(),
            derived_from: None,
        };
        let output = render_detail(&detail, NOW);
        assert!(output.contains("Attempts:\n  none yet\n"), "{output}");
    }

    #[test]
    fn last_error_follows_outcome() {
        let mut summary = delivery("del_01ARZ3NDEKTSV4RRFFQ69G5FAV", DeliveryStatus::Failed);
        summary.last_failure = Some(FailureKind::Dns);
        summary.last_error = Some("no such host".to_owned());
        let detail = DeliveryDetail {
            delivery: summary,
            payload: RawValue::from_string("{}".to_owned()).unwrap(),
            request_headers: Vec::new(),
            attempts: Vec::new(),
            derived_from: None,
        };
        let output = render_detail(&detail, NOW);
        assert!(
            output.contains("last result   DNS: no such host\n"),
            "{output}"
        );
    }
}
