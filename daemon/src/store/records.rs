//! The records as stored, with plain fields so the encoding stays compact, and their conversion
//! to the API records of `belter_common`.

use belter_common::records::{
    Attempt, AttemptTrigger, Delivery, DeliveryStatus, EndpointState, EventSelection, FailureKind,
};
use belter_common::{DeliveryId, EndpointId, EventId, EventType, Timestamp};
use serde::{Deserialize, Serialize};

use super::Completion;
use crate::codec::{decode_body, decode_body_borrowed, CodecError, Record, FIRST_VERSION};

/// One accepted event: its exact delivery body and the deliveries made from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    /// Store code of the event type.
    pub(crate) event_type: u8,
    /// Acceptance time in ms since the epoch.
    pub(crate) created_at: u64,
    /// The body sent to receivers, byte for byte.
    #[serde(with = "byte_string")]
    pub(crate) body: Vec<u8>,
    /// Ids of the deliveries made at ingest.
    pub(crate) deliveries: Vec<String>,
    /// For a derived event: the rule id and the id of the event it was derived from.
    pub(crate) derived_from: Option<(String, String)>,
}

impl Record for EventRecord {
    fn encoded_size_hint(&self) -> usize {
        let deliveries: usize = self.deliveries.iter().map(|id| id.len() + 1).sum();
        32 + self.body.len() + deliveries
    }
}

/// Encodes a byte vector as one byte string instead of a sequence of single bytes. bincode
/// writes both as the length and the bytes, so the stored layout is the same, but this one is
/// copied whole instead of byte by byte.
mod byte_string {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

impl EventRecord {
    /// Finds the body in a stored event without copying it: its range of `bytes`. In the current
    /// layout the body is the third field, and bincode decodes fields in order, so the delivery
    /// ids after it are not read. `None` for an older layout, which the caller decodes whole.
    pub(crate) fn body_range(bytes: &[u8]) -> Result<Option<std::ops::Range<usize>>, CodecError> {
        match bytes.split_first() {
            Some((&version, rest)) if version == Self::VERSION => {
                let (_event_type, _created_at, body): (u8, u64, &[u8]) =
                    decode_body_borrowed(rest)?;
                let start = body.as_ptr() as usize - bytes.as_ptr() as usize;
                Ok(Some(start..start + body.len()))
            }
            _ => Ok(None),
        }
    }
}

/// One delivery: an event bound for one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    pub(crate) event_id: String,
    pub(crate) event_type: u8,
    pub(crate) endpoint_id: String,
    pub(crate) target_url: String,
    pub(crate) status: DeliveryStatus,
    /// Attempts made, replays included.
    pub(crate) attempt_count: u32,
    /// Attempts made by the schedule (first and retries), which decide when to give up.
    pub(crate) scheduled_attempts: u32,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    /// Due time of the next attempt while the delivery waits in the due index.
    pub(crate) next_attempt_at: Option<u64>,
    /// The trigger of the next attempt.
    pub(crate) next_trigger: AttemptTrigger,
    pub(crate) last_status_code: Option<u16>,
    pub(crate) last_failure: Option<FailureKind>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_latency_ms: Option<u64>,
    /// The latest attempt. The next attempt's outcome moves it to the attempts tree, so that
    /// each outcome writes one record instead of two. It is boxed because queued work, which
    /// carries none, moves records several times. serde encodes a box as its contents, so the
    /// stored bytes are the same.
    pub(crate) latest_attempt: Option<Box<AttemptRecord>>,
}

impl Record for DeliveryRecord {
    /// Version 2 added `latest_attempt`.
    const VERSION: u8 = 2;

    fn encoded_size_hint(&self) -> usize {
        let text = |value: &Option<String>| value.as_ref().map_or(0, String::len);
        let attempt = self.latest_attempt.as_ref().map_or(0, |attempt| {
            let standard = attempt.standard_signature.as_ref();
            64 + text(&attempt.error)
                + text(&attempt.response_body)
                + attempt.signature.len()
                + standard.map_or(0, |(_, signature)| signature.len())
        });
        64 + self.event_id.len()
            + self.endpoint_id.len()
            + self.target_url.len()
            + text(&self.last_error)
            + attempt
    }

    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        if version != FIRST_VERSION {
            return Err(CodecError::Version {
                found: version,
                expected: Self::VERSION,
            });
        }
        Ok(decode_body::<DeliveryRecordV1>(body)?.into())
    }
}

/// A delivery record of format version 1, whose attempts are all in the attempts tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryRecordV1 {
    pub(crate) event_id: String,
    pub(crate) event_type: u8,
    pub(crate) endpoint_id: String,
    pub(crate) target_url: String,
    pub(crate) status: DeliveryStatus,
    pub(crate) attempt_count: u32,
    pub(crate) scheduled_attempts: u32,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) next_attempt_at: Option<u64>,
    pub(crate) next_trigger: AttemptTrigger,
    pub(crate) last_status_code: Option<u16>,
    pub(crate) last_failure: Option<FailureKind>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_latency_ms: Option<u64>,
}

impl From<DeliveryRecordV1> for DeliveryRecord {
    fn from(old: DeliveryRecordV1) -> Self {
        Self {
            event_id: old.event_id,
            event_type: old.event_type,
            endpoint_id: old.endpoint_id,
            target_url: old.target_url,
            status: old.status,
            attempt_count: old.attempt_count,
            scheduled_attempts: old.scheduled_attempts,
            created_at: old.created_at,
            updated_at: old.updated_at,
            next_attempt_at: old.next_attempt_at,
            next_trigger: old.next_trigger,
            last_status_code: old.last_status_code,
            last_failure: old.last_failure,
            last_error: old.last_error,
            last_latency_ms: old.last_latency_ms,
            latest_attempt: None,
        }
    }
}

impl DeliveryRecord {
    /// The event type, falling back to `evaluation.completed` for an unknown code.
    pub(crate) fn kind(&self) -> EventType {
        EventType::from_code(self.event_type).unwrap_or(EventType::EvaluationCompleted)
    }

    /// Applies an attempt and what follows it, at `now_ms`, and keeps the attempt as the
    /// latest. Returns the attempt it replaces, which belongs in the attempts tree.
    pub(crate) fn after_attempt(
        &mut self,
        attempt: AttemptRecord,
        completion: Completion,
        now_ms: u64,
    ) -> Option<AttemptRecord> {
        self.attempt_count = self.attempt_count.max(attempt.number);
        if attempt.trigger != AttemptTrigger::Replay {
            self.scheduled_attempts += 1;
        }
        self.updated_at = now_ms;
        self.last_status_code = attempt.status_code;
        self.last_failure = attempt.failure;
        self.last_error.clone_from(&attempt.error);
        self.last_latency_ms = Some(attempt.latency_ms);
        match completion {
            Completion::RetryAt(due_ms) => {
                self.status = DeliveryStatus::Pending;
                self.next_attempt_at = Some(due_ms);
                self.next_trigger = AttemptTrigger::Retry;
            }
            Completion::Final(status) => {
                self.status = status;
                self.next_attempt_at = None;
            }
        }
        self.latest_attempt
            .replace(Box::new(attempt))
            .map(|old| *old)
    }

    /// Converts to the API view. A pending delivery of a paused endpoint shows as `paused`.
    pub(crate) fn to_api(&self, id: &DeliveryId, endpoint_paused: bool) -> Delivery {
        let status = if self.status == DeliveryStatus::Pending && endpoint_paused {
            DeliveryStatus::Paused
        } else {
            self.status
        };
        Delivery {
            id: id.clone(),
            event_id: EventId::parse(&self.event_id).unwrap_or_else(|_| EventId::generate()),
            event_type: self.kind(),
            endpoint_id: EndpointId::parse(&self.endpoint_id)
                .unwrap_or_else(|_| EndpointId::generate()),
            target_url: self.target_url.clone(),
            status,
            attempt_count: self.attempt_count,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            next_attempt_at: self.next_attempt_at.map(Timestamp::from_millis),
            last_status_code: self.last_status_code,
            last_failure: self.last_failure,
            last_error: self.last_error.clone(),
            last_latency_ms: self.last_latency_ms,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    pub(crate) number: u32,
    pub(crate) trigger: AttemptTrigger,
    pub(crate) started_at: u64,
    pub(crate) latency_ms: u64,
    pub(crate) succeeded: bool,
    pub(crate) status_code: Option<u16>,
    pub(crate) failure: Option<FailureKind>,
    pub(crate) error: Option<String>,
    pub(crate) response_body: Option<String>,
    pub(crate) signature: String,
    /// The Standard Webhooks timestamp and signature, for endpoints that send them.
    pub(crate) standard_signature: Option<(u64, String)>,
}

impl AttemptRecord {
    /// The API view.
    pub(crate) fn to_api(&self) -> Attempt {
        Attempt {
            number: self.number,
            trigger: self.trigger,
            started_at: Timestamp::from_millis(self.started_at),
            latency_ms: self.latency_ms,
            succeeded: self.succeeded,
            status_code: self.status_code,
            failure: self.failure,
            error: self.error.clone(),
            response_body: self.response_body.clone(),
            signature: self.signature.clone(),
        }
    }
}

impl Record for AttemptRecord {}

/// A subscribed endpoint with its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub(crate) url: String,
    /// Store codes of the selected event types; empty selects every type.
    pub(crate) event_types: Vec<u8>,
    pub(crate) description: String,
    pub(crate) paused: bool,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) secret: String,
    /// Earlier secrets that still sign deliveries, each with the end of its grace period (ms).
    pub(crate) previous_secrets: Vec<(String, u64)>,
    /// Start of the current run of failed attempts (ms), cleared by a success.
    pub(crate) failing_since: Option<u64>,
    /// The reason the daemon paused the endpoint by itself, if it did.
    pub(crate) paused_reason: Option<String>,
    /// The payload filter's text, checked when it was set.
    pub(crate) filter: Option<String>,
    /// The body format of deliveries.
    pub(crate) format: belter_common::records::DeliveryFormat,
    /// The PagerDuty routing key, for the `pagerduty` format.
    pub(crate) routing_key: Option<String>,
    /// Whether deliveries carry the Standard Webhooks headers.
    pub(crate) standard_webhooks: bool,
}

impl Record for EndpointRecord {}

/// A threshold rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RuleRecord {
    pub(crate) scope: belter_common::rules::RuleScope,
    pub(crate) scope_id: Option<String>,
    pub(crate) criterion: Option<String>,
    pub(crate) min_score: f64,
    pub(crate) created_at: u64,
}

impl Record for RuleRecord {}

impl EndpointRecord {
    /// Lists the secrets that sign a delivery at `now_ms`: the current one first, then earlier ones
    /// still within their grace period.
    pub(crate) fn signing_secrets(&self, now_ms: u64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        for (secret, valid_until) in &self.previous_secrets {
            if *valid_until > now_ms {
                secrets.push(secret.as_str());
            }
        }
        secrets
    }

    /// Returns the end of the latest grace period still running at `now_ms`.
    pub(crate) fn previous_valid_until(&self, now_ms: u64) -> Option<u64> {
        self.previous_secrets
            .iter()
            .map(|(_, valid_until)| *valid_until)
            .filter(|valid_until| *valid_until > now_ms)
            .max()
    }

    /// The event selection.
    pub(crate) fn selection(&self) -> EventSelection {
        if self.event_types.is_empty() {
            return EventSelection::All;
        }
        EventSelection::Only(
            self.event_types
                .iter()
                .filter_map(|code| EventType::from_code(*code))
                .collect(),
        )
    }

    /// Stores a selection as type codes.
    pub(crate) fn set_selection(&mut self, selection: &EventSelection) {
        self.event_types = match selection {
            EventSelection::All => Vec::new(),
            EventSelection::Only(kinds) => kinds.iter().map(|kind| kind.code()).collect(),
        };
    }

    /// The state as the API shows it.
    pub(crate) fn state(&self) -> EndpointState {
        if self.paused {
            EndpointState::Paused
        } else {
            EndpointState::Active
        }
    }
}

/// The first response to an ingest request with an idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyRecord {
    pub(crate) created_at: u64,
    /// The JSON body of the first 202 response.
    pub(crate) response: Vec<u8>,
    /// SHA-256 of the first request body, to tell a retry from a different event.
    pub(crate) fingerprint: Vec<u8>,
}

impl Record for IdempotencyRecord {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    /// The event layout as written before the body was encoded as a byte string.
    #[derive(Serialize, Deserialize)]
    struct EventBeforeByteString {
        event_type: u8,
        created_at: u64,
        body: Vec<u8>,
        deliveries: Vec<String>,
        derived_from: Option<(String, String)>,
    }

    impl Record for EventBeforeByteString {}

    #[test]
    fn event_body_layout_is_unchanged() {
        let body: Vec<u8> = (0..=255u8).cycle().take(1_000).collect();
        let event = EventRecord {
            event_type: 3,
            created_at: 1_780_000_000_000,
            body: body.clone(),
            deliveries: vec!["del_a".to_owned(), "del_b".to_owned()],
            derived_from: Some(("rule_1".to_owned(), "evt_1".to_owned())),
        };
        let before = EventBeforeByteString {
            event_type: event.event_type,
            created_at: event.created_at,
            body: body.clone(),
            deliveries: event.deliveries.clone(),
            derived_from: event.derived_from.clone(),
        };
        let bytes = encode(&event).unwrap();
        assert_eq!(bytes, encode(&before).unwrap());

        let read: EventRecord = decode(&bytes).unwrap();
        assert_eq!(read.body, body);
        assert_eq!(read.deliveries, event.deliveries);
        assert_eq!(read.derived_from, event.derived_from);
        let range = EventRecord::body_range(&bytes).unwrap().unwrap();
        assert_eq!(&bytes[range], body.as_slice());

        let plain: EventBeforeByteString = decode(&bytes).unwrap();
        assert_eq!(plain.body, body);
    }
}
