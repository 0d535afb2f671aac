//! The endpoints in memory: their records for ingest and the scheduler, and their live health
//! counters. The store stays the source of truth; this is loaded from it at start and changed
//! only together with it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use belter_common::records::Endpoint;
use belter_common::signing::SigningKey;
use belter_common::{EndpointId, EventType, Timestamp};

use crate::rules::filter::Filter;
use crate::store::{EndpointRecord, Store, StoreError, StoredHealth};

/// Length of the window over which an endpoint's recent failures are counted, in minutes.
pub(crate) const FAILURE_WINDOW_MINUTES: u64 = 24 * 60;

/// How long an endpoint gets no resend after a reset, once a resend was reset too.
pub(crate) const RESEND_PAUSE_MS: u64 = 10 * 60 * 1_000;

/// Health counters of one endpoint, restored from the store at start.
#[derive(Debug, Default)]
pub(crate) struct EndpointHealth {
    /// Attempts running now.
    pub(crate) in_flight: AtomicUsize,
    consecutive_failures: AtomicU32,
    last_success_at: AtomicU64,
    /// Failures per minute, oldest first, over the last day.
    failures_by_minute: Mutex<VecDeque<(u64, u64)>>,
    /// No resend after a reset before this time (ms since the epoch), because a resend was
    /// reset too.
    no_resend_until: AtomicU64,
}

impl EndpointHealth {
    /// Health as the store kept it.
    pub(crate) fn restored(stored: StoredHealth) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(stored.consecutive_failures),
            last_success_at: AtomicU64::new(stored.last_success_at),
            failures_by_minute: Mutex::new(stored.failures_by_minute.into_iter().collect()),
            no_resend_until: AtomicU64::new(0),
        }
    }

    /// Returns whether an attempt whose connection closed at `now_ms` may resend its request.
    pub(crate) fn resend_allowed(&self, now_ms: u64) -> bool {
        now_ms >= self.no_resend_until.load(Ordering::Relaxed)
    }

    /// Stops resends after a reset for [`RESEND_PAUSE_MS`] from `now_ms`, because a resend on a
    /// new connection was reset too. Such a receiver would otherwise get every attempt twice.
    /// Returns whether resends were allowed until now, so that only the first of several
    /// concurrent attempts reports the pause.
    pub(crate) fn pause_resends(&self, now_ms: u64) -> bool {
        let until = self
            .no_resend_until
            .swap(now_ms.saturating_add(RESEND_PAUSE_MS), Ordering::Relaxed);
        now_ms >= until
    }

    /// Returns the end of the pause of resends after a reset, if one runs at `now_ms`.
    pub(crate) fn resends_paused_until(&self, now_ms: u64) -> Option<u64> {
        let until = self.no_resend_until.load(Ordering::Relaxed);
        (now_ms < until).then_some(until)
    }

    /// Allows resends after a reset again.
    pub(crate) fn resume_resends(&self) {
        self.no_resend_until.store(0, Ordering::Relaxed);
    }

    /// Records the outcome of an attempt that ended at `now_ms`.
    pub(crate) fn record(&self, succeeded: bool, now_ms: u64) {
        if succeeded {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.last_success_at.store(now_ms, Ordering::Relaxed);
            return;
        }
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        let minute = now_ms / 60_000;
        let mut buckets = self
            .failures_by_minute
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match buckets.back_mut() {
            Some((last, count)) if *last == minute => *count += 1,
            _ => buckets.push_back((minute, 1)),
        }
        while buckets
            .front()
            .is_some_and(|(first, _)| *first + FAILURE_WINDOW_MINUTES <= minute)
        {
            buckets.pop_front();
        }
    }

    /// Failed attempts in a row since the last success.
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    fn recent_failures(&self, now_ms: u64) -> u64 {
        let minute = now_ms / 60_000;
        let buckets = self
            .failures_by_minute
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .iter()
            .filter(|(at, _)| *at + FAILURE_WINDOW_MINUTES > minute)
            .map(|(_, count)| count)
            .sum()
    }
}

/// One endpoint: its record as stored, its parsed filter and its health.
#[derive(Debug, Clone)]
pub(crate) struct EndpointEntry {
    pub(crate) id: EndpointId,
    pub(crate) record: EndpointRecord,
    pub(crate) health: Arc<EndpointHealth>,
    filter: CompiledFilter,
    /// The record's URL parsed, when it parses, so attempts do not parse it each time.
    pub(crate) parsed_url: Option<url::Url>,
    /// Signing key of the record's current secret.
    pub(crate) signing_key: SigningKey,
}

/// An endpoint's filter as used at ingest.
#[derive(Debug, Clone)]
enum CompiledFilter {
    None,
    Parsed(Arc<Filter>),
    /// A stored filter that no longer parses matches nothing, so the endpoint gets nothing it
    /// did not ask for.
    Broken,
}

impl CompiledFilter {
    fn compile(id: &EndpointId, text: Option<&str>) -> Self {
        match text.map(Filter::parse) {
            None => CompiledFilter::None,
            Some(Ok(filter)) => CompiledFilter::Parsed(Arc::new(filter)),
            Some(Err(error)) => {
                tracing::error!(endpoint_id = %id, %error, "stored endpoint filter does not parse; the endpoint receives nothing until it is fixed");
                CompiledFilter::Broken
            }
        }
    }

    fn passes<'v>(&self, kind: EventType, data: &dyn Fn() -> &'v serde_json::Value) -> bool {
        match self {
            CompiledFilter::None => true,
            CompiledFilter::Parsed(filter) => filter.matches(kind.as_str(), data()),
            CompiledFilter::Broken => false,
        }
    }
}

impl EndpointEntry {
    /// The API view, without the secret.
    pub(crate) fn to_api(&self) -> Endpoint {
        let last_success = self.health.last_success_at.load(Ordering::Relaxed);
        let now = Timestamp::now().as_millis();
        Endpoint {
            id: self.id.clone(),
            url: self.record.url.clone(),
            event_types: self.record.selection(),
            description: self.record.description.clone(),
            state: self.record.state(),
            created_at: Timestamp::from_millis(self.record.created_at),
            updated_at: Timestamp::from_millis(self.record.updated_at),
            consecutive_failures: self.health.consecutive_failures.load(Ordering::Relaxed),
            recent_failures: self.health.recent_failures(now),
            last_success_at: (last_success > 0).then(|| Timestamp::from_millis(last_success)),
            filter: self.record.filter.clone(),
            paused_reason: self.record.paused_reason.clone(),
            format: self.record.format,
            standard_webhooks: self.record.standard_webhooks,
            resends_paused_until: self
                .health
                .resends_paused_until(now)
                .map(Timestamp::from_millis),
        }
    }
}

/// Every endpoint, by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: RwLock<BTreeMap<EndpointId, Arc<EndpointEntry>>>,
}

impl Registry {
    /// A registry of the stored endpoints with their stored health.
    pub(crate) fn new(stored: Vec<(EndpointId, EndpointRecord, StoredHealth)>) -> Self {
        let entries = stored
            .into_iter()
            .map(|(id, record, health)| {
                let entry = EndpointEntry {
                    filter: CompiledFilter::compile(&id, record.filter.as_deref()),
                    parsed_url: url::Url::parse(&record.url).ok(),
                    signing_key: SigningKey::new(&record.secret),
                    id: id.clone(),
                    record,
                    health: Arc::new(EndpointHealth::restored(health)),
                };
                (id, Arc::new(entry))
            })
            .collect();
        Self {
            entries: RwLock::new(entries),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<EndpointId, Arc<EndpointEntry>>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<EndpointId, Arc<EndpointEntry>>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns one endpoint. Entries are shared, and a change replaces the entry, so a caller
    /// keeps the version it read.
    pub(crate) fn get(&self, id: &EndpointId) -> Option<Arc<EndpointEntry>> {
        self.read().get(id).cloned()
    }

    /// Every endpoint, oldest first.
    pub(crate) fn all(&self) -> Vec<Arc<EndpointEntry>> {
        self.read().values().cloned().collect()
    }

    /// The endpoints subscribed to an event type whose filter passes `data`, paused ones
    /// included. `data` is called only when an endpoint has a filter, and after the registry's
    /// lock is released, because it may parse the event's data.
    pub(crate) fn subscribers<'v>(
        &self,
        kind: EventType,
        data: &dyn Fn() -> &'v serde_json::Value,
    ) -> Vec<(EndpointId, String)> {
        let mut filtered = Vec::new();
        let mut subscribers: Vec<(EndpointId, String)> = Vec::new();
        for entry in self.read().values() {
            if !entry.record.selection().includes(kind) {
                continue;
            }
            match &entry.filter {
                CompiledFilter::None => {
                    subscribers.push((entry.id.clone(), entry.record.url.clone()));
                }
                _ => filtered.push(Arc::clone(entry)),
            }
        }
        if filtered.is_empty() {
            return subscribers;
        }
        subscribers.extend(
            filtered
                .iter()
                .filter(|entry| entry.filter.passes(kind, data))
                .map(|entry| (entry.id.clone(), entry.record.url.clone())),
        );
        // In the registry's order, as without filters.
        subscribers.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        subscribers
    }

    /// Whether an endpoint is paused; a deleted endpoint counts as not paused.
    pub(crate) fn is_paused(&self, id: &str) -> bool {
        let Ok(id) = EndpointId::parse(id) else {
            return false;
        };
        self.read()
            .get(&id)
            .is_some_and(|entry| entry.record.paused)
    }

    /// Adds a new endpoint and writes it to the store.
    pub(crate) fn insert(
        &self,
        store: &Store,
        id: &EndpointId,
        record: EndpointRecord,
    ) -> Result<Arc<EndpointEntry>, StoreError> {
        let mut entries = self.write();
        store.put_endpoint(id, &record)?;
        let entry = Arc::new(EndpointEntry {
            filter: CompiledFilter::compile(id, record.filter.as_deref()),
            parsed_url: url::Url::parse(&record.url).ok(),
            signing_key: SigningKey::new(&record.secret),
            id: id.clone(),
            record,
            health: Arc::default(),
        });
        entries.insert(id.clone(), Arc::clone(&entry));
        Ok(entry)
    }

    /// Changes an endpoint's record with `change` and writes it to the store, holding the lock
    /// throughout so concurrent changes reach the store in the order they are made. Returns
    /// `None` when the endpoint does not exist. The caller flushes before confirming.
    pub(crate) fn modify(
        &self,
        store: &Store,
        id: &EndpointId,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<Arc<EndpointEntry>>, StoreError> {
        let mut entries = self.write();
        let Some(shared) = entries.get_mut(id) else {
            return Ok(None);
        };
        let mut record = shared.record.clone();
        change(&mut record);
        store.put_endpoint(id, &record)?;
        let entry = Arc::make_mut(shared);
        if record.filter != entry.record.filter {
            entry.filter = CompiledFilter::compile(id, record.filter.as_deref());
        }
        if record.url != entry.record.url {
            // A new receiver gets resends after a reset again.
            entry.health.resume_resends();
            entry.parsed_url = url::Url::parse(&record.url).ok();
        }
        if record.secret != entry.record.secret {
            entry.signing_key = SigningKey::new(&record.secret);
        }
        entry.record = record;
        Ok(Some(Arc::clone(shared)))
    }

    /// Removes an endpoint from the store and the registry. The caller flushes.
    pub(crate) fn remove(
        &self,
        store: &Store,
        id: &EndpointId,
    ) -> Result<Option<Arc<EndpointEntry>>, StoreError> {
        let mut entries = self.write();
        store.remove_endpoint(id)?;
        store.remove_endpoint_health(id)?;
        Ok(entries.remove(id))
    }

    /// Number of endpoints.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint_record(secret: &str) -> EndpointRecord {
        EndpointRecord {
            url: "http://127.0.0.1:9/hook".to_owned(),
            event_types: Vec::new(),
            description: String::new(),
            paused: false,
            created_at: 0,
            updated_at: 0,
            secret: secret.to_owned(),
            previous_secrets: Vec::new(),
            failing_since: None,
            paused_reason: None,
            filter: None,
            format: belter_common::records::DeliveryFormat::default(),
            routing_key: None,
            standard_webhooks: false,
        }
    }

    #[test]
    fn subscribers_read_data_for_filters_only() {
        let (_dir, store) = crate::store::open_temp();
        let registry = Registry::new(Vec::new());
        let plain = EndpointId::generate();
        let filtered = EndpointId::generate();
        let excluded = EndpointId::generate();
        registry
            .insert(&store, &plain, endpoint_record("whsec_plain"))
            .unwrap();
        let kind = EventType::FrustrationDetected;
        let data = serde_json::json!({"level": 0.9});
        let reads = std::cell::Cell::new(0);
        let read_data = || {
            reads.set(reads.get() + 1);
            &data
        };
        let found = registry.subscribers(kind, &read_data);
        assert_eq!(found.len(), 1);
        assert_eq!(reads.get(), 0, "no filter, so the data is not read");

        for (id, filter) in [
            (&filtered, "data.level > 0.5"),
            (&excluded, "data.level < 0.5"),
        ] {
            let mut record = endpoint_record("whsec_filtered");
            record.filter = Some(filter.to_owned());
            registry.insert(&store, id, record).unwrap();
        }
        let found: Vec<EndpointId> = registry
            .subscribers(kind, &read_data)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut expected = vec![plain, filtered];
        expected.sort();
        assert_eq!(found, expected, "in the registry's order");
        assert!(reads.get() > 0, "the filters read the data");
    }

    #[test]
    fn signing_key_follows_secret() {
        let (_dir, store) = crate::store::open_temp();
        let registry = Registry::new(Vec::new());
        let id = EndpointId::generate();
        let entry = registry
            .insert(&store, &id, endpoint_record("whsec_first"))
            .unwrap();
        assert!(entry.signing_key.is_for("whsec_first"));
        let entry = registry
            .modify(&store, &id, |record| {
                record.secret = "whsec_second".to_owned();
            })
            .unwrap()
            .unwrap();
        assert!(entry.signing_key.is_for("whsec_second"));
        let restored = Registry::new(vec![(
            id.clone(),
            entry.record.clone(),
            StoredHealth::default(),
        )]);
        let restored_entry = restored.get(&id).unwrap();
        assert!(restored_entry.signing_key.is_for("whsec_second"));
    }

    #[test]
    fn resend_pause_reported_once() {
        let health = EndpointHealth::default();
        assert!(health.resend_allowed(1_000));
        assert_eq!(health.resends_paused_until(1_000), None);
        assert!(health.pause_resends(1_000), "the first pause is new");
        assert_eq!(
            health.resends_paused_until(1_000),
            Some(1_000 + RESEND_PAUSE_MS)
        );
        assert_eq!(health.resends_paused_until(1_000 + RESEND_PAUSE_MS), None);
        assert!(!health.pause_resends(1_001), "a concurrent pause is not");
        assert!(!health.resend_allowed(1_000 + RESEND_PAUSE_MS - 1));
        assert!(health.resend_allowed(1_001 + RESEND_PAUSE_MS));
        health.resume_resends();
        assert!(health.resend_allowed(1_002));
    }

    #[test]
    fn health_counts_failures_in_window() {
        let health = EndpointHealth::default();
        health.record(false, 0);
        health.record(false, 30_000);
        assert_eq!(health.consecutive_failures.load(Ordering::Relaxed), 2);
        assert_eq!(health.recent_failures(60_000), 2);
        let day_later = FAILURE_WINDOW_MINUTES * 60_000 + 60_000;
        assert_eq!(health.recent_failures(day_later), 0);
        health.record(true, 70_000);
        assert_eq!(health.consecutive_failures.load(Ordering::Relaxed), 0);
        assert_eq!(health.last_success_at.load(Ordering::Relaxed), 70_000);
    }
}
