//! The envelope of one ingest event: `event` and `data`, with `data` kept as raw text so it is
//! stored byte for byte. Any other top-level key is noted, so that ingest can reject it instead
//! of dropping a field that the sender expects belterd to use, such as its own event id.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The top-level keys of one event, each as raw JSON text.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub(crate) event: Option<&'a RawValue>,
    pub(crate) data: Option<&'a RawValue>,
    /// Read only to point a batch body sent to the single-event route at the batch route.
    pub(crate) events: Option<&'a RawValue>,
    /// The first top-level key other than `event`, `data` and `events`.
    pub(crate) unknown: Option<String>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object with \"event\" and \"data\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "event" => &mut envelope.event,
                "data" => &mut envelope.data,
                "events" => &mut envelope.events,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    envelope.unknown.get_or_insert_with(|| key.into_owned());
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "duplicate field `{key}`: send each key once"
                )));
            }
            *slot = Some(map.next_value::<&'de RawValue>()?);
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Envelope<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn known_keys_stay_raw() {
        let envelope = parse(r#"{"event": "csat.received", "data": {"a" : 1}}"#).unwrap();
        assert_eq!(
            envelope.event.map(RawValue::get),
            Some(r#""csat.received""#)
        );
        assert_eq!(envelope.data.map(RawValue::get), Some(r#"{"a" : 1}"#));
        assert!(envelope.events.is_none());
        assert!(envelope.unknown.is_none());
    }

    #[test]
    fn first_unknown_key_is_kept() {
        let envelope =
            parse(r#"{"id": "evt_1", "event": "csat.received", "created_at": 1, "data": {}}"#)
                .unwrap();
        assert_eq!(envelope.unknown.as_deref(), Some("id"));
        assert!(envelope.event.is_some());
        assert!(envelope.data.is_some());
    }

    #[test]
    fn escaped_unknown_key_is_decoded() {
        let envelope = parse(r#"{"\u0069d": 1}"#).unwrap();
        assert_eq!(envelope.unknown.as_deref(), Some("id"));
    }

    #[test]
    fn repeated_key_is_rejected() {
        let error = parse(r#"{"event": "a", "event": "b", "data": {}}"#).unwrap_err();
        assert!(error.is_data(), "{error}");
        assert!(
            error.to_string().contains("duplicate field `event`"),
            "{error}"
        );
    }

    #[test]
    fn non_object_is_rejected() {
        let error = parse("[1]").unwrap_err();
        assert!(error.is_data(), "{error}");
    }
}
