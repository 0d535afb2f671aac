//! `belter rules …`: list, add and remove threshold rules.

use belter_common::client::ControlClient;
use belter_common::rules::{CreateRule, ThresholdRule};

use crate::cli::{AddRuleArgs, RulesCommand};
use crate::output::{print_json, print_text};
use crate::table::Table;

/// Runs one `rules` subcommand.
pub(crate) async fn run(
    client: &ControlClient,
    json: bool,
    command: RulesCommand,
) -> anyhow::Result<()> {
    match command {
        RulesCommand::List => {
            let rules = client.list_rules().await?;
            if json {
                return print_json(&rules);
            }
            print_text(&render_list(&rules))
        }
        RulesCommand::Add(args) => add(client, json, args).await,
        RulesCommand::Remove(args) => {
            let rule = client.delete_rule(&args.id).await?;
            if json {
                return print_json(&rule);
            }
            print_text(&format!("rule {} removed\n", rule.id))
        }
    }
}

async fn add(client: &ControlClient, json: bool, args: AddRuleArgs) -> anyhow::Result<()> {
    let request = CreateRule {
        scope: args.scope,
        scope_id: args.scope_id,
        criterion: args.criterion,
        min_score: args.min_score,
    };
    let rule = client.create_rule(&request).await?;
    if json {
        return print_json(&rule);
    }
    print_text(&format!("rule {} added: {}\n", rule.id, describe(&rule)))
}

/// One line on what a rule checks, such as `team billing: greeting below 80`.
fn describe(rule: &ThresholdRule) -> String {
    let scope = match &rule.scope_id {
        Some(id) => format!("{} {id}", rule.scope.as_str()),
        None => rule.scope.as_str().to_owned(),
    };
    let subject = rule.criterion.as_deref().unwrap_or("overall score");
    format!("{scope}: {subject} below {}", rule.min_score)
}

fn render_list(rules: &[ThresholdRule]) -> String {
    if rules.is_empty() {
        return "no threshold rules\n".to_owned();
    }
    let mut table = Table::new(&["ID", "SCOPE", "SCOPE ID", "CRITERION", "MIN SCORE"]);
    for rule in rules {
        table.push(vec![
            rule.id.to_string(),
            rule.scope.as_str().to_owned(),
            rule.scope_id.clone().unwrap_or_else(|| "*".to_owned()),
            rule.criterion
                .clone()
                .unwrap_or_else(|| "overall".to_owned()),
            rule.min_score.to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use belter_common::rules::RuleScope;
    use belter_common::{RuleId, Timestamp};

    use super::*;

    fn rule(scope: RuleScope, scope_id: Option<&str>, criterion: Option<&str>) -> ThresholdRule {
        ThresholdRule {
            id: RuleId::parse("rule_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            scope,
            scope_id: scope_id.map(str::to_owned),
            criterion: criterion.map(str::to_owned),
            min_score: 80.0,
            created_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn describe_names_scope_and_subject() {
        let team = rule(RuleScope::Team, Some("billing"), Some("greeting"));
        assert_eq!(describe(&team), "team billing: greeting below 80");
        let global = rule(RuleScope::Global, None, None);
        assert_eq!(describe(&global), "global: overall score below 80");
    }

    #[test]
    fn list_shows_star_and_overall() {
        let text = render_list(&[rule(RuleScope::Global, None, None)]);
        assert!(text.contains("rule_01ARZ3NDEKTSV4RRFFQ69G5FAV"), "{text}");
        assert!(text.contains("overall"), "{text}");
        assert_eq!(render_list(&[]), "no threshold rules\n");
    }
}
