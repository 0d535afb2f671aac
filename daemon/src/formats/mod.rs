//! Delivery formats: the raw Belter body, or a body shaped for Slack incoming webhooks, the
//! PagerDuty Events API v2, or a Microsoft Teams message card. Each formatted body is derived
//! from the stored event alone, so every retry and replay sends the same bytes.

mod summary;

use belter_common::records::DeliveryFormat;
use serde_json::{json, Value};

use summary::{summarize, Summary};

/// Maximum summary length PagerDuty accepts, in characters.
const PAGERDUTY_SUMMARY_MAX: usize = 1_024;
/// Most fields Slack shows in one section block.
const SLACK_MAX_FIELDS: usize = 10;
/// Text the delivery detail shows in place of a PagerDuty routing key.
pub(crate) const MASKED_ROUTING_KEY: &str = "[routing key hidden]";
/// The `source` and footer name of formatted messages.
const SOURCE: &str = "belter";

/// Builds the body sent to an endpoint of `format` from the stored event body. The raw format
/// returns the stored bytes unchanged; a stored body that is not JSON is sent raw as well.
pub(crate) fn render(format: DeliveryFormat, stored: &[u8], routing_key: Option<&str>) -> Vec<u8> {
    if format == DeliveryFormat::Raw {
        return stored.to_vec();
    }
    // The parser of ingest, so that a key such as serde_json's private raw-value token stays
    // an ordinary key here too. An event stored before ingest rejected repeated keys falls back
    // to serde_json, which keeps the last value.
    let parsed = std::str::from_utf8(stored)
        .ok()
        .and_then(|text| belter_common::unique_keys::parse(text, "event").ok())
        .or_else(|| serde_json::from_slice::<Value>(stored).ok());
    let Some(event) = parsed else {
        return stored.to_vec();
    };
    let event_type = event["event"].as_str().unwrap_or_default();
    let summary = summarize(event_type, &event["data"]);
    let body = match format {
        DeliveryFormat::Raw => return stored.to_vec(),
        DeliveryFormat::Slack => slack(&event, &summary),
        DeliveryFormat::Pagerduty => pagerduty(&event, &summary, routing_key.unwrap_or_default()),
        DeliveryFormat::Teams => teams(&event, &summary),
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| stored.to_vec())
}

fn footer(event: &Value) -> String {
    format!(
        "{SOURCE} · {} · {}",
        event["id"].as_str().unwrap_or_default(),
        event["created_at"].as_str().unwrap_or_default()
    )
}

/// Escapes `&`, `<` and `>` in customer text, so in Slack's mrkdwn `<!channel>` or
/// `<url|label>` cannot notify a channel or disguise a link, and in a Teams card no HTML tag can.
fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(event: &Value, summary: &Summary) -> Value {
    let fields: Vec<Value> = summary
        .facts
        .iter()
        .take(SLACK_MAX_FIELDS)
        .map(|(name, value)| {
            json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape_markup(value))})
        })
        .collect();
    json!({
        "text": escape_markup(&format!("{}: {}", summary.title, summary.text)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": summary.title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": escape_markup(&summary.text)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer(event)}]},
        ]
    })
}

fn pagerduty(event: &Value, summary: &Summary, routing_key: &str) -> Value {
    let event_type = event["event"].as_str().unwrap_or_default();
    let data = &event["data"];
    let group = data
        .get("team")
        .or_else(|| data.get("brand"))
        .and_then(Value::as_str)
        .unwrap_or(SOURCE);
    let short: String = summary.text.chars().take(PAGERDUTY_SUMMARY_MAX).collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        // One incident per conversation or alert and event type, so repeats and retries merge.
        "dedup_key": format!("{SOURCE}:{event_type}:{}", summary.subject),
        "payload": {
            "summary": short,
            "severity": summary.severity.as_str(),
            "source": SOURCE,
            "component": event_type,
            "group": group,
            "class": event_type,
            "timestamp": event["created_at"],
            "custom_details": event,
        }
    })
}

fn teams(event: &Value, summary: &Summary) -> Value {
    let facts: Vec<Value> = summary
        .facts
        .iter()
        .map(|(name, value)| json!({"name": name, "value": escape_markup(value)}))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": summary.text,
        "themeColor": summary.severity.colour(),
        "title": summary.title,
        "sections": [{
            "activityTitle": escape_markup(&summary.text),
            "activitySubtitle": footer(event),
            "facts": facts,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use belter_common::samples::sample_body;
    use belter_common::EventType;

    fn stored(kind: EventType) -> Vec<u8> {
        let body: Value = serde_json::from_str(sample_body(kind)).unwrap();
        let stored = json!({
            "id": "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "event": kind.as_str(),
            "created_at": "2026-12-03T14:32:08Z",
            "data": body["data"],
        });
        serde_json::to_vec(&stored).unwrap()
    }

    fn rendered(format: DeliveryFormat, kind: EventType) -> Value {
        serde_json::from_slice(&render(format, &stored(kind), Some("R0UT1NG"))).unwrap()
    }

    #[test]
    fn raw_value_token_stays_a_key() {
        let body = br#"{"id":"evt_1","event":"csat.received","created_at":"2026-12-03T14:32:08Z","data":{"conversation_id":"c1","rating":4,"via":"api","n":{"$serde_json::private::RawValue":"{\"injected\":true}"}}}"#;
        // serde_json's own parser would read the token again, so the bytes are checked.
        let message =
            String::from_utf8(render(DeliveryFormat::Pagerduty, body, Some("R0UT1NG"))).unwrap();
        assert!(
            message.contains(r#""n":{"$serde_json::private::RawValue":"{\"injected\":true}"}"#),
            "{message}"
        );
    }

    #[test]
    fn raw_is_unchanged() {
        let body = stored(EventType::CsatReceived);
        assert_eq!(render(DeliveryFormat::Raw, &body, None), body);
    }

    #[test]
    fn slack_has_text_and_blocks() {
        let message = rendered(DeliveryFormat::Slack, EventType::FrustrationDetected);
        let text = message["text"].as_str().unwrap();
        assert!(text.contains("conv_84310"), "{text}");
        assert_eq!(message["blocks"][0]["type"], "header");
        let fields = message["blocks"][2]["fields"].as_array().unwrap();
        assert!(fields
            .iter()
            .any(|field| field["text"] == "*Agent*\nagent_2034"));
    }

    #[test]
    fn slack_escapes_customer_text() {
        let body = json!({
            "id": "evt_1",
            "event": "csat.received",
            "created_at": "2026-12-03T14:32:08Z",
            "data": {"conversation_id": "c1", "rating": 1, "via": "api",
                     "comment": "<!channel> <https://evil.example|Open>"},
        });
        let stored = serde_json::to_vec(&body).unwrap();
        let message = String::from_utf8(render(DeliveryFormat::Slack, &stored, None)).unwrap();
        assert!(!message.contains("<!channel>"), "{message}");
        assert!(message.contains("&lt;!channel&gt;"), "{message}");
    }

    #[test]
    fn pagerduty_is_an_enqueue_body() {
        let body = rendered(DeliveryFormat::Pagerduty, EventType::SmartAlertCreated);
        assert_eq!(body["routing_key"], "R0UT1NG");
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "belter:smart_alert.created:alrt_2291");
        assert_eq!(body["payload"]["source"], "belter");
        assert_eq!(body["payload"]["severity"], "error");
        assert_eq!(
            body["payload"]["custom_details"]["data"]["alert_id"],
            "alrt_2291"
        );
        for kind in EventType::ALL {
            let body = rendered(DeliveryFormat::Pagerduty, kind);
            let severity = body["payload"]["severity"].as_str().unwrap();
            assert!(
                ["info", "warning", "error", "critical"].contains(&severity),
                "{kind}: {severity}"
            );
        }
    }

    #[test]
    fn teams_is_a_message_card() {
        let card = rendered(DeliveryFormat::Teams, EventType::ScoreThresholdBreached);
        assert_eq!(card["@type"], "MessageCard");
        assert_eq!(card["title"], "Score below threshold");
        let facts = card["sections"][0]["facts"].as_array().unwrap();
        assert!(facts.iter().any(|fact| fact["name"] == "Criterion"));
    }

    #[test]
    fn same_event_renders_same_bytes() {
        let body = stored(EventType::EvaluationCompleted);
        let first = render(DeliveryFormat::Slack, &body, None);
        let second = render(DeliveryFormat::Slack, &body, None);
        assert_eq!(first, second);
    }
}
