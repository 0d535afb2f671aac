//! A filter of the deliveries that may have a record of their own in `deliveries`. With it, a
//! read of a grouped delivery's record, and the outcome writer, skip a lookup that nearly always
//! misses.
//!
//! Every delivery stored when the store opened has an id at or before the last id of
//! `deliveries` and of `delivery_groups`, and its lookup always goes to sled. A later id was
//! made by this process, so every record of its own was written through
//! [`OwnRecords::note`] first. A Bloom filter keeps those ids. It returns "maybe" for every
//! noted id and for a few others, which then cost the lookup they cost before.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxBuildHasher;

/// Words of the filter: 2^22 bits, 512 KiB. With three bits per id, the lookup of an id that
/// was not noted goes to sled about once in 140 after 300,000 noted ids, and once in 8 after a
/// million. Removed records stay noted, because a Bloom filter cannot forget.
const WORDS: usize = 1 << 16;

/// Bits set per noted id.
const PROBES: u64 = 3;

/// The filter and the id from which it applies.
pub(super) struct OwnRecords {
    /// The last delivery id stored when the store opened. Ids up to it always count as "maybe".
    last_stored: Vec<u8>,
    bits: Box<[AtomicU64]>,
}

impl OwnRecords {
    /// Creates an empty filter for ids after `last_stored`.
    pub(super) fn new(last_stored: Vec<u8>) -> Self {
        Self {
            last_stored,
            bits: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records that `id` gets a record of its own. Called before the record is written.
    pub(super) fn note(&self, id: &[u8]) {
        for bit in probes(id) {
            self.bits[bit / 64].fetch_or(1 << (bit % 64), Ordering::SeqCst);
        }
    }

    /// Checks whether `id` may have a record of its own. `false` means it has none.
    pub(super) fn may_have(&self, id: &[u8]) -> bool {
        if id <= self.last_stored.as_slice() {
            return true;
        }
        probes(id).all(|bit| self.bits[bit / 64].load(Ordering::SeqCst) & (1 << (bit % 64)) != 0)
    }
}

/// Returns the filter bits of `id`, by double hashing one 64-bit hash.
fn probes(id: &[u8]) -> impl Iterator<Item = usize> {
    let mut hasher = FxBuildHasher.build_hasher();
    hasher.write(id);
    let hash = hasher.finish();
    let first = hash & 0xffff_ffff;
    let step = (hash >> 32) | 1;
    let bits = (WORDS * 64) as u64;
    (0..PROBES).map(move |probe| (first.wrapping_add(probe.wrapping_mul(step)) % bits) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ids_always_maybe() {
        let filter = OwnRecords::new(b"del_5".to_vec());
        assert!(filter.may_have(b"del_1"));
        assert!(filter.may_have(b"del_5"));
    }

    #[test]
    fn noted_ids_maybe_others_not() {
        let filter = OwnRecords::new(b"del_5".to_vec());
        filter.note(b"del_7");
        assert!(filter.may_have(b"del_7"));
        let misses = (0..1_000)
            .filter(|n| filter.may_have(format!("del_8{n}").as_bytes()))
            .count();
        assert_eq!(misses, 0, "one noted id sets 3 of 4 million bits");
    }
}
