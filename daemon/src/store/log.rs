//! Reading the delivery log newest first. Delivery ids are ULIDs, so key order is creation order
//! and a time range is a key range.

use belter_common::{DeliveryId, Timestamp};

use super::{DeliveryRecord, Store, StoreError};
use crate::codec::decode;

/// Bounds of one backwards scan of the delivery log.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogScan {
    /// Only deliveries created at or after this time.
    pub(crate) since: Option<Timestamp>,
    /// Only deliveries created before this time.
    pub(crate) until: Option<Timestamp>,
    /// Continue after this delivery, which the previous page ended with.
    pub(crate) cursor: Option<DeliveryId>,
}

/// The smallest delivery id key created at `millis`: the ULID with that time and zero randomness.
fn id_key_at(millis: u64) -> Vec<u8> {
    let ulid = ulid::Ulid::from_parts(millis.min((1 << 48) - 1), 0);
    format!("{}{ulid}", DeliveryId::PREFIX).into_bytes()
}

impl Store {
    /// Walks the delivery log newest first within `scan`, calling `visit` on each delivery until
    /// it returns `false`. Returns how many deliveries were read.
    pub(crate) fn scan_log(
        &self,
        scan: &LogScan,
        mut visit: impl FnMut(DeliveryId, DeliveryRecord) -> bool,
    ) -> Result<u64, StoreError> {
        let lower = match scan.since {
            Some(since) => id_key_at(since.as_millis()),
            None => DeliveryId::PREFIX.as_bytes().to_vec(),
        };
        let mut upper = match scan.until {
            Some(until) => id_key_at(until.as_millis()),
            None => {
                let mut end = DeliveryId::PREFIX.as_bytes().to_vec();
                end.push(0xff);
                end
            }
        };
        if let Some(cursor) = &scan.cursor {
            let cursor_key = cursor.as_str().as_bytes().to_vec();
            if cursor_key < upper {
                upper = cursor_key;
            }
        }
        if lower >= upper {
            return Ok(0);
        }
        let mut read = 0;
        for item in self.scan_deliveries(&lower, &upper, true) {
            let (key, stored) = item?;
            read += 1;
            let Ok(id) = std::str::from_utf8(&key)
                .map_err(|_| ())
                .and_then(|text| DeliveryId::parse(text).map_err(|_| ()))
            else {
                continue;
            };
            let record: DeliveryRecord = decode(stored.bytes())?;
            if !visit(id, record) {
                break;
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_temp, NewDelivery, NewEvent};
    use belter_common::{EndpointId, EventId, EventType};

    fn write_deliveries(store: &Store, count: usize) -> Vec<DeliveryId> {
        let endpoint = EndpointId::generate();
        let mut ids = Vec::new();
        for _ in 0..count {
            let delivery = NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: endpoint.clone(),
                target_url: "http://127.0.0.1:9/".to_owned(),
                deferred: false,
            };
            let event = NewEvent {
                id: EventId::generate(),
                kind: EventType::CsatReceived,
                created_at: delivery.id.timestamp_ms(),
                body: b"{}".to_vec(),
            };
            store
                .write_event(&event, std::slice::from_ref(&delivery), None)
                .unwrap();
            ids.push(delivery.id);
        }
        ids
    }

    fn collect(store: &Store, scan: &LogScan, limit: usize) -> Vec<DeliveryId> {
        let mut seen = Vec::new();
        store
            .scan_log(scan, |id, _| {
                seen.push(id);
                seen.len() < limit
            })
            .unwrap();
        seen
    }

    #[test]
    fn pages_newest_first_with_cursor() {
        let (_dir, store) = open_temp();
        let ids = write_deliveries(&store, 5);
        let first = collect(&store, &LogScan::default(), 2);
        assert_eq!(first, vec![ids[4].clone(), ids[3].clone()]);
        let scan = LogScan {
            cursor: Some(ids[3].clone()),
            ..LogScan::default()
        };
        let second = collect(&store, &scan, 10);
        assert_eq!(second, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    }

    #[test]
    fn time_bounds_limit_range() {
        let (_dir, store) = open_temp();
        let ids = write_deliveries(&store, 3);
        let scan = LogScan {
            since: Some(Timestamp::from_millis(ids[0].timestamp_ms() + 1_000_000)),
            ..LogScan::default()
        };
        assert!(collect(&store, &scan, 10).is_empty());
        let scan = LogScan {
            until: Some(Timestamp::from_millis(ids[0].timestamp_ms())),
            ..LogScan::default()
        };
        assert!(collect(&store, &scan, 10).is_empty());
        let scan = LogScan {
            since: Some(Timestamp::from_millis(ids[0].timestamp_ms())),
            ..LogScan::default()
        };
        assert_eq!(collect(&store, &scan, 10).len(), 3);
    }
}
