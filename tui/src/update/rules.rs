//! Threshold rules from the console: the list, a new rule from a typed line, and a deletion after
//! a confirmation. A change applies to the next evaluation the daemon accepts, so the delivery
//! log is left as it is.

use belter_common::rules::ThresholdRule;
use belter_common::RuleId;
use tui_input::InputRequest;

use super::daemon::failed;
use crate::action::CallError;
use crate::app::{App, Overlay, RuleEditor, View};
use crate::command::Command;
use crate::rule_line;

/// Shows the rule list and fetches it.
pub(super) fn show(app: &mut App, commands: &mut Vec<Command>) {
    app.view = View::Rules;
    app.detail = None;
    commands.push(rules_command(app));
}

pub(super) fn rules_command(app: &mut App) -> Command {
    app.rules.loading = true;
    app.rules.requested_at = Some(app.now);
    Command::FetchRules
}

pub(super) fn open_editor(app: &mut App) {
    if app.view == View::Rules && app.rules.editor.is_none() {
        app.rules.editor = Some(RuleEditor::default());
    }
}

pub(super) fn edit(app: &mut App, request: InputRequest) {
    let Some(editor) = &mut app.rules.editor else {
        return;
    };
    // The line stays as sent until the daemon replies, so an error refers to what is on screen.
    if editor.submitting {
        return;
    }
    editor.input.handle(request);
    editor.error = None;
}

/// Checks the rule line and sends it, or shows why it is invalid.
pub(super) fn submit(app: &mut App, commands: &mut Vec<Command>) {
    let Some(editor) = &mut app.rules.editor else {
        return;
    };
    if editor.submitting {
        return;
    }
    match rule_line::parse(editor.input.value()) {
        Ok(request) => {
            editor.submitting = true;
            editor.error = None;
            commands.push(Command::CreateRule(request));
        }
        Err(error) => editor.error = Some(error),
    }
}

/// Asks for a confirmation before the selected rule is deleted.
pub(super) fn ask_delete(app: &mut App) {
    if app.view != View::Rules {
        return;
    }
    if let Some(rule) = app.rules.selected_rule() {
        app.overlay = Some(Overlay::DeleteRule(rule.clone()));
    }
}

/// Deletes the rule of the confirmation on screen.
pub(super) fn confirm_delete(app: &mut App, commands: &mut Vec<Command>) {
    let Some(Overlay::DeleteRule(rule)) = app.overlay.take() else {
        return;
    };
    app.inform(format!("deleting rule {}…", rule.id));
    commands.push(Command::DeleteRule(rule.id));
}

pub(super) fn listed(app: &mut App, result: Result<Vec<ThresholdRule>, CallError>) {
    app.rules.loading = false;
    match result {
        Ok(rules) => {
            let selected = app.rules.selected_rule().map(|rule| rule.id.clone());
            app.rules.rules = rules;
            sort_and_select(app, selected.as_ref());
            app.rules.error = None;
        }
        Err(error) => app.rules.error = Some(error.message),
    }
}

pub(super) fn created(app: &mut App, result: Result<ThresholdRule, CallError>) {
    match result {
        Ok(rule) => {
            app.rules.editor = None;
            app.inform(format!(
                "added rule {}: {}, from the next evaluation on",
                rule.id,
                rule_line::describe(&rule)
            ));
            let id = rule.id.clone();
            app.rules.rules.retain(|known| known.id != id);
            app.rules.rules.push(rule);
            sort_and_select(app, Some(&id));
        }
        Err(error) => {
            // A 4xx is a mistake in the rule, shown in the daemon's own words. Anything else is a
            // failed call.
            let text = match &error.api_message {
                Some(message) => format!("belterd rejected the rule: {message}"),
                None => format!("adding the rule failed: {}", error.message),
            };
            tracing::debug!(error = %error.message, "rule not created");
            match &mut app.rules.editor {
                Some(editor) => {
                    editor.submitting = false;
                    editor.error = Some(text);
                }
                None => app.warn(text),
            }
        }
    }
}

pub(super) fn deleted(
    app: &mut App,
    id: &RuleId,
    result: Result<ThresholdRule, CallError>,
    commands: &mut Vec<Command>,
) {
    match result {
        Ok(rule) => {
            app.inform(format!(
                "deleted rule {}: {}",
                rule.id,
                rule_line::describe(&rule)
            ));
            app.rules.rules.retain(|known| &known.id != id);
            let last = app.rules.rules.len().saturating_sub(1);
            app.rules.selected = app.rules.selected.min(last);
        }
        Err(error) => {
            failed(app, &format!("deleting rule {id}"), &error);
            // The list may be out of date, for example when the rule was deleted elsewhere.
            commands.push(rules_command(app));
        }
    }
}

/// Sorts the rules by scope, scope id and criterion, and selects `selected` if it is listed,
/// else keeps the index in range.
fn sort_and_select(app: &mut App, selected: Option<&RuleId>) {
    let view = &mut app.rules;
    view.rules.sort_by(|left, right| {
        (left.scope, &left.scope_id, &left.criterion).cmp(&(
            right.scope,
            &right.scope_id,
            &right.criterion,
        ))
    });
    if let Some(index) = selected.and_then(|id| view.rules.iter().position(|rule| &rule.id == id)) {
        view.selected = index;
    }
    view.selected = view.selected.min(view.rules.len().saturating_sub(1));
}

#[cfg(test)]
mod tests;
