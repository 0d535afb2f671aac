//! Attempt outcome counts per minute, summed by a sled merge operator so concurrent attempts
//! never conflict on a counter.

use super::{Store, StoreError};

/// Outcome counts of one minute, or summed over a window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutcomeCounts {
    /// Attempts that succeeded.
    pub(crate) ok: u64,
    /// Attempts that failed.
    pub(crate) failed: u64,
    /// Deliveries that gave up after their last scheduled attempt.
    pub(crate) gave_up: u64,
}

/// Encoded size of [`OutcomeCounts`]: three big-endian u64.
const COUNTS_LEN: usize = 24;

impl OutcomeCounts {
    fn to_bytes(self) -> [u8; COUNTS_LEN] {
        let mut bytes = [0; COUNTS_LEN];
        bytes[0..8].copy_from_slice(&self.ok.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.failed.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.gave_up.to_be_bytes());
        bytes
    }

    /// Decodes counts; a value of the wrong length counts as zero.
    fn from_bytes(bytes: &[u8]) -> Self {
        let field = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        };
        Self {
            ok: field(0..8),
            failed: field(8..16),
            gave_up: field(16..24),
        }
    }

    fn add(&mut self, other: OutcomeCounts) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.gave_up += other.gave_up;
    }
}

/// The sled merge operator of the stats tree: adds the new counts to the old.
pub(super) fn merge_counts(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let mut counts = old.map(OutcomeCounts::from_bytes).unwrap_or_default();
    counts.add(OutcomeCounts::from_bytes(delta));
    Some(counts.to_bytes().to_vec())
}

impl Store {
    /// Adds outcome counts to the minute that contains `at_ms`.
    pub(crate) fn count_outcome(
        &self,
        at_ms: u64,
        counts: OutcomeCounts,
    ) -> Result<(), StoreError> {
        let minute = at_ms / 60_000;
        self.stats.merge(minute.to_be_bytes(), counts.to_bytes())?;
        Ok(())
    }

    /// Sums the outcome counts of every minute from the one containing `since_ms` on.
    pub(crate) fn outcomes_since(&self, since_ms: u64) -> Result<OutcomeCounts, StoreError> {
        let first_minute = since_ms / 60_000;
        let mut total = OutcomeCounts::default();
        for item in self.stats.range(first_minute.to_be_bytes()..).values() {
            total.add(OutcomeCounts::from_bytes(&item?));
        }
        Ok(total)
    }

    /// Removes the counts of minutes before `cutoff_ms`.
    pub(crate) fn prune_stats(&self, cutoff_ms: u64) -> Result<(), StoreError> {
        let cutoff_minute = cutoff_ms / 60_000;
        let old: Vec<_> = self
            .stats
            .range(..cutoff_minute.to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in old {
            self.stats.remove(key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_temp;

    #[test]
    fn counts_sum_over_window() {
        let (_dir, store) = open_temp();
        let ok = OutcomeCounts {
            ok: 1,
            ..OutcomeCounts::default()
        };
        let failed = OutcomeCounts {
            failed: 1,
            gave_up: 1,
            ..OutcomeCounts::default()
        };
        store.count_outcome(60_000, ok).unwrap();
        store.count_outcome(60_500, ok).unwrap();
        store.count_outcome(180_000, failed).unwrap();
        let all = store.outcomes_since(0).unwrap();
        assert_eq!(all.ok, 2);
        assert_eq!(all.failed, 1);
        assert_eq!(all.gave_up, 1);
        let recent = store.outcomes_since(120_000).unwrap();
        assert_eq!(recent.ok, 0);
        assert_eq!(recent.failed, 1);
        store.prune_stats(120_000).unwrap();
        assert_eq!(store.outcomes_since(0).unwrap().ok, 0);
    }
}
