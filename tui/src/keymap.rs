//! Keys to actions. Which keys mean what depends only on what is on screen: the filter line, an
//! overlay, or the current view. `KEY_HELP` lists the same keys for the help overlay.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::action::{Action, Motion};
use crate::app::{App, Overlay, View};

/// The help overlay's content: section titles with key and meaning pairs. It fits 80x24.
pub const KEY_HELP: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("↑ ↓  k j", "move, or scroll the detail"),
            ("PgUp PgDn", "one screen (also ^b ^f; ^u ^d half)"),
            ("Home g  End G", "newest / oldest, paging to the end"),
            ("Enter", "open the delivery or endpoint"),
            ("Esc", "back; in the log, clear the marks"),
            ("e  t", "endpoints / threshold rules"),
            ("?  q ^c", "this help / quit"),
        ],
    ),
    (
        "Delivery log",
        &[
            ("/", "filter, e.g. status:failed since:1h"),
            ("f", "failed only, on and off"),
            ("Space m", "mark or unmark for replay"),
            ("c", "clear the marks"),
            ("r", "replay the marked, else the selected"),
            ("R", "replay everything the filter matches"),
        ],
    ),
    (
        "Other views",
        &[
            ("Tab  r", "detail: next section / replay it"),
            ("p  Enter", "endpoints: pause or resume / its log"),
            ("a  d", "rules: add a rule / delete the selected"),
            ("Enter  Esc", "filter or rule line: apply / cancel"),
            ("y  n", "confirmation: yes / no"),
        ],
    ),
];

/// Maps a terminal event to its action in the current state, if it has one.
pub fn action_for_event(app: &App, event: &Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => action_for_key(app, event, key),
        Event::Resize(width, height) => Some(Action::Resize {
            width: *width,
            height: *height,
        }),
        _ => None,
    }
}

fn action_for_key(app: &App, event: &Event, key: &KeyEvent) -> Option<Action> {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    if control && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if app.filter_editor.is_some() {
        return match key.code {
            KeyCode::Enter => Some(Action::ApplyFilter),
            KeyCode::Esc => Some(Action::CancelFilter),
            _ => tui_input::backend::crossterm::to_input_request(event).map(Action::EditFilter),
        };
    }
    if app.view == View::Rules && app.rules.editor.is_some() {
        return match key.code {
            KeyCode::Enter => Some(Action::SubmitRule),
            KeyCode::Esc => Some(Action::CancelRule),
            _ => tui_input::backend::crossterm::to_input_request(event).map(Action::EditRule),
        };
    }
    match &app.overlay {
        Some(Overlay::Help) => {
            return match key.code {
                KeyCode::Char('q') => Some(Action::Quit),
                _ => Some(Action::ToggleHelp),
            }
        }
        Some(Overlay::Confirm(_) | Overlay::DeleteRule(_)) => {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                    Some(Action::Back)
                }
                _ => None,
            }
        }
        None => {}
    }
    if let Some(motion) = motion_for_key(key) {
        return Some(Action::Move(motion));
    }
    let common = match key.code {
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') => Some(Action::ToggleHelp),
        KeyCode::Enter => Some(Action::Open),
        KeyCode::Esc => Some(Action::Back),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match (app.view, key.code) {
        (View::Log, KeyCode::Char('/')) => Some(Action::OpenFilter),
        (View::Log, KeyCode::Char('f')) => Some(Action::ToggleFailedOnly),
        (View::Log, KeyCode::Char(' ') | KeyCode::Char('m')) => Some(Action::ToggleMark),
        (View::Log, KeyCode::Char('c')) => Some(Action::ClearMarks),
        (View::Log | View::Detail, KeyCode::Char('r')) => Some(Action::Replay),
        (View::Log, KeyCode::Char('R')) => Some(Action::ReplayFiltered),
        (View::Log | View::Detail | View::Rules, KeyCode::Char('e')) => Some(Action::ShowEndpoints),
        (View::Log | View::Detail | View::Endpoints, KeyCode::Char('t')) => Some(Action::ShowRules),
        (View::Detail, KeyCode::Tab) => Some(Action::NextSection),
        (View::Endpoints, KeyCode::Char('p')) => Some(Action::TogglePause),
        (View::Rules, KeyCode::Char('a')) => Some(Action::OpenRuleEditor),
        (View::Rules, KeyCode::Char('d') | KeyCode::Delete) => Some(Action::DeleteRule),
        _ => None,
    }
}

fn motion_for_key(key: &KeyEvent) -> Option<Motion> {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    let motion = match key.code {
        KeyCode::Up => Motion::Up,
        KeyCode::Down => Motion::Down,
        KeyCode::PageUp => Motion::PageUp,
        KeyCode::PageDown => Motion::PageDown,
        KeyCode::Home => Motion::First,
        KeyCode::End => Motion::Last,
        KeyCode::Char('b') if control => Motion::PageUp,
        KeyCode::Char('f') if control => Motion::PageDown,
        KeyCode::Char('u') if control => Motion::HalfPageUp,
        KeyCode::Char('d') if control => Motion::HalfPageDown,
        KeyCode::Char('k') if !control => Motion::Up,
        KeyCode::Char('j') if !control => Motion::Down,
        KeyCode::Char('g') if !control => Motion::First,
        KeyCode::Char('G') => Motion::Last,
        _ => return None,
    };
    Some(motion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::FilterEditor;
    use crate::theme::Theme;

    fn app() -> App {
        App::new(
            "/tmp/control.sock".into(),
            Theme { color: false },
            crate::fixtures::now(),
            80,
            24,
        )
    }

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn key_with(code: KeyCode, modifiers: KeyModifiers) -> Event {
        Event::Key(KeyEvent::new(code, modifiers))
    }

    fn action(app: &App, event: Event) -> Option<String> {
        action_for_event(app, &event).map(|action| format!("{action:?}"))
    }

    #[test]
    fn arrows_and_vi_keys_move() {
        let app = app();
        for (event, motion) in [
            (key(KeyCode::Down), "Down"),
            (key(KeyCode::Char('j')), "Down"),
            (key(KeyCode::Up), "Up"),
            (key(KeyCode::Char('k')), "Up"),
            (key(KeyCode::PageDown), "PageDown"),
            (
                key_with(KeyCode::Char('f'), KeyModifiers::CONTROL),
                "PageDown",
            ),
            (
                key_with(KeyCode::Char('d'), KeyModifiers::CONTROL),
                "HalfPageDown",
            ),
            (key(KeyCode::Home), "First"),
            (key(KeyCode::Char('g')), "First"),
            (key(KeyCode::End), "Last"),
            (key_with(KeyCode::Char('G'), KeyModifiers::SHIFT), "Last"),
        ] {
            assert_eq!(action(&app, event), Some(format!("Move({motion})")));
        }
    }

    #[test]
    fn log_keys_map_to_actions() {
        let app = app();
        assert_eq!(
            action(&app, key(KeyCode::Char('/'))).as_deref(),
            Some("OpenFilter")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char('f'))).as_deref(),
            Some("ToggleFailedOnly")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char(' '))).as_deref(),
            Some("ToggleMark")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char('r'))).as_deref(),
            Some("Replay")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char('R'))).as_deref(),
            Some("ReplayFiltered")
        );
        assert_eq!(action(&app, key(KeyCode::Enter)).as_deref(), Some("Open"));
        assert_eq!(
            action(&app, key(KeyCode::Char('q'))).as_deref(),
            Some("Quit")
        );
        assert_eq!(action(&app, key(KeyCode::Char('p'))), None);
    }

    #[test]
    fn filter_line_takes_letters() {
        let mut app = app();
        app.filter_editor = Some(FilterEditor::default());
        assert_eq!(
            action(&app, key(KeyCode::Char('q'))).as_deref(),
            Some("EditFilter(InsertChar('q'))")
        );
        assert_eq!(
            action(&app, key(KeyCode::Enter)).as_deref(),
            Some("ApplyFilter")
        );
        assert_eq!(
            action(&app, key(KeyCode::Esc)).as_deref(),
            Some("CancelFilter")
        );
        assert_eq!(
            action(&app, key_with(KeyCode::Char('c'), KeyModifiers::CONTROL)).as_deref(),
            Some("Quit")
        );
    }

    #[test]
    fn endpoint_view_pauses_with_p() {
        let mut app = app();
        app.view = View::Endpoints;
        assert_eq!(
            action(&app, key(KeyCode::Char('p'))).as_deref(),
            Some("TogglePause")
        );
        assert_eq!(action(&app, key(KeyCode::Char('r'))), None);
    }

    #[test]
    fn rules_keys_map_to_actions() {
        let mut app = app();
        assert_eq!(
            action(&app, key(KeyCode::Char('t'))).as_deref(),
            Some("ShowRules")
        );
        app.view = View::Rules;
        for (event, expected) in [
            (key(KeyCode::Char('a')), Some("OpenRuleEditor")),
            (key(KeyCode::Char('d')), Some("DeleteRule")),
            (key(KeyCode::Delete), Some("DeleteRule")),
            (key(KeyCode::Char('e')), Some("ShowEndpoints")),
            (key(KeyCode::Esc), Some("Back")),
            (key(KeyCode::Char('t')), None),
            (key(KeyCode::Char('p')), None),
            (key(KeyCode::Char('r')), None),
        ] {
            assert_eq!(action(&app, event).as_deref(), expected);
        }
        app.view = View::Endpoints;
        assert_eq!(
            action(&app, key(KeyCode::Char('t'))).as_deref(),
            Some("ShowRules")
        );
    }

    #[test]
    fn rule_line_takes_letters() {
        let mut app = app();
        app.view = View::Rules;
        app.rules.editor = Some(crate::app::RuleEditor::default());
        assert_eq!(
            action(&app, key(KeyCode::Char('d'))).as_deref(),
            Some("EditRule(InsertChar('d'))")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char('q'))).as_deref(),
            Some("EditRule(InsertChar('q'))")
        );
        assert_eq!(
            action(&app, key(KeyCode::Enter)).as_deref(),
            Some("SubmitRule")
        );
        assert_eq!(
            action(&app, key(KeyCode::Esc)).as_deref(),
            Some("CancelRule")
        );
        assert_eq!(
            action(&app, key_with(KeyCode::Char('c'), KeyModifiers::CONTROL)).as_deref(),
            Some("Quit")
        );
    }

    #[test]
    fn rule_deletion_confirms_with_y() {
        let mut app = app();
        app.view = View::Rules;
        app.overlay = Some(Overlay::DeleteRule(crate::fixtures::rules()[0].clone()));
        assert_eq!(
            action(&app, key(KeyCode::Char('y'))).as_deref(),
            Some("Confirm")
        );
        assert_eq!(
            action(&app, key(KeyCode::Enter)).as_deref(),
            Some("Confirm")
        );
        assert_eq!(
            action(&app, key(KeyCode::Char('n'))).as_deref(),
            Some("Back")
        );
        assert_eq!(action(&app, key(KeyCode::Esc)).as_deref(), Some("Back"));
        assert_eq!(action(&app, key(KeyCode::Char('d'))), None);
    }

    #[test]
    fn key_release_is_ignored() {
        let app = app();
        let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(action(&app, Event::Key(release)), None);
    }

    #[test]
    fn resize_is_an_action() {
        let app = app();
        assert_eq!(
            action(&app, Event::Resize(100, 30)).as_deref(),
            Some("Resize { width: 100, height: 30 }")
        );
    }
}
