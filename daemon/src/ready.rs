//! Ready lanes: per endpoint, the deliveries due now, held in memory in front of the due index.
//!
//! The due index in the store stays the queue of record, and a lane only saves the scheduler a
//! read of the store for each delivery. Ingest hands each new delivery to its lane after the
//! flush. The scheduler reads the due index only when it may contain due entries that the lane
//! lacks: at start, after an overflow, a replay or a resume, and when a retry comes due.
//!
//! A lane tracks each delivery from before ingest writes it until its outcome is written, so a
//! read of the due index never starts a second attempt of it.
//!
//! Ingest writes a new delivery of an active endpoint without its due entry while its lane has
//! room: the lane keeps it in memory, and the first attempt's outcome is then its only other
//! write. Such a delivery stays on the unindexed list until that outcome is written. The indexer
//! writes the entries of those that no lane keeps any longer, and of those kept longer than a
//! hold limit. It then records a time before which every pending delivery has its entry, and a
//! start after a crash scans the deliveries made since that time.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Mutex;

use belter_common::{DeliveryId, EndpointId};
use bytes::Bytes;

use crate::store::{DueWork, LoadedDue, NewEventWrite};

/// Maximum deliveries waiting in one lane; more are left to the due index.
pub(crate) const LANE_CAPACITY: usize = 1_024;

/// Time between two marks of sweeps that write no due entry. A start after a crash scans the
/// deliveries made since the last mark.
const MARK_EVERY_MS: u64 = 10_000;

/// Waiting deliveries below which a lane whose due index contains more requests a read of it, so
/// that the read runs while the lane's attempts still have work.
const REFILL_BELOW: usize = LANE_CAPACITY / 4;

/// Maximum deliveries waiting in all lanes together.
const TOTAL_CAPACITY: usize = 16_384;

/// A delivery ready for an attempt.
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) due: DueWork,
    /// The event body, when ingest handed it over; read from the store otherwise.
    pub(crate) body: Option<Bytes>,
}

/// The state of a delivery in its lane, as a replay sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Not in the lane: neither waiting in memory nor running.
    Absent,
    /// It was waiting in memory and has been taken out.
    Withdrawn,
    /// Its attempt is running, or its outcome is being written.
    Running,
}

/// The work that removing a deleted endpoint's lane leaves to the caller.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    /// Deliveries whose attempts still run.
    pub(crate) running: FxHashSet<DeliveryId>,
    /// Unindexed deliveries with the due entries to write before the endpoint's queue is
    /// cancelled. They stay on the list until [`ReadyLanes::settled`].
    pub(crate) unindexed: Vec<(DeliveryId, Vec<u8>)>,
}

/// A planned read of one lane's due index.
#[derive(Debug)]
pub(crate) struct ScanPlan {
    /// The lane's scan request count when the plan was made.
    token: u64,
    /// Deliveries the lane tracks, which the read skips.
    pub(crate) known: FxHashSet<DeliveryId>,
    /// How many entries the read may return.
    pub(crate) room: usize,
}

/// The state of one delivery that a lane tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Ingest is writing it; the hand-over follows the flush.
    Incoming,
    /// Waiting in `ready`.
    Waiting,
    /// Its attempt runs, or its outcome is being written.
    Running,
}

#[derive(Debug)]
struct Lane {
    ready: VecDeque<Work>,
    /// Every delivery the lane tracks, so that reads of the due index skip them.
    known: FxHashMap<DeliveryId, Known>,
    /// Bumped whenever the due index may hold due entries the lane lacks.
    scan_requests: u64,
    /// The request count that the last complete read of the due index covered.
    scans_answered: u64,
    /// The earliest future due time known in the due index, in ms since the epoch.
    next_due: Option<u64>,
    /// No read of the due index before this time, after a read failed.
    scan_not_before: u64,
}

impl Default for Lane {
    fn default() -> Self {
        // A new lane has not read the due index yet, so it starts with a request.
        Self {
            ready: VecDeque::new(),
            known: FxHashMap::default(),
            scan_requests: 1,
            scans_answered: 0,
            next_due: None,
            scan_not_before: 0,
        }
    }
}

impl Lane {
    fn needs_scan(&self) -> bool {
        self.scan_requests != self.scans_answered
    }

    fn request_scan(&mut self) {
        self.scan_requests += 1;
    }

    /// Marks a delivery taken from `ready` as running, without a new key when it has one.
    fn mark_running(&mut self, id: &DeliveryId) {
        match self.known.get_mut(id) {
            Some(known) => *known = Known::Running,
            None => {
                self.known.insert(id.clone(), Known::Running);
            }
        }
    }
}

/// Every endpoint's lane.
#[derive(Debug, Default)]
pub(crate) struct ReadyLanes {
    inner: Mutex<Lanes>,
}

#[derive(Debug, Default)]
struct Lanes {
    lanes: FxHashMap<EndpointId, Lane>,
    /// Deliveries waiting in every lane's `ready` together.
    waiting: usize,
    /// Deliveries written without their due entry, by id, so oldest first.
    unindexed: BTreeMap<DeliveryId, Unindexed>,
    /// Deliveries whose id was made before this time (ms) are written with their due entry.
    defer_from: u64,
    /// The time that the last [`ReadyLanes::sweep`] gave as `indexed_before`, if any.
    marked: Option<u64>,
}

/// A delivery written without its due entry.
#[derive(Debug, Clone)]
struct Unindexed {
    endpoint: EndpointId,
    due_key: Vec<u8>,
}

impl Unindexed {
    /// Reads the due time from its due key, in ms since the epoch.
    fn due_ms(&self) -> Option<u64> {
        let start = self.endpoint.as_str().len();
        let bytes = self.due_key.get(start..start + 8)?;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// Due entries that the indexer is to write.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// Each delivery's endpoint, id and due entry.
    pub(crate) entries: Vec<(EndpointId, DeliveryId, Vec<u8>)>,
    /// Once they are written, every pending delivery made before this time (ms) has its due
    /// entry. Given when the sweep has entries, and otherwise once per [`MARK_EVERY_MS`].
    pub(crate) indexed_before: Option<u64>,
}

/// Checks whether a lane may take the hand-over of one more new delivery, with `waiting`
/// deliveries waiting in every lane together.
fn has_room(lane: &Lane, waiting: usize) -> bool {
    waiting < TOTAL_CAPACITY && lane.known.len() < LANE_CAPACITY
}

impl ReadyLanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes deliveries that ingest is about to write, so that a read of the due index between
    /// their write and their hand-over skips them. A lane without room for a hand-over gets no
    /// reservation: such a delivery is written with its due entry, and its lane reads it from
    /// there, as it would after a full lane turned the hand-over down.
    pub(crate) fn reserve<'a>(
        &self,
        deliveries: impl IntoIterator<Item = (&'a EndpointId, &'a DeliveryId)>,
    ) {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        for (endpoint, id) in deliveries {
            let lane = match lanes.get_mut(endpoint) {
                Some(lane) => lane,
                None => lanes.entry(endpoint.clone()).or_default(),
            };
            if has_room(lane, *waiting) {
                lane.known.entry(id.clone()).or_insert(Known::Incoming);
            }
        }
    }

    /// Marks the new deliveries of `active` endpoints as deferred, to be written without their
    /// due entry, and lists them as unindexed. Ingest calls this after [`ReadyLanes::reserve`]
    /// and before the write. A lane that tracks as many deliveries as it can hold gets none:
    /// the hand-over would not fit, and writing the due entry at ingest costs less than the indexer's work.
    pub(crate) fn defer(&self, writes: &mut [NewEventWrite], active: impl Fn(&EndpointId) -> bool) {
        let mut guard = self.lock();
        let Lanes {
            lanes,
            waiting,
            unindexed,
            defer_from,
            ..
        } = &mut *guard;
        // Only a reserved delivery can be handed over, so only a reserved one may be written
        // without its due entry. Its reservation is one of the deliveries the lane tracks.
        let room = |endpoint: &EndpointId, id: &DeliveryId| {
            lanes.get(endpoint).is_some_and(|lane| {
                lane.known.get(id) == Some(&Known::Incoming)
                    && *waiting < TOTAL_CAPACITY
                    && lane.known.len() <= LANE_CAPACITY
            })
        };
        for write in writes {
            let created_at = write.event.created_at;
            for delivery in &mut write.deliveries {
                let endpoint = &delivery.endpoint_id;
                delivery.deferred = delivery.id.timestamp_ms() >= *defer_from
                    && room(endpoint, &delivery.id)
                    && active(endpoint);
                if delivery.deferred {
                    let due_key =
                        crate::store::due_key(endpoint.as_str(), created_at, delivery.id.as_str());
                    let entry = Unindexed {
                        endpoint: endpoint.clone(),
                        due_key,
                    };
                    unindexed.insert(delivery.id.clone(), entry);
                }
            }
        }
    }

    /// Takes deliveries off the unindexed list when their write stored nothing, as for a
    /// repeated idempotency key.
    pub(crate) fn discard_unwritten<'a>(&self, ids: impl IntoIterator<Item = &'a DeliveryId>) {
        let mut guard = self.lock();
        for id in ids {
            guard.unindexed.remove(id);
        }
    }

    /// Checks whether the delivery was written without the due entry `due_key`, so its outcome
    /// has no entry to remove.
    pub(crate) fn is_unindexed(&self, id: &DeliveryId, due_key: &[u8]) -> bool {
        self.lock()
            .unindexed
            .get(id)
            .is_some_and(|entry| entry.due_key == due_key)
    }

    /// Takes a delivery off the unindexed list once an outcome of it, or its due entry, is
    /// written.
    pub(crate) fn settled(&self, id: &DeliveryId) {
        self.lock().unindexed.remove(id);
    }

    /// Sets the time before which deliveries are written with their due entry. The start sets
    /// it once the store has every entry, and the stop sets it to the end of time.
    pub(crate) fn defer_from(&self, ms: u64) {
        let mut guard = self.lock();
        guard.defer_from = guard.defer_from.max(ms);
    }

    /// Takes off the unindexed list what the indexer should write now: the deliveries that no
    /// lane holds, and those made before `hold_until` (ms) or before the `hold_until` of an
    /// earlier sweep, whichever is later. From then on, deliveries made before that time are
    /// written with their due entry.
    pub(crate) fn sweep(&self, hold_until: u64) -> Sweep {
        let mut guard = self.lock();
        let Lanes {
            lanes,
            unindexed,
            defer_from,
            marked,
            ..
        } = &mut *guard;
        *defer_from = (*defer_from).max(hold_until);
        // Compared with `defer_from`, not `hold_until`: after the clock goes back, deliveries
        // put back by `unsweep` can be older than the mark this sweep gives.
        let keep_from = *defer_from;
        let mut sweep = Sweep::default();
        unindexed.retain(|id, entry| {
            let in_lane = lanes
                .get(&entry.endpoint)
                .and_then(|lane| lane.known.get(id))
                .is_some();
            if in_lane && id.timestamp_ms() >= keep_from {
                return true;
            }
            let due_key = std::mem::take(&mut entry.due_key);
            sweep
                .entries
                .push((entry.endpoint.clone(), id.clone(), due_key));
            false
        });
        let due = marked.is_none_or(|at| *defer_from >= at.saturating_add(MARK_EVERY_MS));
        if due || !sweep.entries.is_empty() {
            sweep.indexed_before = Some(*defer_from);
            *marked = Some(*defer_from);
        }
        sweep
    }

    /// Returns, per endpoint, the earliest due time of the unindexed deliveries that wait in
    /// memory or in no lane, for the metrics: the due index does not contain them yet.
    pub(crate) fn earliest_unindexed(&self) -> FxHashMap<EndpointId, u64> {
        let guard = self.lock();
        let mut earliest: FxHashMap<EndpointId, u64> = FxHashMap::default();
        for (id, entry) in &guard.unindexed {
            let known = guard
                .lanes
                .get(&entry.endpoint)
                .and_then(|lane| lane.known.get(id));
            if matches!(known, Some(Known::Running | Known::Incoming)) {
                continue;
            }
            if let Some(due) = entry.due_ms() {
                earliest
                    .entry(entry.endpoint.clone())
                    .and_modify(|known_due| *known_due = (*known_due).min(due))
                    .or_insert(due);
            }
        }
        earliest
    }

    /// Puts back entries of a sweep that could not be written, for the next sweep.
    pub(crate) fn unsweep(&self, entries: Vec<(EndpointId, DeliveryId, Vec<u8>)>) {
        let mut guard = self.lock();
        for (endpoint, id, due_key) in entries {
            guard.unindexed.insert(id, Unindexed { endpoint, due_key });
        }
    }

    /// Drops reservations that get no hand-over, after a failed write, for an endpoint that is
    /// paused or deleted, or for a delivery that got no reservation. The due index keeps whatever
    /// was written, for a later read, and the indexer writes the entries of deferred deliveries.
    pub(crate) fn unreserve<'a>(
        &self,
        deliveries: impl IntoIterator<Item = (&'a EndpointId, &'a DeliveryId)>,
    ) {
        let mut guard = self.lock();
        for (endpoint, id) in deliveries {
            let Some(lane) = guard.lanes.get_mut(endpoint) else {
                continue;
            };
            match lane.known.get(id) {
                Some(Known::Incoming) => {
                    lane.known.remove(id);
                    lane.request_scan();
                }
                // Read from the due index already, or even sent.
                Some(Known::Waiting | Known::Running) => {}
                None => lane.request_scan(),
            }
        }
    }

    /// Hands reserved deliveries, now flushed, to their lanes. A full lane leaves them to the
    /// due index and requests a read of it instead; the indexer writes the entries of deferred
    /// ones.
    pub(crate) fn offer(&self, works: impl IntoIterator<Item = (EndpointId, Work)>) {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        for (endpoint, work) in works {
            let lane = lanes.entry(endpoint).or_default();
            let id = &work.due.delivery_id;
            let full = lane.ready.len() >= LANE_CAPACITY || *waiting >= TOTAL_CAPACITY;
            match lane.known.get(id) {
                // Read from the due index already, or even sent: nothing to hand over.
                Some(Known::Waiting | Known::Running) => {}
                Some(Known::Incoming) if full => {
                    lane.known.remove(id);
                    lane.request_scan();
                }
                Some(Known::Incoming) => {
                    lane.known.insert(id.clone(), Known::Waiting);
                    lane.ready.push_back(work);
                    *waiting += 1;
                }
                // The reservation went with a deleted endpoint's lane: the due index decides.
                None => lane.request_scan(),
            }
        }
    }

    /// Notes that an endpoint's due index may hold due entries its lane lacks.
    pub(crate) fn request_scan(&self, endpoint: &EndpointId) {
        self.lock()
            .lanes
            .entry(endpoint.clone())
            .or_default()
            .request_scan();
    }

    /// Decides whether the scheduler should read an endpoint's due index before taking `free`
    /// deliveries at `now_ms`, and what the read should skip.
    pub(crate) fn plan_scan(
        &self,
        endpoint: &EndpointId,
        free: usize,
        now_ms: u64,
    ) -> Option<ScanPlan> {
        let mut guard = self.lock();
        // Every lane together keeps at most `TOTAL_CAPACITY` waiting, beyond the free slots.
        let total_room = TOTAL_CAPACITY.saturating_sub(guard.waiting);
        let lane = guard.lanes.entry(endpoint.clone()).or_default();
        if lane.next_due.is_some_and(|due| due <= now_ms) {
            lane.next_due = None;
            lane.request_scan();
        }
        let room = LANE_CAPACITY
            .saturating_sub(lane.ready.len())
            .min(total_room)
            .max(free);
        if !lane.needs_scan()
            || lane.ready.len() >= free.max(REFILL_BELOW)
            || room == 0
            || now_ms < lane.scan_not_before
        {
            return None;
        }
        Some(ScanPlan {
            token: lane.scan_requests,
            known: lane.known.keys().cloned().collect(),
            room,
        })
    }

    /// Adds what a read of the due index found, skipping what the lane learned meanwhile.
    pub(crate) fn fill(&self, endpoint: &EndpointId, plan: ScanPlan, loaded: LoadedDue) {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        let lane = lanes.entry(endpoint.clone()).or_default();
        for due in loaded.works {
            if let Entry::Vacant(slot) = lane.known.entry(due.delivery_id.clone()) {
                slot.insert(Known::Waiting);
                lane.ready.push_back(Work { due, body: None });
                *waiting += 1;
            }
        }
        if loaded.complete && lane.scan_requests == plan.token {
            lane.scans_answered = plan.token;
        }
        if let Some(due) = loaded.next_due {
            lane.next_due = Some(lane.next_due.map_or(due, |known| known.min(due)));
        }
    }

    /// Puts off the next read of an endpoint's due index until `at_ms`, after a read failed.
    pub(crate) fn defer_scan(&self, endpoint: &EndpointId, at_ms: u64) {
        let mut guard = self.lock();
        let lane = guard.lanes.entry(endpoint.clone()).or_default();
        lane.scan_not_before = at_ms;
        lane.next_due = Some(lane.next_due.map_or(at_ms, |known| known.min(at_ms)));
    }

    /// Takes up to `count` deliveries of an endpoint for attempts and marks them running.
    pub(crate) fn take(&self, endpoint: &EndpointId, count: usize) -> Vec<Work> {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        let Some(lane) = lanes.get_mut(endpoint) else {
            return Vec::new();
        };
        let count = count.min(lane.ready.len());
        let picked: Vec<Work> = lane.ready.drain(..count).collect();
        for work in &picked {
            lane.mark_running(&work.due.delivery_id);
        }
        *waiting -= picked.len();
        picked
    }

    /// Takes the next waiting delivery of an endpoint for the task of an attempt that just
    /// ended, and returns it with whether the lane wants a read of its due index now.
    pub(crate) fn take_next(&self, endpoint: &EndpointId) -> (Option<Work>, bool) {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        let Some(lane) = lanes.get_mut(endpoint) else {
            return (None, false);
        };
        let work = lane.ready.pop_front();
        if let Some(work) = &work {
            lane.mark_running(&work.due.delivery_id);
            *waiting -= 1;
        }
        (work, lane.needs_scan() && lane.ready.len() < REFILL_BELOW)
    }

    /// Returns the earliest future due time that an endpoint's lane tracks.
    pub(crate) fn next_due(&self, endpoint: &EndpointId) -> Option<u64> {
        self.lock()
            .lanes
            .get(endpoint)
            .and_then(|lane| lane.next_due)
    }

    /// Forgets a delivery whose outcome is written; `next_due` is its next attempt, if any.
    pub(crate) fn finished(&self, endpoint: &EndpointId, id: &DeliveryId, next_due: Option<u64>) {
        let mut guard = self.lock();
        let Some(lane) = guard.lanes.get_mut(endpoint) else {
            return;
        };
        lane.known.remove(id);
        if let Some(due) = next_due {
            lane.next_due = Some(lane.next_due.map_or(due, |known| known.min(due)));
        }
    }

    /// Takes a waiting delivery out of its lane, for a replay that rewrites its due entry.
    pub(crate) fn withdraw(&self, endpoint: &EndpointId, id: &DeliveryId) -> Presence {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        let Some(lane) = lanes.get_mut(endpoint) else {
            return Presence::Absent;
        };
        match lane.known.get(id) {
            None | Some(Known::Incoming) => Presence::Absent,
            Some(Known::Running) => Presence::Running,
            Some(Known::Waiting) => {
                lane.known.remove(id);
                if let Some(at) = lane
                    .ready
                    .iter()
                    .position(|work| &work.due.delivery_id == id)
                {
                    lane.ready.remove(at);
                    *waiting -= 1;
                }
                Presence::Withdrawn
            }
        }
    }

    /// Checks whether a delivery's attempt is running.
    pub(crate) fn is_running(&self, endpoint: &EndpointId, id: &DeliveryId) -> bool {
        self.lock()
            .lanes
            .get(endpoint)
            .and_then(|lane| lane.known.get(id))
            .is_some_and(|known| *known == Known::Running)
    }

    /// Drops the waiting deliveries of a paused endpoint from memory; they stay in the due
    /// index for its resume.
    pub(crate) fn release(&self, endpoint: &EndpointId) {
        let mut guard = self.lock();
        let Lanes { lanes, waiting, .. } = &mut *guard;
        let Some(lane) = lanes.get_mut(endpoint) else {
            return;
        };
        if lane.ready.is_empty() {
            return;
        }
        for work in lane.ready.drain(..) {
            lane.known.remove(&work.due.delivery_id);
            *waiting -= 1;
        }
        lane.request_scan();
    }

    /// Removes a deleted endpoint's lane. Returns the deliveries whose attempts still run,
    /// which their outcomes end, and the due entries of the endpoint's other unindexed
    /// deliveries, which the caller writes so that cancelling finds them.
    ///
    /// The lane stays while attempts run and tracks only those, so that a sweep keeps their
    /// deliveries and a later cancel of the endpoint's queue skips them.
    pub(crate) fn remove(&self, endpoint: &EndpointId) -> Removed {
        let mut guard = self.lock();
        let Lanes {
            lanes,
            waiting,
            unindexed,
            ..
        } = &mut *guard;
        let running: FxHashSet<DeliveryId> = match lanes.get_mut(endpoint) {
            Some(lane) => {
                *waiting -= lane.ready.len();
                lane.ready.clear();
                lane.known.retain(|_, known| *known == Known::Running);
                lane.known.keys().cloned().collect()
            }
            None => FxHashSet::default(),
        };
        if running.is_empty() {
            lanes.remove(endpoint);
        }
        let unindexed = unindexed
            .iter()
            .filter(|(id, entry)| entry.endpoint == *endpoint && !running.contains(*id))
            .map(|(id, entry)| (id.clone(), entry.due_key.clone()))
            .collect();
        Removed { running, unindexed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{due_key, DeliveryRecord, NewDelivery, NewEvent};
    use belter_common::records::{AttemptTrigger, DeliveryStatus};
    use belter_common::{EventId, EventType};

    fn work(endpoint: &EndpointId) -> Work {
        let id = DeliveryId::generate();
        Work {
            due: DueWork {
                due_key: id.as_str().as_bytes().to_vec(),
                delivery_id: id,
                record: DeliveryRecord {
                    event_id: "evt".to_owned(),
                    event_type: 0,
                    endpoint_id: endpoint.to_string(),
                    target_url: "http://127.0.0.1:9/".to_owned(),
                    status: DeliveryStatus::Pending,
                    attempt_count: 0,
                    scheduled_attempts: 0,
                    created_at: 0,
                    updated_at: 0,
                    next_attempt_at: Some(0),
                    next_trigger: AttemptTrigger::First,
                    last_status_code: None,
                    last_failure: None,
                    last_error: None,
                    last_latency_ms: None,
                    latest_attempt: None,
                },
                stored_attempt: false,
            },
            body: None,
        }
    }

    /// Reserves and hands over `works`, as ingest does around its write.
    fn hand_over(lanes: &ReadyLanes, endpoint: &EndpointId, works: Vec<Work>) {
        let ids: Vec<DeliveryId> = works
            .iter()
            .map(|work| work.due.delivery_id.clone())
            .collect();
        lanes.reserve(ids.iter().map(|id| (endpoint, id)));
        lanes.offer(works.into_iter().map(|work| (endpoint.clone(), work)));
    }

    fn answer(lanes: &ReadyLanes, endpoint: &EndpointId, works: Vec<DueWork>, next: Option<u64>) {
        let plan = lanes.plan_scan(endpoint, 10_000, 0).expect("a scan is due");
        lanes.fill(
            endpoint,
            plan,
            LoadedDue {
                works,
                complete: true,
                next_due: next,
            },
        );
    }

    #[test]
    fn low_lane_requests_early_read() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let plan = lanes.plan_scan(&endpoint, 1, 0).expect("a new lane reads");
        let works = (0..=REFILL_BELOW).map(|_| work(&endpoint).due).collect();
        let incomplete = LoadedDue {
            works,
            complete: false,
            next_due: None,
        };
        lanes.fill(&endpoint, plan, incomplete);
        assert!(lanes.plan_scan(&endpoint, 1, 0).is_none(), "enough waits");

        let (first, wants_read) = lanes.take_next(&endpoint);
        let first = first.expect("a delivery waits").due.delivery_id;
        assert!(!wants_read, "{REFILL_BELOW} still wait");
        let (second, wants_read) = lanes.take_next(&endpoint);
        assert!(second.is_some());
        assert!(
            wants_read,
            "fewer than {REFILL_BELOW} wait and the index holds more"
        );

        let plan = lanes
            .plan_scan(&endpoint, 0, 0)
            .expect("the read runs with every slot busy");
        assert!(
            plan.known.contains(&first),
            "running deliveries are skipped"
        );
        lanes.fill(
            &endpoint,
            plan,
            LoadedDue {
                works: Vec::new(),
                complete: true,
                next_due: None,
            },
        );
        assert!(!lanes.take_next(&endpoint).1, "the index is read whole");
        assert_eq!(lanes.take(&endpoint, usize::MAX).len(), REFILL_BELOW - 2);
        assert!(lanes.take_next(&endpoint).0.is_none());
    }

    #[test]
    fn new_lane_reads_the_index_once() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let offered = work(&endpoint);
        let offered_id = offered.due.delivery_id.clone();
        hand_over(&lanes, &endpoint, vec![offered]);
        let stored_twice = DueWork {
            delivery_id: offered_id,
            due_key: Vec::new(),
            record: work(&endpoint).due.record,
            stored_attempt: false,
        };
        answer(
            &lanes,
            &endpoint,
            vec![work(&endpoint).due, stored_twice],
            None,
        );
        assert!(lanes.plan_scan(&endpoint, 10, 0).is_none());
        assert_eq!(lanes.take(&endpoint, 10).len(), 2);
    }

    #[test]
    fn running_delivery_is_not_loaded_twice() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let first = work(&endpoint);
        let id = first.due.delivery_id.clone();
        answer(&lanes, &endpoint, vec![first.due], None);

        assert_eq!(lanes.take(&endpoint, 1).len(), 1);
        assert!(lanes.is_running(&endpoint, &id));

        lanes.request_scan(&endpoint);
        let plan = lanes.plan_scan(&endpoint, 1, 0).unwrap();
        assert!(plan.known.contains(&id));
        let again = DueWork {
            delivery_id: id.clone(),
            due_key: Vec::new(),
            record: work(&endpoint).due.record,
            stored_attempt: false,
        };
        lanes.fill(
            &endpoint,
            plan,
            LoadedDue {
                works: vec![again],
                complete: true,
                next_due: None,
            },
        );
        assert!(lanes.take(&endpoint, 10).is_empty());

        assert_eq!(lanes.withdraw(&endpoint, &id), Presence::Running);
        lanes.finished(&endpoint, &id, Some(500));
        assert!(!lanes.is_running(&endpoint, &id));
        assert_eq!(lanes.next_due(&endpoint), Some(500));
        assert!(lanes.plan_scan(&endpoint, 1, 499).is_none());
        assert!(lanes.plan_scan(&endpoint, 1, 500).is_some());
    }

    /// Returns an endpoint whose lane read its empty index and was then offered one delivery
    /// more than it can hold.
    fn overfilled_lane(lanes: &ReadyLanes) -> EndpointId {
        let endpoint = EndpointId::generate();
        answer(lanes, &endpoint, Vec::new(), None);
        hand_over(
            lanes,
            &endpoint,
            (0..=LANE_CAPACITY).map(|_| work(&endpoint)).collect(),
        );
        endpoint
    }

    #[test]
    fn full_lane_leaves_new_work_to_the_index() {
        let lanes = ReadyLanes::default();
        let endpoint = overfilled_lane(&lanes);
        assert!(lanes.plan_scan(&endpoint, LANE_CAPACITY + 1, 0).is_some());
        assert_eq!(lanes.take(&endpoint, usize::MAX).len(), LANE_CAPACITY);
    }

    #[test]
    fn withdraw_release_and_remove() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        answer(&lanes, &endpoint, Vec::new(), None);
        let waiting = work(&endpoint);
        let waiting_id = waiting.due.delivery_id.clone();
        let running = work(&endpoint);
        let running_id = running.due.delivery_id.clone();
        hand_over(&lanes, &endpoint, vec![running, waiting]);
        assert_eq!(lanes.take(&endpoint, 1).len(), 1);
        assert_eq!(lanes.withdraw(&endpoint, &waiting_id), Presence::Withdrawn);
        assert_eq!(lanes.withdraw(&endpoint, &waiting_id), Presence::Absent);
        hand_over(&lanes, &endpoint, vec![work(&endpoint)]);
        lanes.release(&endpoint);
        assert!(lanes.take(&endpoint, 10).is_empty());
        assert_eq!(
            lanes.remove(&endpoint).running,
            FxHashSet::from_iter([running_id])
        );
    }

    #[test]
    fn read_during_write_skips_reserved() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        answer(&lanes, &endpoint, Vec::new(), None);
        let incoming = work(&endpoint);
        let id = incoming.due.delivery_id.clone();
        lanes.reserve([(&endpoint, &id)]);
        lanes.request_scan(&endpoint);
        let plan = lanes.plan_scan(&endpoint, 10, 0).expect("a scan is due");
        assert!(plan.known.contains(&id), "a reserved delivery is skipped");
        lanes.offer([(endpoint.clone(), incoming)]);
        assert_eq!(lanes.take(&endpoint, 10).len(), 1);
    }

    #[test]
    fn late_hand_over_sends_nothing_twice() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        answer(&lanes, &endpoint, Vec::new(), None);
        let late = work(&endpoint);
        let id = late.due.delivery_id.clone();
        // Read from the due index, sent and finished before ingest hands it over.
        answer_again(&lanes, &endpoint, late.due.clone());
        assert_eq!(lanes.take(&endpoint, 10).len(), 1);
        lanes.finished(&endpoint, &id, None);
        lanes.offer([(endpoint.clone(), late)]);
        assert!(lanes.take(&endpoint, 10).is_empty());
    }

    fn answer_again(lanes: &ReadyLanes, endpoint: &EndpointId, due: DueWork) {
        lanes.request_scan(endpoint);
        answer(lanes, endpoint, vec![due], None);
    }

    #[test]
    fn failed_write_drops_reservation() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        answer(&lanes, &endpoint, Vec::new(), None);
        let id = DeliveryId::generate();
        lanes.reserve([(&endpoint, &id)]);
        lanes.unreserve([(&endpoint, &id)]);
        let plan = lanes
            .plan_scan(&endpoint, 10, 0)
            .expect("the index is read again");
        assert!(!plan.known.contains(&id));
    }

    /// Builds an ingest write of one event, made at 1,000 ms, with one delivery to `endpoint`.
    fn new_write(endpoint: &EndpointId) -> NewEventWrite {
        NewEventWrite {
            event: NewEvent {
                id: EventId::generate(),
                kind: EventType::CsatReceived,
                created_at: 1_000,
                body: Vec::new(),
            },
            deliveries: vec![NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: endpoint.clone(),
                target_url: "http://127.0.0.1:9/".to_owned(),
                deferred: false,
            }],
            derived_from: None,
        }
    }

    /// Reserves and defers one new delivery as ingest does, and returns it with its due key.
    fn defer_one(lanes: &ReadyLanes, endpoint: &EndpointId) -> (NewEventWrite, Vec<u8>) {
        let mut writes = [new_write(endpoint)];
        let id = writes[0].deliveries[0].id.clone();
        lanes.reserve([(endpoint, &id)]);
        lanes.defer(&mut writes, |_| true);
        let [write] = writes;
        assert!(write.deliveries[0].deferred);
        (write, due_key(endpoint.as_str(), 1_000, id.as_str()))
    }

    /// Hands a reserved write's deliveries to their lanes, as ingest does after the flush.
    fn offer_write(lanes: &ReadyLanes, write: &NewEventWrite) {
        lanes.offer(
            write
                .due_works()
                .map(|(endpoint, due)| (endpoint.clone(), Work { due, body: None })),
        );
    }

    #[test]
    fn sweep_takes_released_delivery() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let (write, key) = defer_one(&lanes, &endpoint);
        let id = write.deliveries[0].id.clone();
        assert!(lanes.is_unindexed(&id, &key));
        assert!(!lanes.is_unindexed(&id, b"a replay's key"));

        let first = lanes.sweep(0);
        assert!(first.entries.is_empty(), "a reserved delivery stays listed");
        assert_eq!(first.indexed_before, Some(0), "the first sweep marks");
        assert_eq!(lanes.sweep(0).indexed_before, None, "nothing to mark");

        lanes.unreserve([(&endpoint, &id)]);
        let swept = lanes.sweep(0);
        assert_eq!(
            swept.entries,
            vec![(endpoint.clone(), id.clone(), key.clone())]
        );
        assert!(!lanes.is_unindexed(&id, &key));
        lanes.unsweep(swept.entries);
        assert!(
            lanes.is_unindexed(&id, &key),
            "a failed write is tried again"
        );
    }

    #[test]
    fn removed_lane_keeps_running_deliveries() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let (write, key) = defer_one(&lanes, &endpoint);
        let id = write.deliveries[0].id.clone();
        offer_write(&lanes, &write);
        assert_eq!(lanes.take(&endpoint, 1).len(), 1);

        let removed = lanes.remove(&endpoint);
        assert_eq!(removed.running, FxHashSet::from_iter([id.clone()]));
        assert!(lanes.is_running(&endpoint, &id));
        assert!(
            lanes.sweep(0).entries.is_empty(),
            "its attempt still runs, so its outcome ends it"
        );
        assert!(lanes.is_unindexed(&id, &key));
        let again = lanes.remove(&endpoint);
        assert_eq!(
            again.running,
            FxHashSet::from_iter([id.clone()]),
            "a second cancel skips it too"
        );

        lanes.settled(&id);
        lanes.finished(&endpoint, &id, None);
        assert!(lanes.remove(&endpoint).running.is_empty());
        assert!(
            lanes.lock().lanes.is_empty(),
            "the lane goes with its last attempt"
        );
    }

    #[test]
    fn held_delivery_is_swept_after_the_hold_limit() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let (write, key) = defer_one(&lanes, &endpoint);
        offer_write(&lanes, &write);
        let id = &write.deliveries[0].id;
        let created_ms = id.timestamp_ms();

        assert!(
            lanes.sweep(created_ms).entries.is_empty(),
            "held, and young"
        );
        let swept = lanes.sweep(created_ms + 1);
        assert_eq!(swept.entries, vec![(endpoint.clone(), id.clone(), key)]);
        assert_eq!(swept.indexed_before, Some(created_ms + 1));
        assert_eq!(
            lanes.take(&endpoint, 10).len(),
            1,
            "the lane still holds it"
        );
    }

    #[test]
    fn mark_covers_unswept_delivery_after_clock_goes_back() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let (kept, key) = defer_one(&lanes, &endpoint);
        offer_write(&lanes, &kept);
        let id = kept.deliveries[0].id.clone();
        let created_ms = id.timestamp_ms();
        let failed = lanes.sweep(created_ms + 1);
        assert_eq!(failed.entries.len(), 1, "past the hold limit");
        lanes.unsweep(failed.entries);

        // Another delivery leaves its lane, and the clock goes back a minute before the sweep.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (released, _) = defer_one(&lanes, &endpoint);
        lanes.unreserve([(&endpoint, &released.deliveries[0].id)]);
        let swept = lanes.sweep(created_ms.saturating_sub(60_000));
        let mark = swept
            .indexed_before
            .expect("entries are written, so it marks");

        assert!(mark > created_ms, "the mark covers the held delivery");
        assert!(
            swept.entries.contains(&(endpoint.clone(), id, key)),
            "a delivery made before the mark is written with it"
        );
    }

    #[test]
    fn late_or_inactive_deliveries_are_not_deferred() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let mut paused = [new_write(&endpoint)];
        lanes.defer(&mut paused, |_| false);
        assert!(!paused[0].deliveries[0].deferred);
        lanes.defer_from(u64::MAX);
        let mut late = [new_write(&endpoint)];
        lanes.defer(&mut late, |_| true);
        assert!(!late[0].deliveries[0].deferred);
        assert!(lanes.sweep(0).entries.is_empty(), "nothing was deferred");
    }

    #[test]
    fn earliest_unindexed_skips_running_deliveries() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let (running, _) = defer_one(&lanes, &endpoint);
        assert!(
            lanes.earliest_unindexed().is_empty(),
            "a delivery being written is not queued yet"
        );
        offer_write(&lanes, &running);
        assert_eq!(
            lanes.earliest_unindexed().get(&endpoint),
            Some(&1_000),
            "waiting in memory"
        );
        assert_eq!(lanes.take(&endpoint, 1).len(), 1);
        assert!(lanes.earliest_unindexed().is_empty(), "its attempt runs");
        let (released, _) = defer_one(&lanes, &endpoint);
        let id = released.deliveries[0].id.clone();
        lanes.unreserve([(&endpoint, &id)]);
        assert_eq!(
            lanes.earliest_unindexed().get(&endpoint),
            Some(&1_000),
            "in no lane until the indexer writes it"
        );
    }

    #[test]
    fn sweep_marks_once_per_interval() {
        let lanes = ReadyLanes::default();
        assert_eq!(lanes.sweep(1_000).indexed_before, Some(1_000));
        assert_eq!(lanes.sweep(2_000).indexed_before, None);
        let later = 1_000 + MARK_EVERY_MS;
        assert_eq!(lanes.sweep(later).indexed_before, Some(later));
    }

    #[test]
    fn full_lane_gets_no_deferred_delivery() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        hand_over(
            &lanes,
            &endpoint,
            (1..LANE_CAPACITY).map(|_| work(&endpoint)).collect(),
        );
        let (write, _) = defer_one(&lanes, &endpoint);
        assert!(write.deliveries[0].deferred, "the last one that fits");
        let mut over = [new_write(&endpoint)];
        let id = over[0].deliveries[0].id.clone();
        lanes.reserve([(&endpoint, &id)]);
        lanes.defer(&mut over, |_| true);
        assert!(!over[0].deliveries[0].deferred);
    }

    #[test]
    fn full_lane_reserves_nothing() {
        let lanes = ReadyLanes::default();
        let endpoint = overfilled_lane(&lanes);
        answer(&lanes, &endpoint, Vec::new(), None);
        let mut writes = [new_write(&endpoint)];
        let id = writes[0].deliveries[0].id.clone();
        lanes.reserve([(&endpoint, &id)]);
        lanes.defer(&mut writes, |_| true);
        assert!(!writes[0].deliveries[0].deferred);
        assert!(
            lanes.plan_scan(&endpoint, 10_000, 0).is_none(),
            "nothing new to read before the write"
        );
        lanes.unreserve([(&endpoint, &id)]);
        let plan = lanes
            .plan_scan(&endpoint, 10_000, 0)
            .expect("the written entry is read");
        assert!(!plan.known.contains(&id), "it was never reserved");
    }

    #[test]
    fn reads_stop_at_total_capacity() {
        let lanes = ReadyLanes::default();
        for _ in 0..TOTAL_CAPACITY / LANE_CAPACITY {
            let endpoint = EndpointId::generate();
            let works = (0..LANE_CAPACITY).map(|_| work(&endpoint).due).collect();
            answer(&lanes, &endpoint, works, None);
        }
        let last = EndpointId::generate();
        assert!(
            lanes.plan_scan(&last, 0, 0).is_none(),
            "no read while every lane together is full"
        );
        let plan = lanes
            .plan_scan(&last, 4, 0)
            .expect("free slots still get work");
        assert_eq!(plan.room, 4);
    }

    #[test]
    fn settle_and_remove_unlist_deliveries() {
        let lanes = ReadyLanes::default();
        let endpoint = EndpointId::generate();
        let deferred: Vec<(NewEventWrite, Vec<u8>)> =
            (0..4).map(|_| defer_one(&lanes, &endpoint)).collect();
        for (write, _) in &deferred {
            offer_write(&lanes, write);
        }
        let id = |at: usize| deferred[at].0.deliveries[0].id.clone();
        let key = |at: usize| deferred[at].1.clone();
        assert_eq!(lanes.take(&endpoint, 1).len(), 1);
        lanes.settled(&id(0));
        assert!(
            !lanes.is_unindexed(&id(0), &key(0)),
            "its outcome is written"
        );
        assert_eq!(lanes.withdraw(&endpoint, &id(1)), Presence::Withdrawn);
        assert!(
            lanes.is_unindexed(&id(1), &key(1)),
            "listed until the replay's outcome"
        );
        lanes.settled(&id(1));
        assert_eq!(lanes.take(&endpoint, 1).len(), 1);

        let removed = lanes.remove(&endpoint);
        assert_eq!(removed.running, FxHashSet::from_iter([id(0), id(2)]));
        assert_eq!(
            removed.unindexed,
            vec![(id(3), key(3))],
            "the waiting one is to be cancelled"
        );
        assert!(lanes.is_unindexed(&id(2), &key(2)), "its outcome ends it");
    }
}
