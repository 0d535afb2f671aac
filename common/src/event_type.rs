//! The seven event types that services post and endpoints subscribe to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the documented event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum EventType {
    /// A conversation was scored against a rubric.
    EvaluationCompleted,
    /// A conversation arrived from a connector or the REST API.
    ConversationImported,
    /// A score fell below a configured threshold.
    ScoreThresholdBreached,
    /// A customer satisfaction rating arrived.
    CsatReceived,
    /// The sentiment arc of a conversation was analyzed.
    SentimentAnalyzed,
    /// A smart alert fired on a trend across conversations.
    SmartAlertCreated,
    /// Customer frustration rose above a threshold within a conversation.
    FrustrationDetected,
}

/// A name that is not one of the event types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}: expected one of {list}", list = EventType::names().join(", "))]
pub struct UnknownEventType(pub String);

impl EventType {
    /// Every event type, in documentation order.
    pub const ALL: [EventType; 7] = [
        EventType::EvaluationCompleted,
        EventType::ConversationImported,
        EventType::ScoreThresholdBreached,
        EventType::CsatReceived,
        EventType::SentimentAnalyzed,
        EventType::SmartAlertCreated,
        EventType::FrustrationDetected,
    ];

    /// The wire name, such as `csat.received`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::EvaluationCompleted => "evaluation.completed",
            EventType::ConversationImported => "conversation.imported",
            EventType::ScoreThresholdBreached => "score.threshold_breached",
            EventType::CsatReceived => "csat.received",
            EventType::SentimentAnalyzed => "sentiment.analyzed",
            EventType::SmartAlertCreated => "smart_alert.created",
            EventType::FrustrationDetected => "frustration.detected",
        }
    }

    /// The wire names of all event types.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|kind| kind.as_str()).collect()
    }

    /// A one-line description for listings.
    pub const fn description(self) -> &'static str {
        match self {
            EventType::EvaluationCompleted => "A conversation was scored against a rubric.",
            EventType::ConversationImported => {
                "A conversation arrived from a connector or the REST API."
            }
            EventType::ScoreThresholdBreached => "A score fell below a configured threshold.",
            EventType::CsatReceived => "A customer satisfaction rating arrived.",
            EventType::SentimentAnalyzed => "The sentiment arc of a conversation was analyzed.",
            EventType::SmartAlertCreated => "A smart alert fired on a trend across conversations.",
            EventType::FrustrationDetected => {
                "Customer frustration rose above a threshold within a conversation."
            }
        }
    }

    /// A stable one-byte code for the store.
    pub const fn code(self) -> u8 {
        match self {
            EventType::EvaluationCompleted => 1,
            EventType::ConversationImported => 2,
            EventType::ScoreThresholdBreached => 3,
            EventType::CsatReceived => 4,
            EventType::SentimentAnalyzed => 5,
            EventType::SmartAlertCreated => 6,
            EventType::FrustrationDetected => 7,
        }
    }

    /// The event type with the given store code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownEventType(name.chars().take(64).collect()))
    }
}

impl TryFrom<String> for EventType {
    type Error = UnknownEventType;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<EventType> for &'static str {
    fn from(kind: EventType) -> &'static str {
        kind.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(kind));
            assert_eq!(EventType::from_code(kind.code()), Some(kind));
        }
    }

    #[test]
    fn unknown_name_lists_choices() {
        let error = "csat.recieved".parse::<EventType>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"csat.recieved\""), "{message}");
        assert!(message.contains("csat.received"), "{message}");
    }
}
