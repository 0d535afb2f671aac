//! The store: the only module that touches sled. One tree per record kind, plus the due index that
//! is the delivery queue, so nothing pending lives only in memory.
//!
//! Trees and their keys:
//! - `events`: event id → [`EventRecord`]; or, for the events of one ingest request, the last
//!   id, a zero byte and the first id → a record group of their [`EventRecord`]s, see the `codec`
//!   module. Ingest writes such a group to the event log, in the `event-log` directory beside
//!   sled's files, and stores a pointer to it here, as the `event_log` module describes. An event
//!   written later whose id falls in that span, after the clock went back, joins the group. The
//!   joined group is then stored here whole.
//! - `deliveries`: delivery id → [`DeliveryRecord`], which contains the latest attempt. Every
//!   write goes through `Store::put_own_record`, so that the `own_records` filter can tell
//!   which deliveries surely have no key here
//! - `delivery_groups`: for the new deliveries of one ingest request's events, the last id, a
//!   zero byte and the first id → a record group of their [`DeliveryRecord`]s. A record in
//!   `deliveries` takes precedence, as the `delivery_groups` module describes
//! - `attempts`: delivery id, attempt number (u32 big-endian) → [`AttemptRecord`]; every attempt
//!   but the latest
//! - `due`: endpoint id, due time (ms, u64 big-endian), delivery id → empty; one entry per
//!   delivery waiting for an attempt or in one, so a range scan of one endpoint yields its due
//!   work in order. A new delivery that a ready lane keeps in memory has none until the indexer
//!   writes it, as the `queue` module describes. The deliveries of one ingest request to one
//!   endpoint that ingest writes with their entry share one due group instead: endpoint id, due
//!   time, first delivery id, a zero byte, last delivery id → a record group of the ids
//! - `inflight`: delivery id → endpoint id; attempts that an older version of belterd started,
//!   read once at start
//! - `endpoints`: endpoint id → [`EndpointRecord`]
//! - `idempotency`: idempotency key → [`IdempotencyRecord`]
//! - `rules`: rule id → [`RuleRecord`]
//! - `endpoint_streaks`, `endpoint_failures`: endpoint health, see the `health` module
//! - `stats`: minute since the epoch (u64 big-endian) → outcome counts, summed by a merge operator
//! - `meta`: `waiting_at_stop` → the count of waiting deliveries (u64 big-endian) that a clean
//!   stop wrote, read and removed at the next start; `store_format` → the newest record layout
//!   the store may contain (one byte), see [`STORE_FORMAT`]; `indexed_before` → a time (ms, u64
//!   big-endian) before which every pending delivery has its due entry

mod delivery_groups;
mod endpoints;
mod event_log;
mod events;
mod groups;
mod health;
mod log;
mod own_records;
mod queue;
mod records;
mod rules;
mod stats;

use std::path::Path;

use belter_common::{DeliveryId, EndpointId};

use crate::codec::CodecError;

pub(crate) use events::{
    Idempotency, IngestJob, IngestWrite, NewDelivery, NewEvent, NewEventWrite,
};
pub(crate) use health::{EndpointOutcomes, StoredHealth};
pub(crate) use log::LogScan;
pub(crate) use queue::{Completion, Displaced, DueWork, LoadedDue, ReplayOutcome};
pub(crate) use records::{
    AttemptRecord, DeliveryRecord, EndpointRecord, EventRecord, IdempotencyRecord, RuleRecord,
};
pub(crate) use stats::OutcomeCounts;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be encoded or decoded.
    #[error("store record error: {0}")]
    Codec(#[from] CodecError),
    /// The event log could not be read or written.
    #[error("store error: {0}")]
    EventLog(#[from] event_log::EventLogError),
    /// A blocking store task ended without a result.
    #[error("store task failed: {0}")]
    Task(String),
    /// The store was written by a newer belterd, with record layouts this build cannot read.
    #[error(
        "the store has format {found}, and this belterd reads formats up to {supported}; run the \
         newer belterd that wrote it"
    )]
    NewerFormat {
        /// The format recorded in the store.
        found: u8,
        /// The newest format this build reads.
        supported: u8,
    },
    /// A key in the store has an unexpected shape.
    #[error("corrupt store key in tree {tree}: {detail}")]
    CorruptKey {
        /// The tree the key is in.
        tree: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// The open store. Cloning is cheap: sled trees are shared handles.
#[derive(Clone)]
pub(crate) struct Store {
    db: sled::Db,
    events: sled::Tree,
    deliveries: sled::Tree,
    delivery_groups: sled::Tree,
    attempts: sled::Tree,
    due: sled::Tree,
    inflight: sled::Tree,
    endpoints: sled::Tree,
    idempotency: sled::Tree,
    rules: sled::Tree,
    stats: sled::Tree,
    endpoint_streaks: sled::Tree,
    endpoint_failures: sled::Tree,
    meta: sled::Tree,
    /// The span end of the last key in `events` when the store opened; see
    /// `Store::after_stored_events`.
    events_end: std::sync::Arc<Vec<u8>>,
    /// Event record groups read last, shared by every handle.
    recent_groups: std::sync::Arc<groups::RecentGroups>,
    /// The segment files that hold the event record groups, shared by every handle.
    event_log: std::sync::Arc<event_log::EventLog>,
    /// The span end of the last key in `delivery_groups` when the store opened.
    delivery_groups_end: std::sync::Arc<Vec<u8>>,
    /// Delivery groups read last, shared by every handle.
    recent_delivery_groups: std::sync::Arc<groups::RecentGroups>,
    /// Filter of the deliveries that may have a record of their own, shared by every handle.
    own_records: std::sync::Arc<own_records::OwnRecords>,
    /// Due groups whose handed-out deliveries are waiting for outcomes.
    groups_in_flight: std::sync::Arc<queue::GroupsInFlight>,
}

impl Store {
    /// Opens or creates the store in `path`. sled locks the directory, so a second daemon on the
    /// same data directory fails here.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        // sled's heap grows well past its cache capacity, so the cache is kept small. With 1M
        // pending, a 64 MiB cache meant 145 MiB resident and a 12 MiB cache 89 MiB, measured by
        // belter-bench with the same drain rate and page query times. With jemalloc, the peak
        // after a restart with 1M pending was 152 MiB at 12 MiB, and 130 and 145 MiB in two runs
        // at 8 MiB, with no loss of throughput.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(8 * 1024 * 1024)
            .open()?;
        let stats = db.open_tree("stats")?;
        stats.set_merge_operator(stats::merge_counts);
        let endpoint_streaks = db.open_tree("endpoint_streaks")?;
        endpoint_streaks.set_merge_operator(health::merge_streak);
        let endpoint_failures = db.open_tree("endpoint_failures")?;
        endpoint_failures.set_merge_operator(health::merge_count);
        let meta = db.open_tree("meta")?;
        // The check runs before the event log opens, because the log deletes every segment that
        // this build finds no pointer to.
        check_format(&meta)?;
        let events = db.open_tree("events")?;
        let event_log = event_log::EventLog::open(
            &path.join(EVENT_LOG_DIR),
            events::count_log_pointers(&events)?,
        )?;
        let delivery_groups = db.open_tree("delivery_groups")?;
        let deliveries = db.open_tree("deliveries")?;
        let delivery_groups_end = groups::tree_end(&delivery_groups)?;
        let last_own = deliveries.last()?.map(|(key, _)| key.to_vec());
        let last_stored = last_own
            .unwrap_or_default()
            .max(delivery_groups_end.clone());
        let store = Self {
            own_records: std::sync::Arc::new(own_records::OwnRecords::new(last_stored)),
            delivery_groups_end: std::sync::Arc::new(delivery_groups_end),
            recent_delivery_groups: std::sync::Arc::default(),
            delivery_groups,
            events_end: std::sync::Arc::new(events::events_end(&events)?),
            recent_groups: std::sync::Arc::default(),
            event_log: std::sync::Arc::new(event_log),
            groups_in_flight: std::sync::Arc::default(),
            events,
            deliveries,
            attempts: db.open_tree("attempts")?,
            due: db.open_tree("due")?,
            inflight: db.open_tree("inflight")?,
            endpoints: db.open_tree("endpoints")?,
            idempotency: db.open_tree("idempotency")?,
            rules: db.open_tree("rules")?,
            stats,
            endpoint_streaks,
            endpoint_failures,
            meta,
            db,
        };
        Ok(store)
    }

    /// Writes a delivery's record of its own in `deliveries`, noting first that it has one.
    fn put_own_record(&self, id: &[u8], record: &[u8]) -> Result<(), StoreError> {
        self.own_records.note(id);
        self.deliveries.insert(id, record)?;
        Ok(())
    }

    /// Reads a delivery's record of its own, skipping sled when it surely has none.
    fn own_record(&self, id: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        if !self.own_records.may_have(id) {
            return Ok(None);
        }
        Ok(self.deliveries.get(id)?)
    }

    /// Keeps the count of waiting deliveries for the next start; a clean stop calls this last.
    pub(crate) fn save_waiting(&self, count: u64) -> Result<(), StoreError> {
        self.meta.insert(WAITING_AT_STOP, &count.to_be_bytes())?;
        Ok(())
    }

    /// Takes the count that the last clean stop kept. `None` after a crash, or when the store
    /// is new; the caller then counts the due index.
    pub(crate) fn take_saved_waiting(&self) -> Result<Option<u64>, StoreError> {
        let saved = self.meta.remove(WAITING_AT_STOP)?;
        Ok(saved
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Records that every pending delivery made before `ms` has its due entry. Written after
    /// those entries, so a crash that loses the entries loses this too.
    pub(crate) fn mark_indexed_before(&self, ms: u64) -> Result<(), StoreError> {
        self.meta.insert(INDEXED_BEFORE, &ms.to_be_bytes())?;
        Ok(())
    }

    /// Reads the time that [`Store::mark_indexed_before`] recorded last, if any.
    fn indexed_before(&self) -> Result<Option<u64>, StoreError> {
        let saved = self.meta.get(INDEXED_BEFORE)?;
        Ok(saved
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Writes every change so far to disk: the event log's new groups, and sled's log.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let event_log = std::sync::Arc::clone(&self.event_log);
        let synced = tokio::task::spawn_blocking(move || event_log.sync());
        let flushed = self.db.flush_async().await;
        synced
            .await
            .map_err(|error| StoreError::Task(error.to_string()))??;
        flushed?;
        Ok(())
    }
}

/// Rejects a store of a newer format, and records [`STORE_FORMAT`] in an older one. A store
/// without the key predates it and has format 1.
fn check_format(meta: &sled::Tree) -> Result<(), StoreError> {
    let found = match meta.get(STORE_FORMAT_KEY)? {
        Some(bytes) => bytes.first().copied().unwrap_or(1),
        None => 1,
    };
    if found > STORE_FORMAT {
        return Err(StoreError::NewerFormat {
            found,
            supported: STORE_FORMAT,
        });
    }
    if found < STORE_FORMAT {
        meta.insert(STORE_FORMAT_KEY, &[STORE_FORMAT])?;
    }
    Ok(())
}

/// The newest record layout this build writes: 2 since delivery records keep their latest
/// attempt, 3 since the events of one ingest request share a record group, and its queued
/// deliveries to one endpoint a due group, 4 since the new deliveries of one request share
/// delivery groups, 5 since event groups are kept in the event log. Builds before format 2 do not check it, so they start on a newer store and
/// then fail to read its delivery records.
pub(crate) const STORE_FORMAT: u8 = 5;

/// Directory of the event log, inside the store's directory.
const EVENT_LOG_DIR: &str = "event-log";

/// Key of the store format in the `meta` tree.
const STORE_FORMAT_KEY: &[u8] = b"store_format";

/// Key of the time before which every pending delivery has its due entry, in the `meta` tree.
const INDEXED_BEFORE: &[u8] = b"indexed_before";

/// Key of the waiting count kept by a clean stop in the `meta` tree.
const WAITING_AT_STOP: &[u8] = b"waiting_at_stop";

/// Key of a delivery's due entry: endpoint id, due time in ms (big-endian), delivery id.
pub(crate) fn due_key(endpoint: &str, due_ms: u64, delivery: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(endpoint.len() + 8 + delivery.len());
    key.extend_from_slice(endpoint.as_bytes());
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(delivery.as_bytes());
    key
}

/// Key of an attempt: delivery id, attempt number (big-endian).
fn attempt_key(delivery: &DeliveryId, number: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(delivery.as_str().len() + 4);
    key.extend_from_slice(delivery.as_str().as_bytes());
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// Separates the first and the last delivery id in the key of a due group. Ids never contain it.
const DUE_GROUP_SEPARATOR: u8 = 0;

/// Key of a due group, the one due entry of several deliveries to one endpoint that one ingest
/// request wrote: endpoint id, due time in ms (big-endian), the first delivery id, a zero byte,
/// the last delivery id. Its value is a record group of the delivery ids with empty records.
pub(crate) fn due_group_key(endpoint: &str, due_ms: u64, first: &str, last: &str) -> Vec<u8> {
    let mut key = due_key(endpoint, due_ms, first);
    key.push(DUE_GROUP_SEPARATOR);
    key.extend_from_slice(last.as_bytes());
    key
}

/// Checks whether a due key of `endpoint` is the key of a due group.
pub(crate) fn is_due_group(endpoint: &str, key: &[u8]) -> bool {
    key.get(endpoint.len() + 8..)
        .is_some_and(|rest| rest.contains(&DUE_GROUP_SEPARATOR))
}

/// The deliveries that one due entry names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DueIds {
    One(DeliveryId),
    Group(Vec<DeliveryId>),
}

/// Splits a due key into its due time and the rest of the key.
fn split_due_key<'a>(endpoint: &EndpointId, key: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    let prefix = endpoint.as_str().len();
    let time_bytes: [u8; 8] = key
        .get(prefix..prefix + 8)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| corrupt_due("too short"))?;
    Ok((u64::from_be_bytes(time_bytes), &key[prefix + 8..]))
}

/// Splits a due entry into its due time and the deliveries it names.
fn parse_due_entry(
    endpoint: &EndpointId,
    key: &[u8],
    value: &[u8],
) -> Result<(u64, DueIds), StoreError> {
    let (due_ms, rest) = split_due_key(endpoint, key)?;
    if !rest.contains(&DUE_GROUP_SEPARATOR) {
        return Ok((due_ms, DueIds::One(parse_delivery_id(rest)?)));
    }
    let mut ids = Vec::new();
    for (id, _) in crate::codec::group_members(value)? {
        ids.push(parse_delivery_id(id)?);
    }
    Ok((due_ms, DueIds::Group(ids)))
}

fn parse_delivery_id(bytes: &[u8]) -> Result<DeliveryId, StoreError> {
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt_due("not UTF-8"))?;
    DeliveryId::parse(text).map_err(|error| corrupt_due(&error.to_string()))
}

fn corrupt_due(detail: &str) -> StoreError {
    StoreError::CorruptKey {
        tree: "due",
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
pub(crate) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("db")).expect("open store");
    (dir, store)
}

/// Opens the store at `path` again once the previous handle has let go of it. sled's flusher
/// thread holds the directory lock for a moment after the last handle drops.
#[cfg(test)]
pub(crate) fn reopen(path: &Path) -> Result<Store, StoreError> {
    for _ in 0..100 {
        match Store::open(path) {
            Err(StoreError::Sled(sled::Error::Io(error)))
                if error.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
    Store::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_store_format_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            let recorded = store.meta.get(STORE_FORMAT_KEY).unwrap();
            assert_eq!(recorded.as_deref(), Some(&[STORE_FORMAT][..]));
            store
                .meta
                .insert(STORE_FORMAT_KEY, &[STORE_FORMAT + 1])
                .unwrap();
            store.db.flush().unwrap();
        }
        let error = reopen(&path).err().expect("a newer format is rejected");
        assert!(
            matches!(error, StoreError::NewerFormat { found, supported }
                if found == STORE_FORMAT + 1 && supported == STORE_FORMAT),
            "{error}"
        );
        assert!(
            error.to_string().contains("run the newer belterd"),
            "{error}"
        );
    }

    #[test]
    fn saved_waiting_count_is_taken_once() {
        let (_dir, store) = open_temp();
        assert_eq!(store.take_saved_waiting().unwrap(), None, "a new store");
        store.save_waiting(42).unwrap();
        assert_eq!(store.take_saved_waiting().unwrap(), Some(42));
        assert_eq!(
            store.take_saved_waiting().unwrap(),
            None,
            "a crash after the start counts again"
        );
    }
}
