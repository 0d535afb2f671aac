//! Per-endpoint health that survives restarts: the current run of failed attempts with the time
//! of the last success, and failures per minute. Both are written with sled merge operators, so
//! concurrent attempts never conflict.
//!
//! - `endpoint_streaks`: endpoint id → consecutive failures (u32) and last success in ms (u64),
//!   big-endian
//! - `endpoint_failures`: endpoint id, minute since the epoch (u64 big-endian) → failures (u64)

use std::collections::BTreeMap;

use belter_common::EndpointId;

use super::{Store, StoreError};

/// Merge input of a success; the time follows.
const SUCCESS: u8 = 1;
/// Merge input of failures; the time follows, then their number (u32), 1 when absent.
const FAILURE: u8 = 0;

/// Attempt outcomes of one endpoint, summed so they are written at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct EndpointOutcomes {
    /// The latest success, in ms since the epoch.
    last_success: Option<u64>,
    /// The time of the latest failure after it.
    last_failure: u64,
    /// Failures after the latest success, or all of them when none succeeded.
    failures_after: u32,
    /// Failures by minute since the epoch.
    failures_by_minute: BTreeMap<u64, u64>,
}

impl EndpointOutcomes {
    /// Adds an attempt that ended at `at_ms`; attempts are added in the order they ended.
    pub(crate) fn add(&mut self, succeeded: bool, at_ms: u64) {
        if succeeded {
            self.last_success = Some(self.last_success.map_or(at_ms, |last| last.max(at_ms)));
            self.failures_after = 0;
        } else {
            self.failures_after = self.failures_after.saturating_add(1);
            self.last_failure = at_ms;
            *self.failures_by_minute.entry(at_ms / 60_000).or_default() += 1;
        }
    }
}

/// An endpoint's stored health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct StoredHealth {
    pub(crate) consecutive_failures: u32,
    /// Last success in ms since the epoch; 0 when none was recorded.
    pub(crate) last_success_at: u64,
    /// Failures per minute, oldest first.
    pub(crate) failures_by_minute: Vec<(u64, u64)>,
}

fn decode_streak(bytes: &[u8]) -> (u32, u64) {
    let failures = bytes
        .get(0..4)
        .and_then(|slice| <[u8; 4]>::try_from(slice).ok())
        .map_or(0, u32::from_be_bytes);
    let last = bytes
        .get(4..12)
        .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
        .map_or(0, u64::from_be_bytes);
    (failures, last)
}

fn encode_streak(failures: u32, last_success: u64) -> Vec<u8> {
    let mut bytes = failures.to_be_bytes().to_vec();
    bytes.extend_from_slice(&last_success.to_be_bytes());
    bytes
}

/// Merge operator of `endpoint_streaks`: a success resets the streak, a failure extends it.
pub(super) fn merge_streak(_key: &[u8], old: Option<&[u8]>, input: &[u8]) -> Option<Vec<u8>> {
    let (failures, last_success) = old.map(decode_streak).unwrap_or_default();
    let at = input
        .get(1..9)
        .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
        .map_or(0, u64::from_be_bytes);
    let count = input
        .get(9..13)
        .and_then(|slice| <[u8; 4]>::try_from(slice).ok())
        .map_or(1, u32::from_be_bytes);
    Some(match input.first() {
        Some(&SUCCESS) => encode_streak(0, at.max(last_success)),
        _ => encode_streak(failures.saturating_add(count), last_success),
    })
}

/// Merge operator of `endpoint_failures`: adds counts.
pub(super) fn merge_count(_key: &[u8], old: Option<&[u8]>, input: &[u8]) -> Option<Vec<u8>> {
    let read = |bytes: &[u8]| {
        <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    };
    let total = old.map(read).unwrap_or(0).saturating_add(read(input));
    Some(total.to_be_bytes().to_vec())
}

fn failure_key(endpoint: &EndpointId, minute: u64) -> Vec<u8> {
    let mut key = endpoint.as_str().as_bytes().to_vec();
    key.extend_from_slice(&minute.to_be_bytes());
    key
}

impl Store {
    /// Records the outcome of one attempt to an endpoint that ended at `at_ms`.
    #[cfg(test)]
    pub(crate) fn record_endpoint_outcome(
        &self,
        endpoint: &EndpointId,
        succeeded: bool,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let mut outcomes = EndpointOutcomes::default();
        outcomes.add(succeeded, at_ms);
        self.record_endpoint_outcomes(endpoint, &outcomes)
    }

    /// Records several attempt outcomes of an endpoint.
    pub(crate) fn record_endpoint_outcomes(
        &self,
        endpoint: &EndpointId,
        outcomes: &EndpointOutcomes,
    ) -> Result<(), StoreError> {
        let key = endpoint.as_str().as_bytes();
        if let Some(at) = outcomes.last_success {
            let mut input = vec![SUCCESS];
            input.extend_from_slice(&at.to_be_bytes());
            self.endpoint_streaks.merge(key, input)?;
        }
        if outcomes.failures_after > 0 {
            let mut input = vec![FAILURE];
            input.extend_from_slice(&outcomes.last_failure.to_be_bytes());
            input.extend_from_slice(&outcomes.failures_after.to_be_bytes());
            self.endpoint_streaks.merge(key, input)?;
        }
        for (minute, count) in &outcomes.failures_by_minute {
            self.endpoint_failures
                .merge(failure_key(endpoint, *minute), count.to_be_bytes())?;
        }
        Ok(())
    }

    /// Reads an endpoint's health, with failures from minute `since_minute` on.
    pub(crate) fn endpoint_health(
        &self,
        endpoint: &EndpointId,
        since_minute: u64,
    ) -> Result<StoredHealth, StoreError> {
        let (consecutive_failures, last_success_at) = self
            .endpoint_streaks
            .get(endpoint.as_str().as_bytes())?
            .map(|bytes| decode_streak(&bytes))
            .unwrap_or_default();
        let prefix_len = endpoint.as_str().len();
        let mut failures_by_minute = Vec::new();
        let start = failure_key(endpoint, since_minute);
        let end = failure_key(endpoint, u64::MAX);
        for item in self.endpoint_failures.range(start..end) {
            let (key, value) = item?;
            let minute = key
                .get(prefix_len..)
                .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
                .map_or(0, u64::from_be_bytes);
            let count = <[u8; 8]>::try_from(value.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            failures_by_minute.push((minute, count));
        }
        Ok(StoredHealth {
            consecutive_failures,
            last_success_at,
            failures_by_minute,
        })
    }

    /// Removes an endpoint's health, when the endpoint is deleted.
    pub(crate) fn remove_endpoint_health(&self, endpoint: &EndpointId) -> Result<(), StoreError> {
        self.endpoint_streaks.remove(endpoint.as_str().as_bytes())?;
        let keys: Vec<_> = self
            .endpoint_failures
            .scan_prefix(endpoint.as_str().as_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.endpoint_failures.remove(key)?;
        }
        Ok(())
    }

    /// Removes failure counts of minutes before `cutoff_minute`.
    pub(crate) fn prune_endpoint_failures(&self, cutoff_minute: u64) -> Result<(), StoreError> {
        let mut old = Vec::new();
        for key in self.endpoint_failures.iter().keys() {
            let key = key?;
            let minute = key
                .len()
                .checked_sub(8)
                .and_then(|start| <[u8; 8]>::try_from(&key[start..]).ok())
                .map_or(0, u64::from_be_bytes);
            if minute < cutoff_minute {
                old.push(key);
            }
        }
        for key in old {
            self.endpoint_failures.remove(key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_temp;

    #[test]
    fn streak_and_counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let endpoint = EndpointId::generate();
        {
            let store = Store::open(&path).unwrap();
            store
                .record_endpoint_outcome(&endpoint, true, 1_000)
                .unwrap();
            store
                .record_endpoint_outcome(&endpoint, false, 60_000)
                .unwrap();
            store
                .record_endpoint_outcome(&endpoint, false, 61_000)
                .unwrap();
            store
                .record_endpoint_outcome(&endpoint, false, 180_000)
                .unwrap();
        }
        let store = crate::store::reopen(&path).unwrap();
        let health = store.endpoint_health(&endpoint, 0).unwrap();
        assert_eq!(health.consecutive_failures, 3);
        assert_eq!(health.last_success_at, 1_000);
        assert_eq!(health.failures_by_minute, vec![(1, 2), (3, 1)]);
        let recent = store.endpoint_health(&endpoint, 2).unwrap();
        assert_eq!(recent.failures_by_minute, vec![(3, 1)]);
    }

    #[test]
    fn success_resets_streak_and_delete_clears() {
        let (_dir, store) = open_temp();
        let endpoint = EndpointId::generate();
        store.record_endpoint_outcome(&endpoint, false, 10).unwrap();
        store.record_endpoint_outcome(&endpoint, true, 20).unwrap();
        let health = store.endpoint_health(&endpoint, 0).unwrap();
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(health.last_success_at, 20);
        store.prune_endpoint_failures(1).unwrap();
        assert!(store
            .endpoint_health(&endpoint, 0)
            .unwrap()
            .failures_by_minute
            .is_empty());
        store
            .record_endpoint_outcome(&endpoint, false, 120_000)
            .unwrap();
        store.remove_endpoint_health(&endpoint).unwrap();
        assert_eq!(
            store.endpoint_health(&endpoint, 0).unwrap(),
            StoredHealth::default()
        );
    }
}
