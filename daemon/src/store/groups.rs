//! Keys of record groups and the groups cached after reads, shared by the events tree and the
//! delivery groups tree. A record group contains records of one ingest request under a key
//! that names the span of their ids, so that many records cost one store write.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;
use crate::codec::GroupIndex;

/// Separates the last and the first id in the key of a record group. Ids never contain it.
const GROUP_KEY_SEPARATOR: u8 = 0;

/// Key of a record group: the last id, the separator, the first id. Keys sort by the end of
/// their span, so the first key at or after an id is the only one that can contain it, and a
/// forward read finds it.
pub(super) fn group_key(first: &str, last: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(last.len() + 1 + first.len());
    key.extend_from_slice(last.as_bytes());
    key.push(GROUP_KEY_SEPARATOR);
    key.extend_from_slice(first.as_bytes());
    key
}

pub(super) fn is_group_key(key: &[u8]) -> bool {
    key.contains(&GROUP_KEY_SEPARATOR)
}

/// Returns the first and the last id that a key covers: a group's span, or the key's own id.
pub(super) fn key_span(key: &[u8]) -> (&[u8], &[u8]) {
    match key.iter().position(|&byte| byte == GROUP_KEY_SEPARATOR) {
        Some(at) => (&key[at + 1..], &key[..at]),
        None => (key, key),
    }
}

/// Returns the end of the span of the last key in a tree of groups, or nothing when it is empty.
pub(super) fn tree_end(tree: &sled::Tree) -> Result<Vec<u8>, sled::Error> {
    Ok(match tree.last()? {
        Some((key, _)) => key_span(&key).1.to_vec(),
        None => Vec::new(),
    })
}

/// Finds the stored record of `id` in a tree of records and record groups: the stored value that
/// contains it, and where in that value it lies. A group read recently is searched first. An id
/// that the kept group lacks may have joined the group since, so sled is read then. `load` turns
/// a stored group value into the group's bytes, or `None` when they are lost.
pub(super) fn find_member(
    tree: &sled::Tree,
    recent: &RecentGroups,
    id: &str,
    load: impl FnOnce(sled::IVec) -> Result<Option<sled::IVec>, StoreError>,
) -> Result<Option<(sled::IVec, Range<usize>)>, StoreError> {
    if let Some(group) = recent.containing(id) {
        if let Some(record) = group.index.find(&group.bytes, id) {
            return Ok(Some((group.bytes.clone(), record)));
        }
    }
    let generation = recent.generation();
    let Some(entry) = tree.range(id.as_bytes()..).next() else {
        return Ok(None);
    };
    let (key, bytes) = entry?;
    if key.as_ref() == id.as_bytes() {
        let whole = 0..bytes.len();
        return Ok(Some((bytes, whole)));
    }
    let Some(group) = read_group(key, bytes, id, load)? else {
        return Ok(None);
    };
    let found = group.index.find(&group.bytes, id);
    let found = found.map(|record| (group.bytes.clone(), record));
    recent.keep(group, generation);
    Ok(found)
}

/// Returns a stored group value as it is, for a tree that keeps its groups in sled.
pub(super) fn stored_in_tree(bytes: sled::IVec) -> Result<Option<sled::IVec>, StoreError> {
    Ok(Some(bytes))
}

/// Finds the key of the record group in `tree` that has `id` as a member, and keeps the group.
pub(super) fn find_group_key(
    tree: &sled::Tree,
    recent: &RecentGroups,
    id: &str,
) -> Result<Option<sled::IVec>, StoreError> {
    if let Some(group) = recent.containing(id) {
        if group.index.find(&group.bytes, id).is_some() {
            return Ok(Some(group.key.clone()));
        }
    }
    let generation = recent.generation();
    let Some(entry) = tree.range(id.as_bytes()..).next() else {
        return Ok(None);
    };
    let (key, bytes) = entry?;
    let Some(group) = read_group(key, bytes, id, stored_in_tree)? else {
        return Ok(None);
    };
    if group.index.find(&group.bytes, id).is_none() {
        return Ok(None);
    }
    let key = group.key.clone();
    recent.keep(group, generation);
    Ok(Some(key))
}

/// Reads the record group stored under `key` when its span contains `id`, loading its bytes with
/// `load`.
fn read_group(
    key: sled::IVec,
    bytes: sled::IVec,
    id: &str,
    load: impl FnOnce(sled::IVec) -> Result<Option<sled::IVec>, StoreError>,
) -> Result<Option<CachedGroup>, StoreError> {
    let (first, last) = key_span(&key);
    if !is_group_key(&key) || first > id.as_bytes() || id.as_bytes() > last {
        return Ok(None);
    }
    let Some(bytes) = load(bytes)? else {
        return Ok(None);
    };
    let index = GroupIndex::read(&bytes)?;
    Ok(Some(CachedGroup { key, bytes, index }))
}

/// Maximum number of record groups cached after reads, per tree.
const RECENT_GROUPS: usize = 8;

/// The record groups of one tree read last, with their keys. The deliveries of one request are
/// mostly sent one after another, so each finds its records here instead of searching sled's
/// tree and loading the node again. A caller that misses reads sled.
///
/// Removing a group clears the kept ones and counts a generation, and a read keeps what it found
/// only when no removal happened since it started, so a removed group is not kept.
#[derive(Default)]
pub(super) struct RecentGroups {
    groups: Mutex<VecDeque<Arc<CachedGroup>>>,
    generation: AtomicU64,
}

/// A record group cached after a read, with its member index.
pub(super) struct CachedGroup {
    pub(super) key: sled::IVec,
    pub(super) bytes: sled::IVec,
    pub(super) index: GroupIndex,
}

impl RecentGroups {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<CachedGroup>>> {
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the generation to pass to [`RecentGroups::keep`], taken before the read of sled.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Returns the kept group whose span contains `id`.
    pub(super) fn containing(&self, id: &str) -> Option<Arc<CachedGroup>> {
        let id = id.as_bytes();
        self.lock()
            .iter()
            .rev()
            .find(|group| {
                let (first, last) = key_span(&group.key);
                first <= id && id <= last
            })
            .cloned()
    }

    /// Keeps a group that a read which started at `generation` found, in place of the oldest one
    /// kept, unless a group changed or was removed since.
    pub(super) fn keep(&self, group: CachedGroup, generation: u64) {
        let mut groups = self.lock();
        if self.generation() != generation || groups.iter().any(|known| known.key == group.key) {
            return;
        }
        if groups.len() == RECENT_GROUPS {
            groups.pop_front();
        }
        groups.push_back(Arc::new(group));
    }

    /// Rewrites the group under `key` in `tree` with what `change` makes of its stored bytes,
    /// and keeps the new bytes in place of a kept copy. Returns `None`, writing nothing, when
    /// the key is gone or `change` makes nothing. Reads that started before the write keep
    /// nothing they found.
    pub(super) fn rewrite<T>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        change: impl FnOnce(&[u8]) -> Result<Option<(Vec<u8>, T)>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut groups = self.lock();
        let Some(old) = tree.get(key)? else {
            return Ok(None);
        };
        let Some((new, result)) = change(&old)? else {
            return Ok(None);
        };
        let new = sled::IVec::from(new);
        tree.insert(key, new.clone())?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(at) = groups.iter().position(|group| group.key == key) {
            let kept = CachedGroup {
                key: groups[at].key.clone(),
                index: GroupIndex::read(&new)?,
                bytes: new,
            };
            groups[at] = Arc::new(kept);
        }
        Ok(Some(result))
    }

    /// Removes the group under `key` from `tree` and drops its cached copy. It waits for a
    /// rewrite in progress, so that the rewrite cannot put the group back.
    pub(super) fn remove(&self, tree: &sled::Tree, key: &[u8]) -> Result<(), StoreError> {
        let mut groups = self.lock();
        tree.remove(key)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        groups.retain(|group| group.key != key);
        Ok(())
    }

    /// Drops every cached group, after a group changed or was removed.
    pub(super) fn clear(&self) {
        let mut groups = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_group;

    fn kept(first: &str, last: &str) -> CachedGroup {
        let bytes = encode_group(&[(first, b"a"), (last, b"b")]).unwrap();
        CachedGroup {
            key: group_key(first, last).into(),
            index: GroupIndex::read(&bytes).unwrap(),
            bytes: bytes.into(),
        }
    }

    #[test]
    fn keys_name_their_span() {
        let key = group_key("del_a", "del_c");
        assert!(is_group_key(&key));
        assert_eq!(key_span(&key), (&b"del_a"[..], &b"del_c"[..]));
        assert_eq!(key_span(b"del_b"), (&b"del_b"[..], &b"del_b"[..]));
        assert!(key.as_slice() > b"del_b".as_slice());
        assert!(key.as_slice() > b"del_c".as_slice());
    }

    #[test]
    fn read_older_than_a_removal_keeps_nothing() {
        let recent = RecentGroups::default();
        let before = recent.generation();
        recent.keep(kept("del_a", "del_c"), before);
        assert!(recent.containing("del_b").is_some());
        recent.clear();
        assert!(recent.containing("del_b").is_none());
        recent.keep(kept("del_a", "del_c"), before);
        assert!(
            recent.containing("del_b").is_none(),
            "a read that started before the removal keeps nothing"
        );
        recent.keep(kept("del_a", "del_c"), recent.generation());
        assert!(recent.containing("del_b").is_some());
    }
}
