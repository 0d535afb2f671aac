//! The threshold rule line typed in the console, such as
//! `scope:team id:billing-emea criterion:greeting min:80`, parsed into the daemon's `CreateRule`,
//! and the same form written back for a stored rule.

use belter_common::rules::{CreateRule, RuleScope, ThresholdRule};

/// An example line, shown in hints and in errors about an empty line.
pub const EXAMPLE: &str = "scope:team id:billing-emea criterion:greeting min:80";

/// The criterion text that stands for the overall score, in the list and on the rule line.
pub const OVERALL: &str = "overall";

/// Parses a rule line: whitespace-separated `key:value` terms with the keys `scope`, `id`,
/// `criterion` and `min`. A value in double quotes may contain spaces. Leaving out the
/// criterion, or writing `criterion:overall`, makes a rule on the overall score.
pub fn parse(text: &str) -> Result<CreateRule, String> {
    let terms = split_terms(text)?;
    if terms.is_empty() {
        return Err(format!(
            "the rule line is empty: type a rule such as {EXAMPLE}"
        ));
    }

    let mut scope = None;
    let mut scope_id = None;
    let mut criterion = None;
    let mut min_score = None;
    for term in &terms {
        let Some((key, value)) = term.split_once(':') else {
            return Err(format!(
                "invalid term {term:?}: write key:value, with the keys scope, id, criterion and min"
            ));
        };
        let value = value.trim_matches('"');
        if value.is_empty() {
            return Err(format!(
                "missing value after {key}: in the rule line: write {key}:VALUE"
            ));
        }
        let slot = match key {
            "scope" => &mut scope,
            "id" | "scope_id" => &mut scope_id,
            "criterion" => &mut criterion,
            "min" | "min_score" => &mut min_score,
            other => {
                return Err(format!(
                    "unknown key {other:?} in {term:?}: expected scope, id, criterion or min"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("{key}: is given twice: keep one of them"));
        }
        *slot = Some(value.to_owned());
    }

    let scope = match scope {
        Some(name) => name.parse::<RuleScope>()?,
        None => {
            return Err(
                "missing scope: add scope:global, scope:brand, scope:team or scope:agent"
                    .to_owned(),
            )
        }
    };
    match (scope, &scope_id) {
        (RuleScope::Global, Some(id)) => {
            return Err(format!(
                "scope:global takes no id: remove id:{id}, or pick scope brand, team or agent"
            ))
        }
        (RuleScope::Global, None) | (_, Some(_)) => {}
        (scope, None) => {
            let name = scope.as_str();
            return Err(format!(
                "missing id for scope:{name}: add the {name} id, such as id:{}",
                example_id(scope)
            ));
        }
    }
    let Some(min_text) = min_score else {
        return Err("missing min: add the minimum score, such as min:80".to_owned());
    };
    let min_score = match min_text.parse::<f64>() {
        Ok(number) if number.is_finite() => number,
        _ => {
            return Err(format!(
                "invalid min {min_text:?}: expected a number such as 80 or 72.5"
            ))
        }
    };
    let criterion = criterion.filter(|name| name != OVERALL);
    Ok(CreateRule {
        scope,
        scope_id,
        criterion,
        min_score,
    })
}

fn example_id(scope: RuleScope) -> &'static str {
    match scope {
        RuleScope::Brand => "northwind",
        RuleScope::Agent => "agent_1187",
        RuleScope::Global | RuleScope::Team => "billing-emea",
    }
}

/// Splits the line at whitespace outside double quotes.
fn split_terms(text: &str) -> Result<Vec<String>, String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for character in text.chars() {
        match character {
            '"' => {
                quoted = !quoted;
                current.push(character);
            }
            _ if character.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(character),
        }
    }
    if quoted {
        return Err(format!(
            "missing closing quote in {current:?}: end the value with \""
        ));
    }
    if !current.is_empty() {
        terms.push(current);
    }
    Ok(terms)
}

/// Writes a stored rule as the line that would create it, such as
/// `scope:team id:billing-emea criterion:greeting min:80`.
pub fn to_line(rule: &ThresholdRule) -> String {
    let mut terms = vec![format!("scope:{}", rule.scope.as_str())];
    if let Some(id) = &rule.scope_id {
        terms.push(format!("id:{}", quote(id)));
    }
    if let Some(criterion) = &rule.criterion {
        terms.push(format!("criterion:{}", quote(criterion)));
    }
    terms.push(format!("min:{}", rule.min_score));
    terms.join(" ")
}

fn quote(value: &str) -> String {
    if value.chars().any(char::is_whitespace) {
        format!("\"{value}\"")
    } else {
        value.to_owned()
    }
}

/// Describes what a rule checks, such as `greeting below 80 for team billing-emea`.
pub fn describe(rule: &ThresholdRule) -> String {
    let score = match &rule.criterion {
        Some(criterion) => criterion.clone(),
        None => "the overall score".to_owned(),
    };
    let covered = match (&rule.scope, &rule.scope_id) {
        (RuleScope::Global, _) | (_, None) => "every evaluation".to_owned(),
        (scope, Some(id)) => format!("{} {id}", scope.as_str()),
    };
    format!("{score} below {} for {covered}", rule.min_score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> CreateRule {
        parse(line).unwrap_or_else(|error| panic!("{line:?} did not parse: {error}"))
    }

    fn error(line: &str) -> String {
        match parse(line) {
            Ok(rule) => panic!("{line:?} parsed as {rule:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn parse_reads_full_line() {
        let parsed = rule("scope:team id:billing-emea criterion:greeting min:80");
        assert_eq!(parsed.scope, RuleScope::Team);
        assert_eq!(parsed.scope_id.as_deref(), Some("billing-emea"));
        assert_eq!(parsed.criterion.as_deref(), Some("greeting"));
        assert_eq!(parsed.min_score, 80.0);
    }

    #[test]
    fn parse_takes_terms_in_any_order() {
        let parsed = rule("  min:72.5   id:agent_1187 scope:agent ");
        assert_eq!(parsed.scope, RuleScope::Agent);
        assert_eq!(parsed.scope_id.as_deref(), Some("agent_1187"));
        assert_eq!(parsed.criterion, None);
        assert_eq!(parsed.min_score, 72.5);
    }

    #[test]
    fn parse_global_needs_no_id() {
        let parsed = rule("scope:global min:60");
        assert_eq!(parsed.scope, RuleScope::Global);
        assert_eq!(parsed.scope_id, None);
    }

    #[test]
    fn parse_overall_means_no_criterion() {
        assert_eq!(
            rule("scope:global criterion:overall min:60").criterion,
            None
        );
    }

    #[test]
    fn parse_accepts_api_key_names() {
        let parsed = rule("scope:brand scope_id:northwind min_score:90");
        assert_eq!(parsed.scope_id.as_deref(), Some("northwind"));
        assert_eq!(parsed.min_score, 90.0);
    }

    #[test]
    fn parse_keeps_quoted_spaces() {
        let parsed = rule("scope:team id:\"billing emea\" criterion:\"first contact\" min:50");
        assert_eq!(parsed.scope_id.as_deref(), Some("billing emea"));
        assert_eq!(parsed.criterion.as_deref(), Some("first contact"));
    }

    #[test]
    fn parse_errors_name_value_and_fix() {
        let cases = [
            ("", "type a rule such as scope:team"),
            ("   ", "the rule line is empty"),
            ("team", "invalid term \"team\": write key:value"),
            ("scope:", "missing value after scope: in the rule line"),
            ("colour:red", "unknown key \"colour\" in \"colour:red\""),
            (
                "scope:tem min:80",
                "unknown scope \"tem\": expected global, brand",
            ),
            ("id:billing min:80", "missing scope: add scope:global"),
            (
                "scope:global id:x min:80",
                "scope:global takes no id: remove id:x",
            ),
            (
                "scope:team min:80",
                "missing id for scope:team: add the team id",
            ),
            ("scope:agent min:80", "such as id:agent_1187"),
            (
                "scope:team id:billing",
                "missing min: add the minimum score",
            ),
            (
                "scope:global min:eighty",
                "invalid min \"eighty\": expected a number",
            ),
            ("scope:global min:NaN", "invalid min \"NaN\""),
            ("scope:global min:inf", "invalid min \"inf\""),
            ("scope:global min:1 min:2", "min: is given twice"),
            (
                "scope:team id:\"billing emea min:80",
                "missing closing quote",
            ),
        ];
        for (line, expected) in cases {
            let message = error(line);
            assert!(
                message.contains(expected),
                "{line:?} gave {message:?}, expected it to contain {expected:?}"
            );
        }
    }

    fn stored(scope: RuleScope, id: Option<&str>, criterion: Option<&str>) -> ThresholdRule {
        let json = serde_json::json!({
            "id": format!("rule_{}", ulid::Ulid::from_parts(crate::fixtures::NOW_MILLIS, 1)),
            "scope": scope,
            "scope_id": id,
            "criterion": criterion,
            "min_score": 80.0,
            "created_at": crate::fixtures::now(),
        });
        serde_json::from_value(json).expect("valid rule")
    }

    #[test]
    fn to_line_parses_back() {
        for rule in [
            stored(RuleScope::Team, Some("billing-emea"), Some("greeting")),
            stored(RuleScope::Global, None, None),
            stored(RuleScope::Brand, Some("north wind"), None),
        ] {
            let line = to_line(&rule);
            let parsed = parse(&line).expect("the written line parses");
            assert_eq!(parsed.scope, rule.scope, "{line}");
            assert_eq!(parsed.scope_id, rule.scope_id, "{line}");
            assert_eq!(parsed.criterion, rule.criterion, "{line}");
            assert_eq!(parsed.min_score, rule.min_score, "{line}");
        }
        assert_eq!(
            to_line(&stored(
                RuleScope::Team,
                Some("billing-emea"),
                Some("greeting")
            )),
            "scope:team id:billing-emea criterion:greeting min:80"
        );
    }

    #[test]
    fn describe_names_criterion_and_scope() {
        assert_eq!(
            describe(&stored(
                RuleScope::Team,
                Some("billing-emea"),
                Some("greeting")
            )),
            "greeting below 80 for team billing-emea"
        );
        assert_eq!(
            describe(&stored(RuleScope::Global, None, None)),
            "the overall score below 80 for every evaluation"
        );
    }
}
