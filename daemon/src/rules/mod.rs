//! Rules the daemon applies to accepted events: threshold rules that derive
//! `score.threshold_breached` events, and endpoint payload filters.

pub(crate) mod filter;
pub(crate) mod threshold;

use std::sync::RwLock;

use belter_common::rules::ThresholdRule as RuleView;
use belter_common::{RuleId, Timestamp};

use crate::store::{RuleRecord, Store, StoreError};

/// The threshold rules in memory, loaded from the store at start and changed only together
/// with it, so a change applies to the next accepted event.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    rules: RwLock<Vec<(RuleId, RuleRecord)>>,
}

impl RuleSet {
    pub(crate) fn new(stored: Vec<(RuleId, RuleRecord)>) -> Self {
        Self {
            rules: RwLock::new(stored),
        }
    }

    /// Every rule as the API shows it, oldest first.
    pub(crate) fn list(&self) -> Vec<RuleView> {
        self.read()
            .iter()
            .map(|(id, record)| view(id, record))
            .collect()
    }

    /// The rules in the evaluator's form.
    pub(crate) fn evaluator_rules(&self) -> Vec<threshold::ThresholdRule> {
        self.read()
            .iter()
            .map(|(id, record)| threshold::ThresholdRule {
                id: id.to_string(),
                scope: record.scope,
                scope_id: record.scope_id.clone(),
                criterion: record.criterion.clone(),
                min_score: record.min_score,
            })
            .collect()
    }

    /// Adds a rule and writes it to the store. The caller flushes.
    pub(crate) fn insert(&self, store: &Store, record: RuleRecord) -> Result<RuleView, StoreError> {
        let id = RuleId::generate();
        let mut rules = self.write();
        store.put_rule(&id, &record)?;
        let shown = view(&id, &record);
        rules.push((id, record));
        Ok(shown)
    }

    /// Removes a rule from the store and the set; `None` when it does not exist.
    pub(crate) fn remove(
        &self,
        store: &Store,
        id: &RuleId,
    ) -> Result<Option<RuleView>, StoreError> {
        let mut rules = self.write();
        let Some(position) = rules.iter().position(|(rule_id, _)| rule_id == id) else {
            return Ok(None);
        };
        store.remove_rule(id)?;
        let (id, record) = rules.remove(position);
        Ok(Some(view(&id, &record)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(RuleId, RuleRecord)>> {
        self.rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(RuleId, RuleRecord)>> {
        self.rules
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn view(id: &RuleId, record: &RuleRecord) -> RuleView {
    RuleView {
        id: id.clone(),
        scope: record.scope,
        scope_id: record.scope_id.clone(),
        criterion: record.criterion.clone(),
        min_score: record.min_score,
        created_at: Timestamp::from_millis(record.created_at),
    }
}
