//! Threshold rules: the daemon derives a `score.threshold_breached` event when an accepted
//! `evaluation.completed` scores below the rule that decides for it.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, RuleId};
use crate::timestamp::Timestamp;

/// The scope of a threshold rule. A more specific scope decides over a broader one: agent over
/// team over brand over global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// Every evaluation.
    Global,
    /// Evaluations whose `data.brand` is the rule's `scope_id`.
    Brand,
    /// Evaluations whose `data.team` is the rule's `scope_id`.
    Team,
    /// Evaluations whose `data.agent` is the rule's `scope_id`.
    Agent,
}

impl RuleScope {
    /// The wire name, such as `team`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleScope::Global => "global",
            RuleScope::Brand => "brand",
            RuleScope::Team => "team",
            RuleScope::Agent => "agent",
        }
    }
}

impl std::str::FromStr for RuleScope {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            RuleScope::Global,
            RuleScope::Brand,
            RuleScope::Team,
            RuleScope::Agent,
        ]
        .into_iter()
        .find(|scope| scope.as_str() == name)
        .ok_or_else(|| format!("unknown scope {name:?}: expected global, brand, team or agent"))
    }
}

/// Body of `POST /v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    /// What the rule covers.
    pub scope: RuleScope,
    /// The brand, team or agent id; absent for a global rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// The criterion the rule checks; absent for the overall score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<String>,
    /// A score below this breaks the rule.
    pub min_score: f64,
}

/// A stored threshold rule, from `GET /v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThresholdRule {
    /// The rule id.
    pub id: RuleId,
    /// What the rule covers.
    pub scope: RuleScope,
    /// The brand, team or agent id; absent for a global rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// The criterion the rule checks; absent for the overall score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<String>,
    /// A score below this breaks the rule.
    pub min_score: f64,
    /// When the rule was created.
    pub created_at: Timestamp,
}

/// The origin of a derived event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DerivedFrom {
    /// The rule that fired.
    pub rule_id: RuleId,
    /// The `evaluation.completed` event that broke it.
    pub event_id: EventId,
}
