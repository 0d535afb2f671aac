//! Threshold rules.

use belter_common::RuleId;

use super::{RuleRecord, Store, StoreError};
use crate::codec::{decode, encode};

impl Store {
    /// Reads every rule, oldest first.
    pub(crate) fn rules(&self) -> Result<Vec<(RuleId, RuleRecord)>, StoreError> {
        let mut rules = Vec::new();
        for item in self.rules.iter() {
            let (key, bytes) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let id = RuleId::parse(&text).map_err(|error| StoreError::CorruptKey {
                tree: "rules",
                detail: error.to_string(),
            })?;
            rules.push((id, decode(&bytes)?));
        }
        Ok(rules)
    }

    /// Writes a rule. The caller flushes before it confirms the change.
    pub(crate) fn put_rule(&self, id: &RuleId, record: &RuleRecord) -> Result<(), StoreError> {
        self.rules.insert(id.as_str().as_bytes(), encode(record)?)?;
        Ok(())
    }

    /// Removes a rule and returns whether it existed. The caller flushes.
    pub(crate) fn remove_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        Ok(self.rules.remove(id.as_str().as_bytes())?.is_some())
    }
}
