//! The state every task and handler shares: store, configuration, endpoints, the HTTP client,
//! the live stream and the shutdown token.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use belter_common::records::{Delivery, DeliveryStatus, StreamEvent, StreamKind};
use belter_common::{DeliveryId, EndpointId, Timestamp};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::address_policy::AddressPolicy;
use crate::config::Config;
use crate::flush::Flusher;
use crate::metrics::Metrics;
use crate::outcome::OutcomeSender;
use crate::ready::ReadyLanes;
use crate::registry::Registry;
use crate::rules::RuleSet;
use crate::store::{DeliveryRecord, Store, StoreError};
use crate::token::IngestTokens;

/// Lines the live stream buffers for a slow reader before it reports them as missed.
const STREAM_CAPACITY: usize = 4_096;

/// Shared daemon state; cloning is cheap.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) flusher: Flusher,
    pub(crate) endpoints: Arc<Registry>,
    pub(crate) rules: Arc<RuleSet>,
    pub(crate) http: crate::deliver::DeliveryClient,
    pub(crate) policy: AddressPolicy,
    pub(crate) stream: broadcast::Sender<StreamEvent>,
    /// Wakes the scheduler when new work is queued or an attempt ends.
    pub(crate) wake_scheduler: Arc<Notify>,
    /// Deliveries due now and running, per endpoint.
    pub(crate) ready: Arc<ReadyLanes>,
    /// Hands attempt outcomes to the outcome writer.
    pub(crate) outcomes: OutcomeSender,
    pub(crate) shutdown: CancellationToken,
    pub(crate) ingest_tokens: Arc<IngestTokens>,
    pub(crate) ingest_addr: SocketAddr,
    pub(crate) started_at: Timestamp,
    pub(crate) metrics: Arc<Metrics>,
    /// Deliveries queued or in flight, kept in memory so stats need no scan.
    waiting: Arc<AtomicI64>,
    /// Lock held while a deleted endpoint's queue is cancelled. The delete, ingest, the indexer and
    /// the outcome writer each cancel it. Two cancels that read the queue at once would both
    /// cancel the same deliveries, and both take them off the count of waiting deliveries.
    cancelling: Arc<std::sync::Mutex<()>>,
}

/// The parts of the state built before the listeners are bound.
pub(crate) struct StateParts {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) flusher: Flusher,
    pub(crate) endpoints: Registry,
    pub(crate) rules: RuleSet,
    pub(crate) http: crate::deliver::DeliveryClient,
    pub(crate) policy: AddressPolicy,
    pub(crate) shutdown: CancellationToken,
    pub(crate) ingest_tokens: IngestTokens,
    pub(crate) ingest_addr: SocketAddr,
    pub(crate) outcomes: OutcomeSender,
}

impl AppState {
    pub(crate) fn new(parts: StateParts) -> Self {
        let (stream, _) = broadcast::channel(STREAM_CAPACITY);
        Self {
            config: Arc::new(parts.config),
            store: parts.store,
            flusher: parts.flusher,
            endpoints: Arc::new(parts.endpoints),
            rules: Arc::new(parts.rules),
            http: parts.http,
            policy: parts.policy,
            stream,
            wake_scheduler: Arc::new(Notify::new()),
            ready: Arc::default(),
            outcomes: parts.outcomes,
            shutdown: parts.shutdown,
            ingest_tokens: Arc::new(parts.ingest_tokens),
            ingest_addr: parts.ingest_addr,
            started_at: Timestamp::now(),
            metrics: Arc::new(Metrics::new()),
            waiting: Arc::new(AtomicI64::new(0)),
            cancelling: Arc::default(),
        }
    }

    /// Sends a line to every stream reader; nobody listening is fine.
    pub(crate) fn publish(&self, event: StreamEvent) {
        let _ = self.stream.send(event);
    }

    /// Builds a line with `line` and sends it, only when the stream has a reader.
    pub(crate) fn publish_with(&self, line: impl FnOnce() -> StreamEvent) {
        if self.stream.receiver_count() > 0 {
            self.publish(line());
        }
    }

    /// Converts a stored delivery to its API view. Pending shows as paused when its endpoint is
    /// paused, and as in flight while its attempt runs.
    pub(crate) fn delivery_view(&self, id: &DeliveryId, record: &DeliveryRecord) -> Delivery {
        let paused = self.endpoints.is_paused(&record.endpoint_id);
        let mut view = record.to_api(id, paused);
        if record.status == DeliveryStatus::Pending
            && EndpointId::parse(&record.endpoint_id)
                .is_ok_and(|endpoint| self.ready.is_running(&endpoint, id))
        {
            view.status = DeliveryStatus::InFlight;
        }
        view
    }

    /// Changes the count of waiting deliveries by `delta`.
    pub(crate) fn add_waiting(&self, delta: i64) {
        self.waiting.fetch_add(delta, Ordering::Relaxed);
    }

    /// Returns the shared count of waiting deliveries, which the stop reads after the state is
    /// dropped.
    pub(crate) fn waiting_counter(&self) -> Arc<AtomicI64> {
        Arc::clone(&self.waiting)
    }

    /// Deliveries queued or in flight now.
    pub(crate) fn waiting(&self) -> u64 {
        u64::try_from(self.waiting.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Cancels the queued deliveries of a deleted endpoint, reports each one on the live
    /// stream, and returns their ids. Those whose attempts run end with their outcomes. Blocks
    /// on the store.
    pub(crate) fn cancel_queue(
        &self,
        endpoint: &EndpointId,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let cancelled = {
            let _cancelling = self
                .cancelling
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let removed = self.ready.remove(endpoint);
            self.store
                .write_due_entries(removed.unindexed.iter().map(|(_, key)| key.as_slice()))?;
            for (id, _) in &removed.unindexed {
                self.ready.settled(id);
            }
            self.store
                .cancel_endpoint(endpoint, Timestamp::now().as_millis(), &removed.running)?
        };
        self.add_waiting(-i64::try_from(cancelled.len()).unwrap_or(i64::MAX));
        self.metrics.record_cancelled(cancelled.len());
        // The cancel that finds a delivery reports it, so the stream gets it even when another
        // caller's cancel ran before the delete's.
        if self.stream.receiver_count() > 0 {
            for delivery_id in &cancelled {
                if let Ok(Some(record)) = self.store.delivery(delivery_id) {
                    self.publish(StreamEvent {
                        kind: StreamKind::DeliveryUpdated,
                        delivery: Some(record.to_api(delivery_id, false)),
                        attempt: None,
                        missed: None,
                    });
                }
            }
        }
        Ok(cancelled)
    }
}
