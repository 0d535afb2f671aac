//! A one-glance summary of an event for chat and paging tools: a title, a sentence, the facts
//! that matter for its type, and a severity.

use serde_json::Value;

/// How urgent an event is, in PagerDuty's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// A card colour as hex RGB.
    pub(crate) fn colour(self) -> &'static str {
        match self {
            Severity::Info => "2EB67D",
            Severity::Warning => "ECB22E",
            Severity::Error => "E01E5A",
            Severity::Critical => "8B0000",
        }
    }
}

/// What every format shows of an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) title: String,
    pub(crate) text: String,
    pub(crate) facts: Vec<(&'static str, String)>,
    pub(crate) severity: Severity,
    /// The conversation or alert the event is about, for de-duplication keys.
    pub(crate) subject: String,
}

fn text(data: &Value, key: &str) -> Option<String> {
    match data.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn number(data: &Value, key: &str) -> Option<f64> {
    data.get(key).and_then(Value::as_f64)
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// Summarizes an event from its type and `data`.
pub(crate) fn summarize(event_type: &str, data: &Value) -> Summary {
    let conversation = or_dash(text(data, "conversation_id"));
    let mut facts = vec![("Conversation", conversation.clone())];
    let push_optional = |facts: &mut Vec<(&'static str, String)>, name, key| {
        if let Some(value) = text(data, key) {
            facts.push((name, value));
        }
    };
    let (title, sentence, severity, subject) = match event_type {
        "evaluation.completed" => {
            let score = or_dash(text(data, "score"));
            facts.push(("Score", score.clone()));
            push_optional(&mut facts, "Agent", "agent");
            push_optional(&mut facts, "Team", "team");
            push_optional(&mut facts, "Brand", "brand");
            (
                "Evaluation completed".to_owned(),
                format!("Conversation {conversation} scored {score}"),
                Severity::Info,
                conversation.clone(),
            )
        }
        "conversation.imported" => {
            let source = or_dash(text(data, "connector").or_else(|| text(data, "source")));
            facts.push(("Source", source.clone()));
            push_optional(&mut facts, "Channel", "channel");
            (
                "Conversation imported".to_owned(),
                format!("Conversation {conversation} imported from {source}"),
                Severity::Info,
                conversation.clone(),
            )
        }
        "score.threshold_breached" => {
            let criterion = text(data, "criterion").unwrap_or_else(|| "overall score".to_owned());
            let score = number(data, "score").unwrap_or(0.0);
            let threshold = number(data, "threshold").unwrap_or(0.0);
            let scope = format!(
                "{} {}",
                or_dash(text(data, "scope")),
                or_dash(text(data, "scope_id"))
            );
            facts.push(("Criterion", criterion.clone()));
            facts.push(("Score", format!("{score} (threshold {threshold})")));
            facts.push(("Scope", scope.clone()));
            let severity = if score < threshold - 20.0 {
                Severity::Error
            } else {
                Severity::Warning
            };
            (
                "Score below threshold".to_owned(),
                format!(
                    "{criterion} scored {score}, below {threshold}, for {scope} in conversation {conversation}"
                ),
                severity,
                conversation.clone(),
            )
        }
        "csat.received" => {
            let rating = number(data, "rating").unwrap_or(0.0);
            let scale = number(data, "scale_max").unwrap_or(5.0);
            facts.push(("Rating", format!("{rating}/{scale}")));
            push_optional(&mut facts, "Comment", "comment");
            let severity = if rating <= scale * 0.4 {
                Severity::Warning
            } else {
                Severity::Info
            };
            (
                "CSAT received".to_owned(),
                format!("Conversation {conversation} rated {rating}/{scale}"),
                severity,
                conversation.clone(),
            )
        }
        "sentiment.analyzed" => {
            let start = or_dash(text(data, "start"));
            let end = or_dash(text(data, "end"));
            facts.push(("Sentiment", format!("{start} → {end}")));
            (
                "Sentiment analyzed".to_owned(),
                format!("Sentiment of conversation {conversation} moved from {start} to {end}"),
                Severity::Info,
                conversation.clone(),
            )
        }
        "smart_alert.created" => {
            let kind = or_dash(text(data, "kind"));
            let summary = or_dash(text(data, "summary"));
            let alert = or_dash(text(data, "alert_id"));
            facts = vec![("Alert", alert.clone()), ("Kind", kind.clone())];
            push_optional(&mut facts, "Metric", "metric");
            let severity = if kind == "volume_spike" {
                Severity::Warning
            } else {
                Severity::Error
            };
            (format!("Smart alert: {kind}"), summary, severity, alert)
        }
        "frustration.detected" => {
            let level = number(data, "level").unwrap_or(0.0);
            let threshold = or_dash(text(data, "threshold"));
            facts.push(("Level", format!("{level} (threshold {threshold})")));
            push_optional(&mut facts, "Agent", "agent");
            push_optional(&mut facts, "Turn", "turn");
            let severity = if level >= 0.9 {
                Severity::Critical
            } else {
                Severity::Error
            };
            (
                "Customer frustration".to_owned(),
                format!("Frustration reached {level} in conversation {conversation}"),
                severity,
                conversation.clone(),
            )
        }
        other => (
            other.to_owned(),
            format!("{other} for conversation {conversation}"),
            Severity::Info,
            conversation.clone(),
        ),
    };
    Summary {
        title,
        text: sentence,
        facts,
        severity,
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use belter_common::samples::sample_body;
    use belter_common::EventType;

    fn sample(kind: EventType) -> Summary {
        let body: Value = serde_json::from_str(sample_body(kind)).unwrap();
        summarize(kind.as_str(), &body["data"])
    }

    #[test]
    fn frustration_names_conversation_agent_and_level() {
        let summary = sample(EventType::FrustrationDetected);
        assert_eq!(summary.title, "Customer frustration");
        assert!(summary.text.contains("conv_84310"), "{}", summary.text);
        assert!(summary.text.contains("0.87"), "{}", summary.text);
        assert!(summary.facts.contains(&("Agent", "agent_2034".to_owned())));
        assert_eq!(summary.severity, Severity::Error);
    }

    #[test]
    fn every_type_has_a_subject() {
        for kind in EventType::ALL {
            let summary = sample(kind);
            assert_ne!(summary.subject, "-", "{kind}");
            assert!(!summary.text.is_empty(), "{kind}");
        }
        assert_eq!(sample(EventType::SmartAlertCreated).subject, "alrt_2291");
    }

    #[test]
    fn breach_severity_follows_distance() {
        let summary = sample(EventType::ScoreThresholdBreached);
        assert_eq!(summary.severity, Severity::Error, "41 is far below 70");
        assert!(summary.text.contains("disclosure"), "{}", summary.text);
    }
}
