use belter_common::rules::{CreateRule, RuleScope};
use tui_input::InputRequest;

use crate::action::{Action, CallError, DaemonMessage};
use crate::app::{App, Overlay, View};
use crate::command::Command;
use crate::fixtures;
use crate::theme::Theme;
use crate::update::update;

fn app() -> App {
    App::new(
        "/tmp/control.sock".into(),
        Theme { color: false },
        fixtures::now(),
        80,
        24,
    )
}

fn daemon(app: &mut App, message: DaemonMessage) -> Vec<Command> {
    update(app, Action::Daemon(Box::new(message)))
}

/// Builds a console on the rules pane with the rule fixtures listed.
fn showing_rules() -> App {
    let mut app = app();
    update(&mut app, Action::ShowRules);
    daemon(&mut app, DaemonMessage::Rules(Ok(fixtures::rules())));
    app
}

fn type_rule(app: &mut App, text: &str) {
    for character in text.chars() {
        update(app, Action::EditRule(InputRequest::InsertChar(character)));
    }
}

fn rejected(api_message: Option<&str>, message: &str) -> CallError {
    CallError {
        message: message.to_owned(),
        api_message: api_message.map(str::to_owned),
    }
}

#[test]
fn show_rules_fetches_list() {
    let mut app = app();
    let commands = update(&mut app, Action::ShowRules);
    assert_eq!(app.view, View::Rules);
    assert_eq!(commands, vec![Command::FetchRules]);
    assert!(app.rules.loading);
    daemon(&mut app, DaemonMessage::Rules(Ok(fixtures::rules())));
    assert!(!app.rules.loading);
    assert_eq!(app.rules.rules.len(), 4);
}

#[test]
fn list_is_sorted_and_keeps_selection() {
    let mut app = app();
    update(&mut app, Action::ShowRules);
    let mut rules = fixtures::rules();
    rules.reverse();
    daemon(&mut app, DaemonMessage::Rules(Ok(rules)));
    let scopes: Vec<RuleScope> = app.rules.rules.iter().map(|rule| rule.scope).collect();
    assert_eq!(
        scopes,
        [
            RuleScope::Global,
            RuleScope::Brand,
            RuleScope::Team,
            RuleScope::Agent
        ]
    );

    update(&mut app, Action::Move(crate::action::Motion::Down));
    update(&mut app, Action::Move(crate::action::Motion::Down));
    let selected = app.rules.selected_rule().map(|rule| rule.id.clone());
    let mut refreshed = fixtures::rules();
    refreshed.push(fixtures::rule(
        9,
        RuleScope::Brand,
        Some("acme"),
        None,
        50.0,
    ));
    daemon(&mut app, DaemonMessage::Rules(Ok(refreshed)));
    assert_eq!(
        app.rules.selected_rule().map(|rule| rule.id.clone()),
        selected
    );
    assert_eq!(app.rules.selected, 3);
}

#[test]
fn failed_list_shows_error() {
    let mut app = app();
    update(&mut app, Action::ShowRules);
    daemon(
        &mut app,
        DaemonMessage::Rules(Err(rejected(None, "control connection to belterd failed"))),
    );
    assert!(!app.rules.loading);
    assert_eq!(
        app.rules.error.as_deref(),
        Some("control connection to belterd failed")
    );
}

#[test]
fn valid_line_sends_create() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(
        &mut app,
        "scope:team id:billing-emea criterion:greeting min:80",
    );
    let commands = update(&mut app, Action::SubmitRule);
    let expected = CreateRule {
        scope: RuleScope::Team,
        scope_id: Some("billing-emea".to_owned()),
        criterion: Some("greeting".to_owned()),
        min_score: 80.0,
    };
    assert_eq!(commands, vec![Command::CreateRule(expected)]);
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert!(editor.submitting);

    // Until the daemon replies, the line is frozen and not sent twice.
    type_rule(&mut app, "x");
    assert!(update(&mut app, Action::SubmitRule).is_empty());
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert_eq!(
        editor.input.value(),
        "scope:team id:billing-emea criterion:greeting min:80"
    );
}

#[test]
fn invalid_line_stays_local() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(&mut app, "scope:team min:80");
    let commands = update(&mut app, Action::SubmitRule);
    assert!(commands.is_empty());
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert!(!editor.submitting);
    let error = editor.error.clone().unwrap_or_default();
    assert!(error.contains("missing id for scope:team"), "{error}");
    type_rule(&mut app, " ");
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert_eq!(editor.error, None);
}

#[test]
fn created_rule_closes_line_and_is_selected() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(&mut app, "scope:brand id:acme min:50");
    update(&mut app, Action::SubmitRule);
    let rule = fixtures::rule(9, RuleScope::Brand, Some("acme"), None, 50.0);
    let commands = daemon(&mut app, DaemonMessage::RuleCreated(Ok(rule.clone())));
    // A rule applies to the next evaluation, so the log is not fetched again.
    assert!(commands.is_empty(), "{commands:?}");
    assert!(app.rules.editor.is_none());
    assert_eq!(app.rules.rules.len(), 5);
    assert_eq!(app.rules.selected_rule(), Some(&rule));
    let notice = app.notice.as_ref().map(|notice| notice.text.clone());
    assert_eq!(
        notice,
        Some(format!(
            "added rule {}: the overall score below 50 for brand acme, from the next evaluation on",
            rule.id
        ))
    );
}

#[test]
fn rejection_shows_daemon_message() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(&mut app, "scope:team id:x min:80");
    update(&mut app, Action::SubmitRule);
    daemon(
        &mut app,
        DaemonMessage::RuleCreated(Err(rejected(
            Some("scope_id must be 1 to 256 bytes long"),
            "belterd returned 422 Unprocessable Entity: scope_id must be 1 to 256 bytes long",
        ))),
    );
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert!(!editor.submitting);
    assert_eq!(editor.input.value(), "scope:team id:x min:80");
    assert_eq!(
        editor.error.as_deref(),
        Some("belterd rejected the rule: scope_id must be 1 to 256 bytes long")
    );
    assert_eq!(app.rules.rules.len(), 4);
}

#[test]
fn failed_create_names_the_call() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(&mut app, "scope:global min:60");
    update(&mut app, Action::SubmitRule);
    daemon(
        &mut app,
        DaemonMessage::RuleCreated(Err(rejected(
            None,
            "cannot connect to belterd at /tmp/control.sock: Connection refused",
        ))),
    );
    let editor = app.rules.editor.as_ref().expect("the line stays open");
    assert_eq!(
        editor.error.as_deref(),
        Some("adding the rule failed: cannot connect to belterd at /tmp/control.sock: Connection refused")
    );
}

#[test]
fn reply_after_cancel_goes_to_footer() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    type_rule(&mut app, "scope:team id:x min:80");
    update(&mut app, Action::SubmitRule);
    update(&mut app, Action::CancelRule);
    daemon(
        &mut app,
        DaemonMessage::RuleCreated(Err(rejected(Some("scope_id is too long"), "422"))),
    );
    let notice = app.notice.as_ref().expect("a notice");
    assert!(notice.is_error);
    assert_eq!(
        notice.text,
        "belterd rejected the rule: scope_id is too long"
    );
}

#[test]
fn delete_needs_confirmation() {
    let mut app = showing_rules();
    update(&mut app, Action::Move(crate::action::Motion::Down));
    let rule = app.rules.selected_rule().cloned().expect("a selected rule");
    assert!(update(&mut app, Action::DeleteRule).is_empty());
    assert_eq!(app.overlay, Some(Overlay::DeleteRule(rule.clone())));
    assert!(update(&mut app, Action::Back).is_empty());
    assert_eq!(app.overlay, None);
    assert_eq!(app.view, View::Rules);

    update(&mut app, Action::DeleteRule);
    let commands = update(&mut app, Action::Confirm);
    assert_eq!(commands, vec![Command::DeleteRule(rule.id.clone())]);
    assert_eq!(app.overlay, None);
}

#[test]
fn delete_outside_rules_does_nothing() {
    let mut app = showing_rules();
    update(&mut app, Action::Back);
    assert_eq!(app.view, View::Log);
    update(&mut app, Action::DeleteRule);
    assert_eq!(app.overlay, None);
}

#[test]
fn deleted_rule_leaves_list() {
    let mut app = showing_rules();
    update(&mut app, Action::Move(crate::action::Motion::Last));
    let rule = app.rules.selected_rule().cloned().expect("a selected rule");
    let commands = daemon(
        &mut app,
        DaemonMessage::RuleDeleted {
            id: rule.id.clone(),
            result: Ok(rule.clone()),
        },
    );
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(app.rules.rules.len(), 3);
    assert!(!app.rules.rules.contains(&rule));
    assert_eq!(app.rules.selected, 2);
    let notice = app.notice.as_ref().map(|notice| notice.text.clone());
    assert_eq!(
        notice,
        Some(format!(
            "deleted rule {}: the overall score below 72.5 for agent agent_1187",
            rule.id
        ))
    );
}

#[test]
fn failed_delete_refetches_list() {
    let mut app = showing_rules();
    let rule = app.rules.selected_rule().cloned().expect("a selected rule");
    let commands = daemon(
        &mut app,
        DaemonMessage::RuleDeleted {
            id: rule.id.clone(),
            result: Err(rejected(
                Some("rule not found"),
                "belterd returned 404 Not Found: rule not found",
            )),
        },
    );
    assert_eq!(commands, vec![Command::FetchRules]);
    let notice = app.notice.as_ref().expect("a notice");
    assert!(notice.is_error);
    assert_eq!(
        notice.text,
        format!(
            "deleting rule {} failed: belterd returned 404 Not Found: rule not found",
            rule.id
        )
    );
}

#[test]
fn tick_refreshes_rules_on_screen() {
    let mut app = showing_rules();
    let soon = update(&mut app, Action::Tick(fixtures::now().plus_millis(1_000)));
    assert!(!soon.contains(&Command::FetchRules));
    let later = update(&mut app, Action::Tick(fixtures::now().plus_millis(5_000)));
    assert!(later.contains(&Command::FetchRules), "{later:?}");

    update(&mut app, Action::Back);
    daemon(&mut app, DaemonMessage::Rules(Ok(fixtures::rules())));
    let away = update(&mut app, Action::Tick(fixtures::now().plus_millis(20_000)));
    assert!(!away.contains(&Command::FetchRules), "{away:?}");
}

#[test]
fn back_closes_rules_and_line() {
    let mut app = showing_rules();
    update(&mut app, Action::OpenRuleEditor);
    update(&mut app, Action::Back);
    assert_eq!(app.view, View::Log);
    assert!(app.rules.editor.is_none());
}

#[test]
fn reconnect_refetches_rules_on_screen() {
    let mut app = showing_rules();
    daemon(&mut app, DaemonMessage::StreamLost("gone".to_owned()));
    let commands = daemon(&mut app, DaemonMessage::StreamConnected(fixtures::health()));
    assert!(commands.contains(&Command::FetchRules), "{commands:?}");
}
