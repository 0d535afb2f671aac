//! One realistic ingest body (`{"event": ..., "data": ...}`) of each event type, for the demo,
//! the tests and the documentation.

use crate::event_type::EventType;

/// The sample ingest body of an event type, as a service would post it.
pub fn sample_body(kind: EventType) -> &'static str {
    match kind {
        EventType::EvaluationCompleted => include_str!("../samples/evaluation.completed.json"),
        EventType::ConversationImported => include_str!("../samples/conversation.imported.json"),
        EventType::ScoreThresholdBreached => {
            include_str!("../samples/score.threshold_breached.json")
        }
        EventType::CsatReceived => include_str!("../samples/csat.received.json"),
        EventType::SentimentAnalyzed => include_str!("../samples/sentiment.analyzed.json"),
        EventType::SmartAlertCreated => include_str!("../samples/smart_alert.created.json"),
        EventType::FrustrationDetected => include_str!("../samples/frustration.detected.json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::validate;

    #[test]
    fn every_sample_is_valid() {
        for kind in EventType::ALL {
            let body: serde_json::Value = serde_json::from_str(sample_body(kind)).unwrap();
            assert_eq!(body["event"], kind.as_str());
            assert_eq!(validate(kind, &body["data"]), Ok(()), "{kind}");
        }
    }
}
