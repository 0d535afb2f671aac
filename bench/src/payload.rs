//! The bodies the benchmark sends: ingest bodies from the shared samples, and a delivery body
//! shaped like the one belterd stores and sends, for the baseline.

use anyhow::Context;
use belter_common::samples::sample_body;
use belter_common::{EventId, EventType, Timestamp};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The event type the throughput, latency, fan-out and isolation scenarios post.
pub const EVENT_TYPE: EventType = EventType::CsatReceived;

/// Returns the ingest body of `kind`, as a service posts it.
pub fn ingest_body(kind: EventType) -> Bytes {
    Bytes::from_static(sample_body(kind).as_bytes())
}

/// Builds a batch ingest body of `count` sample events of `kind`.
pub fn batch_body(kind: EventType, count: usize) -> Bytes {
    batch_of(&vec![kind; count])
}

/// Builds a batch ingest body with one sample event per entry of `kinds`.
pub fn batch_of(kinds: &[EventType]) -> Bytes {
    let mut body = String::from("{\"events\":[");
    for (index, kind) in kinds.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(sample_body(*kind));
    }
    body.push_str("]}");
    Bytes::from(body)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Builds a delivery body of `kind` as belterd does: the event id, type and creation time, and the
/// sample's `data` byte for byte.
pub fn delivery_body(kind: EventType) -> anyhow::Result<Bytes> {
    let sample = sample_body(kind);
    let envelope: Envelope<'_> =
        serde_json::from_str(sample).with_context(|| format!("invalid sample of {kind}"))?;
    let body = format!(
        r#"{{"id":"{id}","event":"{kind}","created_at":"{created}","data":{data}}}"#,
        id = EventId::generate(),
        created = Timestamp::now().to_rfc3339(),
        data = envelope.data.get(),
    );
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_body_keeps_data() {
        let body = delivery_body(EVENT_TYPE).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let sample: serde_json::Value = serde_json::from_str(sample_body(EVENT_TYPE)).unwrap();
        assert_eq!(value["data"], sample["data"]);
        assert_eq!(value["event"], EVENT_TYPE.as_str());
        assert!(value["id"].as_str().unwrap().starts_with("evt_"));
    }
}
