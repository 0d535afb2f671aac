//! Delivery records of one ingest request, kept in record groups until a change needs a key of
//! their own.
//!
//! Ingest writes the new deliveries of one request's events as record groups in the
//! `delivery_groups` tree, under keys that name the span of their ids, instead of one key each
//! in `deliveries`. The outcome writer writes the records of first attempts that ended their
//! deliveries back into their group, one write per group for a batch of outcomes. Any other
//! change writes the delivery's own record in `deliveries`, which takes precedence over its copy
//! in the group from then on. Retention removes a group with the events key that contains the
//! request's events, after the records of its members.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Range;

use rustc_hash::{FxHashMap, FxHashSet};

use belter_common::DeliveryId;

use super::groups::{find_group_key, find_member, group_key, key_span, stored_in_tree};
use super::{DeliveryRecord, Store, StoreError};
use crate::codec::{encode, encode_group, GroupIndex};

/// New records for members of one delivery group: by id, the delivery and its encoded record.
type MemberUpdates<'a> = FxHashMap<&'a [u8], (&'a DeliveryId, Vec<u8>)>;

/// Keys and values of a sled tree, in either direction.
type Entries = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

/// A stored delivery record: the stored value that contains it and where in that value it lies.
pub(super) struct StoredRecord {
    value: sled::IVec,
    range: Range<usize>,
}

impl StoredRecord {
    /// Returns the encoded record.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.value[self.range.clone()]
    }
}

/// Maximum bytes of a delivery group. sled 0.34 writes a node of over 128 KiB to a file of its
/// own. It then counts the node in its cache as the few bytes that point to that file, so the
/// cache's size limit does not cover it. A leaf has up to 17 keys, so groups of this size keep
/// every leaf of the tree under 128 KiB, and the cache bounds the memory that the groups take.
/// An outcome whose record would make its group larger is written as the delivery's own record.
const MAX_GROUP_BYTES: usize = 7 * 1024;

/// Maximum bytes of a new delivery group. Each outcome written into the group adds its attempt to a
/// record, about 110 bytes for a short response, so a new group leaves room for that.
const MAX_NEW_GROUP_BYTES: usize = 4 * 1024;

impl Store {
    /// Writes the records of new deliveries, sorted by id, in record groups of at most
    /// [`MAX_NEW_GROUP_BYTES`] when `may_group` allows it, one by one in `deliveries` otherwise.
    pub(super) fn write_new_deliveries(
        &self,
        deliveries: &[(&str, Vec<u8>)],
        may_group: bool,
    ) -> Result<(), StoreError> {
        if !may_group {
            return self.write_single_deliveries(deliveries);
        }
        // A member takes its record, its id, and an id length and a record end in the index.
        let size = |(id, record): &(&str, Vec<u8>)| id.len() + record.len() + 5;
        let mut start = 0;
        while start < deliveries.len() {
            let mut end = start + 1;
            let mut bytes = size(&deliveries[start]);
            while end < deliveries.len() && bytes + size(&deliveries[end]) <= MAX_NEW_GROUP_BYTES {
                bytes += size(&deliveries[end]);
                end += 1;
            }
            self.write_delivery_group(&deliveries[start..end])?;
            start = end;
        }
        Ok(())
    }

    fn write_single_deliveries(&self, deliveries: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        for (id, record) in deliveries {
            self.put_own_record(id.as_bytes(), record)?;
        }
        Ok(())
    }

    /// Writes new delivery records, sorted by id: as one record group when there are several
    /// and no stored group reaches into their span, one by one otherwise.
    fn write_delivery_group(&self, deliveries: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        if let [(first, _), .., (last, _)] = deliveries {
            if self.delivery_span_is_free(first, last)? {
                let group = encode_group(deliveries)?;
                self.delivery_groups.insert(group_key(first, last), group)?;
                return Ok(());
            }
        }
        self.write_single_deliveries(deliveries)
    }

    /// Checks that no stored delivery group reaches into the span from `first` to `last`. Ids
    /// made by this process after the store opened come in runs that do not overlap, so a span
    /// after every group stored then needs no read.
    fn delivery_span_is_free(&self, first: &str, last: &str) -> Result<bool, StoreError> {
        if first.as_bytes() > self.delivery_groups_end.as_slice() {
            return Ok(true);
        }
        match self.delivery_groups.range(first.as_bytes()..).next() {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(key_span(&key).0 > last.as_bytes())
            }
            None => Ok(true),
        }
    }

    /// Reads the stored record of one delivery: its own key in `deliveries` when it has one,
    /// its copy in the request's delivery group otherwise.
    pub(super) fn delivery_bytes(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        if let Some(value) = self.own_record(id.as_bytes())? {
            let range = 0..value.len();
            return Ok(Some(StoredRecord { value, range }));
        }
        let found = find_member(
            &self.delivery_groups,
            &self.recent_delivery_groups,
            id,
            stored_in_tree,
        )?;
        Ok(found.map(|(value, range)| StoredRecord { value, range }))
    }

    /// Writes the records of deliveries that have no record of their own into the delivery
    /// groups that contain their first records, one write per group, and returns the ids written.
    /// The rest, and any whose group is gone, are left to the caller.
    pub(crate) fn write_records_in_groups(
        &self,
        records: &[(&DeliveryId, &DeliveryRecord)],
    ) -> Result<FxHashSet<DeliveryId>, StoreError> {
        let mut by_group: BTreeMap<Vec<u8>, MemberUpdates<'_>> = BTreeMap::new();
        for &(id, record) in records {
            if self.own_record(id.as_str().as_bytes())?.is_some() {
                continue;
            }
            let key = find_group_key(
                &self.delivery_groups,
                &self.recent_delivery_groups,
                id.as_str(),
            )?;
            let Some(key) = key else {
                continue;
            };
            by_group
                .entry(key.to_vec())
                .or_default()
                .insert(id.as_str().as_bytes(), (id, encode(record)?));
        }
        let mut written = FxHashSet::default();
        for (key, updates) in &by_group {
            let changed =
                self.recent_delivery_groups
                    .rewrite(&self.delivery_groups, key, |old| {
                        let index = GroupIndex::read(old)?;
                        let mut changed = Vec::with_capacity(updates.len());
                        let members: Vec<(&[u8], &[u8])> = index
                            .members()
                            .map(|(id, record)| match updates.get(&old[id.clone()]) {
                                Some((delivery_id, new)) => {
                                    changed.push(*delivery_id);
                                    (&old[id], new.as_slice())
                                }
                                None => (&old[id], &old[record]),
                            })
                            .collect();
                        let group = encode_group(&members)?;
                        if group.len() > MAX_GROUP_BYTES {
                            return Ok(None);
                        }
                        Ok(Some((group, changed)))
                    })?;
            written.extend(changed.into_iter().flatten().cloned());
        }
        Ok(written)
    }

    /// Removes the delivery groups that have any of `ids` as a member, whose records are already
    /// removed. A group whose span only covers one of `ids`, such as a derived event's delivery,
    /// stays.
    pub(super) fn remove_delivery_groups<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), StoreError> {
        let mut removed: Vec<Vec<u8>> = Vec::new();
        for id in ids {
            let covered = removed.iter().any(|key| {
                let (first, last) = key_span(key);
                first <= id.as_bytes() && id.as_bytes() <= last
            });
            if covered {
                continue;
            }
            let key = find_group_key(&self.delivery_groups, &self.recent_delivery_groups, id)?;
            if let Some(key) = key {
                self.recent_delivery_groups
                    .remove(&self.delivery_groups, &key)?;
                removed.push(key.to_vec());
            }
        }
        Ok(())
    }

    /// Walks the delivery records whose ids lie from `lower` up to, not including, `upper`, in
    /// id order or, with `newest_first`, backwards. Each delivery comes once: from its own key
    /// when it has one, from its delivery group otherwise.
    pub(super) fn scan_deliveries(
        &self,
        lower: &[u8],
        upper: &[u8],
        newest_first: bool,
    ) -> DeliveryScan {
        let own = self.deliveries.range(lower.to_vec()..upper.to_vec());
        let own: Entries = if newest_first {
            Box::new(own.rev())
        } else {
            Box::new(own)
        };
        // Group keys sort by the last id of their span, so the groups that reach into the range
        // are the keys from `lower` on, and up to the first key at or after `upper`.
        let groups: Entries = if newest_first {
            let straddling = self.delivery_groups.range(upper.to_vec()..).next();
            let below = self
                .delivery_groups
                .range(lower.to_vec()..upper.to_vec())
                .rev();
            Box::new(straddling.into_iter().chain(below))
        } else {
            let mut ends = self.delivery_groups.range(lower.to_vec()..);
            let upper = upper.to_vec();
            let mut done = false;
            Box::new(std::iter::from_fn(move || {
                if done {
                    return None;
                }
                let entry = ends.next()?;
                if let Ok((key, _)) = &entry {
                    done = key_span(key).0 >= upper.as_slice();
                }
                Some(entry)
            }))
        };
        DeliveryScan {
            own: own.peekable(),
            groups,
            members: Vec::new(),
            lower: lower.to_vec(),
            upper: upper.to_vec(),
            newest_first,
        }
    }
}

/// A walk over delivery records, from [`Store::scan_deliveries`].
pub(super) struct DeliveryScan {
    own: std::iter::Peekable<Entries>,
    groups: Entries,
    /// Members of the current group still to come, the next one last: id and record.
    members: Vec<(Vec<u8>, StoredRecord)>,
    lower: Vec<u8>,
    upper: Vec<u8>,
    newest_first: bool,
}

impl DeliveryScan {
    /// Loads the next group's members that lie in the range, when the current one is used up.
    fn fill_members(&mut self) -> Result<(), StoreError> {
        while self.members.is_empty() {
            let Some(entry) = self.groups.next() else {
                return Ok(());
            };
            let (_, value) = entry?;
            let index = GroupIndex::read(&value)?;
            let mut members: Vec<(Vec<u8>, StoredRecord)> = index
                .members()
                .filter(|(id, _)| {
                    let id = &value[id.clone()];
                    self.lower.as_slice() <= id && id < self.upper.as_slice()
                })
                .map(|(id, range)| {
                    let record = StoredRecord {
                        value: value.clone(),
                        range,
                    };
                    (value[id].to_vec(), record)
                })
                .collect();
            // The next member to hand out goes last.
            members.sort_unstable_by(|left, right| left.0.cmp(&right.0));
            if !self.newest_first {
                members.reverse();
            }
            self.members = members;
        }
        Ok(())
    }
}

impl Iterator for DeliveryScan {
    type Item = Result<(Vec<u8>, StoredRecord), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(error) = self.fill_members() {
            return Some(Err(error));
        }
        let own_id = match self.own.peek() {
            Some(Ok((id, _))) => Some(id.clone()),
            Some(Err(_)) => {
                let error = self.own.next()?.err()?;
                return Some(Err(error.into()));
            }
            None => None,
        };
        let member_id = self.members.last().map(|(id, _)| id.as_slice());
        let take_own = match (&own_id, member_id) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(own), Some(member)) => {
                let order = own.as_ref().cmp(member);
                if order == Ordering::Equal {
                    // The delivery's own key is newer than its copy in the group.
                    self.members.pop();
                    true
                } else {
                    (order == Ordering::Greater) == self.newest_first
                }
            }
        };
        if take_own {
            let (id, value) = match self.own.next()? {
                Ok(entry) => entry,
                Err(error) => return Some(Err(error.into())),
            };
            let range = 0..value.len();
            Some(Ok((id.to_vec(), StoredRecord { value, range })))
        } else {
            self.members.pop().map(Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use rustc_hash::FxHashSet;

    use belter_common::records::DeliveryStatus;
    use belter_common::{DeliveryId, EndpointId, EventId, EventType};

    use super::*;
    use crate::store::log::LogScan;
    use crate::store::{open_temp, reopen, NewDelivery, NewEvent, NewEventWrite, ReplayOutcome};

    /// Builds one request's writes: an event per entry of `deliveries`, each with that many deliveries,
    /// the delivery ids one run as ingest makes them.
    fn request(deliveries: &[usize]) -> Vec<NewEventWrite> {
        let endpoint = EndpointId::generate();
        let event_ids = EventId::generate_run(deliveries.len());
        let mut ids = DeliveryId::generate_run(deliveries.iter().sum()).into_iter();
        event_ids
            .into_iter()
            .zip(deliveries)
            .map(|(id, &count)| NewEventWrite {
                event: NewEvent {
                    id,
                    kind: EventType::CsatReceived,
                    created_at: 1_000,
                    body: b"{}".to_vec(),
                },
                deliveries: ids
                    .by_ref()
                    .take(count)
                    .map(|id| NewDelivery {
                        id,
                        endpoint_id: endpoint.clone(),
                        target_url: "http://127.0.0.1:9/hook".to_owned(),
                        deferred: true,
                    })
                    .collect(),
                derived_from: None,
            })
            .collect()
    }

    fn delivery_ids(writes: &[NewEventWrite]) -> Vec<DeliveryId> {
        writes
            .iter()
            .flat_map(|write| &write.deliveries)
            .map(|delivery| delivery.id.clone())
            .collect()
    }

    fn log(store: &Store, scan: &LogScan) -> Vec<(DeliveryId, DeliveryStatus)> {
        let mut seen = Vec::new();
        store
            .scan_log(scan, |id, record| {
                seen.push((id, record.status));
                true
            })
            .unwrap();
        seen
    }

    /// Lists the ids of the whole delivery log, newest first.
    fn log_ids(store: &Store) -> Vec<DeliveryId> {
        log(store, &LogScan::default())
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    fn reversed(ids: &[DeliveryId]) -> Vec<DeliveryId> {
        ids.iter().rev().cloned().collect()
    }

    fn forward(store: &Store, lower: &DeliveryId, upper: &DeliveryId) -> Vec<Vec<u8>> {
        store
            .scan_deliveries(lower.as_str().as_bytes(), upper.as_str().as_bytes(), false)
            .map(|item| item.unwrap().0)
            .collect()
    }

    #[test]
    fn request_deliveries_share_a_group_until_they_change() {
        let (_dir, store) = open_temp();
        let writes = request(&[2, 3, 1]);
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        assert_eq!(store.delivery_groups.len(), 1);
        assert!(store.deliveries.is_empty());
        for id in &ids {
            let record = store
                .delivery(id)
                .unwrap()
                .expect("readable from the group");
            assert_eq!(record.status, DeliveryStatus::Pending);
            assert_eq!(record.attempt_count, 0);
        }

        // A change writes the delivery's own key, which then takes precedence.
        let replayed = &ids[2];
        let outcome = store
            .requeue(replayed, "http://127.0.0.1:9/other", 5_000)
            .unwrap();
        assert!(matches!(outcome, ReplayOutcome::Queued(_)));
        assert_eq!(store.deliveries.len(), 1);
        let record = store.delivery(replayed).unwrap().unwrap();
        assert_eq!(record.target_url, "http://127.0.0.1:9/other");

        // Every delivery comes once, newest first, the changed one from its own key.
        assert_eq!(log_ids(&store), reversed(&ids));
        let urls: Vec<String> = ids
            .iter()
            .map(|id| store.delivery(id).unwrap().unwrap().target_url)
            .collect();
        assert_eq!(urls.iter().filter(|url| url.ends_with("/other")).count(), 1);

        // Pages that start or end inside the group.
        let scan = LogScan {
            cursor: Some(ids[4].clone()),
            ..LogScan::default()
        };
        let page: Vec<_> = log(&store, &scan).into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            page,
            vec![
                ids[3].clone(),
                ids[2].clone(),
                ids[1].clone(),
                ids[0].clone()
            ]
        );
        let ascending = forward(&store, &ids[1], &ids[4]);
        let expected: Vec<Vec<u8>> = ids[1..4]
            .iter()
            .map(|id| id.as_str().as_bytes().to_vec())
            .collect();
        assert_eq!(ascending, expected);
    }

    #[test]
    fn large_request_takes_several_groups() {
        let (_dir, store) = open_temp();
        let writes = request(&[100, 100]);
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        assert!(
            store.delivery_groups.len() >= 3,
            "{} groups",
            store.delivery_groups.len()
        );
        for entry in store.delivery_groups.iter() {
            let (_, value) = entry.unwrap();
            assert!(
                value.len() <= MAX_NEW_GROUP_BYTES + 8,
                "{} bytes",
                value.len()
            );
        }
        assert_eq!(log_ids(&store), reversed(&ids));

        assert_eq!(store.prune_before(2_000, 1_000).unwrap().deliveries, 200);
        assert!(store.delivery_groups.is_empty());
    }

    #[test]
    fn scans_merge_groups_and_single_records() {
        let (_dir, store) = open_temp();
        let before = request(&[1]);
        let grouped = request(&[2, 2]);
        let after = request(&[1]);
        for writes in [&before, &grouped, &after] {
            store.write_events(writes, None).unwrap();
        }
        assert_eq!(
            store.delivery_groups.len(),
            1,
            "one event's delivery is its own key"
        );
        assert_eq!(store.deliveries.len(), 2);

        let all: Vec<DeliveryId> = [&before, &grouped, &after]
            .into_iter()
            .flat_map(|writes| delivery_ids(writes))
            .collect();
        assert_eq!(log_ids(&store), reversed(&all));

        let mut upper = DeliveryId::PREFIX.as_bytes().to_vec();
        upper.push(0xff);
        let ascending: Vec<Vec<u8>> = store
            .scan_deliveries(DeliveryId::PREFIX.as_bytes(), &upper, false)
            .map(|item| item.unwrap().0)
            .collect();
        let expected: Vec<Vec<u8>> = all
            .iter()
            .map(|id| id.as_str().as_bytes().to_vec())
            .collect();
        assert_eq!(ascending, expected);
    }

    #[test]
    fn overlapping_span_is_written_as_single_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Ids from one run: the outer ones go to a stored group, the inner ones to a request
        // written after a restart, as after the clock went back.
        let mut ids = DeliveryId::generate_run(4).into_iter();
        let (first, inner_a, inner_b, last) = (
            ids.next().unwrap(),
            ids.next().unwrap(),
            ids.next().unwrap(),
            ids.next().unwrap(),
        );
        let with_ids = |ids: [&DeliveryId; 2]| {
            let mut writes = request(&[1, 1]);
            for (write, id) in writes.iter_mut().zip(ids) {
                write.deliveries[0].id = id.clone();
            }
            writes
        };

        {
            let store = Store::open(&path).unwrap();
            store
                .write_events(&with_ids([&first, &last]), None)
                .unwrap();
            assert_eq!(store.delivery_groups.len(), 1);
        }

        let store = reopen(&path).unwrap();
        store
            .write_events(&with_ids([&inner_a, &inner_b]), None)
            .unwrap();
        assert_eq!(
            store.delivery_groups.len(),
            1,
            "no group over a stored span"
        );
        assert_eq!(store.deliveries.len(), 2);
        for id in [&first, &inner_a, &inner_b, &last] {
            assert!(store.delivery(id).unwrap().is_some(), "{id}");
        }
        assert_eq!(log_ids(&store), vec![last, inner_b, inner_a, first]);
    }

    #[test]
    fn derived_delivery_inside_a_span_keeps_the_group() {
        let (_dir, store) = open_temp();
        let mut writes = request(&[2, 1, 2]);
        writes[1].derived_from = Some(("rule_1".to_owned(), writes[0].event.id.to_string()));
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        assert_eq!(store.delivery_groups.len(), 1);
        assert_eq!(
            store.deliveries.len(),
            1,
            "the derived event's delivery is its own key"
        );

        let derived = ids[2].to_string();
        store
            .remove_delivery_groups(std::iter::once(&derived))
            .unwrap();
        assert_eq!(
            store.delivery_groups.len(),
            1,
            "not a member, so the group stays"
        );
        for id in &ids {
            assert!(store.delivery(id).unwrap().is_some(), "{id}");
        }
        let member = ids[3].to_string();
        store
            .remove_delivery_groups(std::iter::once(&member))
            .unwrap();
        assert!(store.delivery_groups.is_empty());
    }

    #[test]
    fn ended_first_attempts_are_written_into_their_group() {
        let (_dir, store) = open_temp();
        let writes = request(&[3, 2]);
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        // A read keeps the group, so the rewrite must replace the kept copy.
        assert!(store.delivery(&ids[0]).unwrap().is_some());
        store
            .requeue(&ids[4], "http://127.0.0.1:9/hook", 1_500)
            .unwrap();

        let done = |id: &DeliveryId| {
            let mut record = store.delivery(id).unwrap().unwrap();
            record.status = DeliveryStatus::Succeeded;
            record.attempt_count = 1;
            record.next_attempt_at = None;
            record
        };
        let records: Vec<_> = [&ids[0], &ids[2], &ids[4]]
            .into_iter()
            .map(|id| (id.clone(), done(id)))
            .collect();
        let unknown = (DeliveryId::generate(), done(&ids[1]));
        let mut input: Vec<_> = records.iter().map(|(id, record)| (id, record)).collect();
        input.push((&unknown.0, &unknown.1));
        let written = store.write_records_in_groups(&input).unwrap();

        let expected: FxHashSet<DeliveryId> =
            FxHashSet::from_iter([ids[0].clone(), ids[2].clone()]);
        assert_eq!(
            written, expected,
            "not the one with its own record, nor an unknown id"
        );
        assert_eq!(store.deliveries.len(), 1);
        for (at, id) in ids.iter().enumerate() {
            let status = store.delivery(id).unwrap().unwrap().status;
            let want = if at == 0 || at == 2 {
                DeliveryStatus::Succeeded
            } else {
                DeliveryStatus::Pending
            };
            assert_eq!(status, want, "{id}");
        }
        let statuses: Vec<_> = log(&store, &LogScan::default())
            .into_iter()
            .map(|(_, status)| status)
            .collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|status| **status == DeliveryStatus::Succeeded)
                .count(),
            2
        );
    }

    #[test]
    fn oversized_outcome_writes_own_record() {
        let (_dir, store) = open_temp();
        let writes = request(&[20]);
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        let before = store.delivery_groups.first().unwrap().unwrap().1;
        let mut record = store.delivery(&ids[0]).unwrap().unwrap();
        record.status = DeliveryStatus::Succeeded;
        record.next_attempt_at = None;
        record.last_error = Some("x".repeat(MAX_GROUP_BYTES));
        let written = store
            .write_records_in_groups(&[(&ids[0], &record)])
            .unwrap();
        assert!(written.is_empty());
        let after = store.delivery_groups.first().unwrap().unwrap().1;
        assert_eq!(before, after, "the group is unchanged");
    }

    #[test]
    fn sweep_cut_short_shows_no_older_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writes = request(&[3]);
        let ids = delivery_ids(&writes);
        {
            let store = Store::open(&path).unwrap();
            store.write_events(&writes, None).unwrap();
            store
                .requeue(&ids[0], "http://127.0.0.1:9/other", 1_500)
                .unwrap();
            // The sweep's steps up to the removal of the groups, then a stop.
            let id_texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
            for id in &id_texts {
                store.clear_delivery(id).unwrap();
            }
            store.remove_delivery_groups(&id_texts).unwrap();
            store.db.flush().unwrap();
        }
        let store = reopen(&path).unwrap();
        let own = store
            .delivery(&ids[0])
            .unwrap()
            .expect("its own record stays");
        assert_eq!(own.target_url, "http://127.0.0.1:9/other");
        assert!(store.delivery(&ids[1]).unwrap().is_none());
        let pruned = store.prune_before(2_000, 100).unwrap();
        assert_eq!(pruned.events, 1);
        assert!(store.delivery(&ids[0]).unwrap().is_none());
        assert!(log(&store, &LogScan::default()).is_empty());
    }

    #[test]
    fn retention_removes_the_group_with_its_events() {
        let (_dir, store) = open_temp();
        let writes = request(&[3, 3]);
        let ids = delivery_ids(&writes);
        store.write_events(&writes, None).unwrap();
        store
            .requeue(&ids[0], "http://127.0.0.1:9/hook", 1_500)
            .unwrap();
        // A read keeps the group, and the removal must not leave it kept.
        assert!(store.delivery(&ids[3]).unwrap().is_some());
        let pruned = store.prune_before(2_000, 100).unwrap();
        assert_eq!(pruned.deliveries, 6);
        assert!(store.delivery_groups.is_empty());
        assert!(store.deliveries.is_empty());
        for id in &ids {
            assert!(store.delivery(id).unwrap().is_none(), "{id} came back");
        }
        assert!(log(&store, &LogScan::default()).is_empty());
    }
}
