//! Threshold rules on `evaluation.completed` scores, and the `score.threshold_breached` events
//! they derive. For each criterion, and for the overall score, the most specific rule that covers
//! the evaluation decides: agent over team over brand over global. So a receiver gets at most one
//! breach per criterion of an evaluation.

use belter_common::rules::RuleScope;
use serde_json::{json, Map, Value};

/// The `data` field a scoped rule matches on.
fn data_field(scope: RuleScope) -> Option<&'static str> {
    match scope {
        RuleScope::Global => None,
        RuleScope::Brand => Some("brand"),
        RuleScope::Team => Some("team"),
        RuleScope::Agent => Some("agent"),
    }
}

/// One threshold rule as the evaluator sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ThresholdRule {
    pub(crate) id: String,
    pub(crate) scope: RuleScope,
    /// The brand, team or agent id; `None` for a global rule.
    pub(crate) scope_id: Option<String>,
    /// The criterion, or `None` for the overall score.
    pub(crate) criterion: Option<String>,
    /// A score below this breaks the rule.
    pub(crate) min_score: f64,
}

impl ThresholdRule {
    fn covers(&self, data: &Value) -> bool {
        match data_field(self.scope) {
            None => true,
            Some(field) => data
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|value| Some(value) == self.scope_id.as_deref()),
        }
    }
}

/// A breach found in one evaluation: the rule that decided and the `data` of the derived event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Breach {
    pub(crate) rule_id: String,
    pub(crate) data: Value,
}

/// Finds the breaches of an `evaluation.completed` event's `data`, whose schema was checked.
/// `source_event_id` is recorded in each derived event.
pub(crate) fn find_breaches(
    rules: &[ThresholdRule],
    data: &Value,
    source_event_id: &str,
) -> Vec<Breach> {
    let mut scores: Vec<(Option<&str>, f64)> = Vec::new();
    if let Some(overall) = data.get("score").and_then(Value::as_f64) {
        scores.push((None, overall));
    }
    for item in data
        .get("criteria")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = item.get("criterion").and_then(Value::as_str);
        let score = item.get("score").and_then(Value::as_f64);
        if let (Some(name), Some(score)) = (name, score) {
            scores.push((Some(name), score));
        }
    }

    let mut breaches = Vec::new();
    let mut decided = std::collections::HashSet::new();
    for (criterion, score) in scores {
        // A criterion listed twice is judged once, on its first score.
        if !decided.insert(criterion) {
            continue;
        }
        let deciding = rules
            .iter()
            .filter(|rule| rule.criterion.as_deref() == criterion && rule.covers(data))
            .max_by_key(|rule| rule.scope);
        let Some(rule) = deciding else {
            continue;
        };
        if score >= rule.min_score {
            continue;
        }
        breaches.push(Breach {
            rule_id: rule.id.clone(),
            data: breach_data(rule, data, criterion, score, source_event_id),
        });
    }
    breaches
}

fn breach_data(
    rule: &ThresholdRule,
    data: &Value,
    criterion: Option<&str>,
    score: f64,
    source_event_id: &str,
) -> Value {
    let mut out = Map::new();
    out.insert(
        "conversation_id".to_owned(),
        data.get("conversation_id").cloned().unwrap_or(Value::Null),
    );
    out.insert("scope".to_owned(), json!(rule.scope.as_str()));
    out.insert(
        "scope_id".to_owned(),
        json!(rule.scope_id.as_deref().unwrap_or("*")),
    );
    out.insert("criterion".to_owned(), json!(criterion));
    out.insert("score".to_owned(), json!(score));
    out.insert("threshold".to_owned(), json!(rule.min_score));
    if let Some(version) = data.get("rubric_version") {
        out.insert("rubric_version".to_owned(), version.clone());
    }
    for field in ["agent", "team", "brand"] {
        if let Some(value) = data.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    out.insert("rule_id".to_owned(), json!(rule.id));
    out.insert("source_event_id".to_owned(), json!(source_event_id));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        id: &str,
        scope: RuleScope,
        scope_id: Option<&str>,
        criterion: Option<&str>,
        min: f64,
    ) -> ThresholdRule {
        ThresholdRule {
            id: id.to_owned(),
            scope,
            scope_id: scope_id.map(str::to_owned),
            criterion: criterion.map(str::to_owned),
            min_score: min,
        }
    }

    fn evaluation() -> Value {
        json!({
            "conversation_id": "conv_1",
            "score": 72,
            "rubric_version": 7,
            "agent": "agent_1",
            "team": "billing",
            "brand": "northwind",
            "criteria": [
                {"criterion": "greeting", "score": 40},
                {"criterion": "resolution", "score": 90}
            ]
        })
    }

    fn decided_by(rules: &[ThresholdRule]) -> Vec<String> {
        find_breaches(rules, &evaluation(), "evt_1")
            .into_iter()
            .map(|breach| breach.rule_id)
            .collect()
    }

    #[test]
    fn each_scope_matches_its_field() {
        let cases = [
            (rule("g", RuleScope::Global, None, None, 80.0), true),
            (
                rule("b", RuleScope::Brand, Some("northwind"), None, 80.0),
                true,
            ),
            (
                rule("b2", RuleScope::Brand, Some("contoso"), None, 80.0),
                false,
            ),
            (
                rule("t", RuleScope::Team, Some("billing"), None, 80.0),
                true,
            ),
            (
                rule("a", RuleScope::Agent, Some("agent_1"), None, 80.0),
                true,
            ),
            (
                rule("a2", RuleScope::Agent, Some("agent_2"), None, 80.0),
                false,
            ),
        ];
        for (rule, breaks) in cases {
            let id = rule.id.clone();
            assert_eq!(!decided_by(&[rule]).is_empty(), breaks, "rule {id}");
        }
    }

    #[test]
    fn most_specific_rule_decides() {
        // The agent rule allows 70, so the stricter global rule does not fire.
        let rules = [
            rule("global", RuleScope::Global, None, None, 90.0),
            rule("team", RuleScope::Team, Some("billing"), None, 85.0),
            rule("agent", RuleScope::Agent, Some("agent_1"), None, 70.0),
        ];
        assert!(decided_by(&rules).is_empty());
        let rules = [
            rule("global", RuleScope::Global, None, None, 60.0),
            rule("brand", RuleScope::Brand, Some("northwind"), None, 75.0),
        ];
        assert_eq!(decided_by(&rules), vec!["brand".to_owned()]);
    }

    #[test]
    fn criterion_and_overall_are_separate() {
        let rules = [
            rule("overall", RuleScope::Global, None, None, 50.0),
            rule("greeting", RuleScope::Global, None, Some("greeting"), 60.0),
            rule(
                "resolution",
                RuleScope::Global,
                None,
                Some("resolution"),
                60.0,
            ),
        ];
        let breaches = find_breaches(&rules, &evaluation(), "evt_1");
        assert_eq!(breaches.len(), 1);
        let breach = &breaches[0];
        assert_eq!(breach.rule_id, "greeting");
        assert_eq!(breach.data["criterion"], "greeting");
        assert_eq!(breach.data["score"], 40.0);
        assert_eq!(breach.data["threshold"], 60.0);
        assert_eq!(breach.data["scope"], "global");
        assert_eq!(breach.data["source_event_id"], "evt_1");
        assert_eq!(breach.data["rubric_version"], 7);
    }

    #[test]
    fn repeated_criterion_breaks_once() {
        let mut data = evaluation();
        data["criteria"] = json!([
            {"criterion": "greeting", "score": 40},
            {"criterion": "greeting", "score": 30}
        ]);
        let rules = [rule("g", RuleScope::Global, None, Some("greeting"), 60.0)];
        let breaches = find_breaches(&rules, &data, "evt_1");
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].data["score"], 40.0);
    }

    #[test]
    fn no_rule_no_breach() {
        assert!(decided_by(&[]).is_empty());
        let rules = [rule("high", RuleScope::Global, None, None, 50.0)];
        assert!(decided_by(&rules).is_empty());
    }

    #[test]
    fn breach_data_passes_its_schema() {
        let rules = [rule(
            "b",
            RuleScope::Brand,
            Some("northwind"),
            Some("greeting"),
            60.0,
        )];
        let breaches = find_breaches(&rules, &evaluation(), "evt_1");
        let kind = belter_common::EventType::ScoreThresholdBreached;
        assert_eq!(
            belter_common::schema::validate(kind, &breaches[0].data),
            Ok(())
        );
    }
}
