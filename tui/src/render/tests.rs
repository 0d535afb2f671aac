use belter_common::api::{DeliveryPage, ReplayRequest, ReplayResponse, TargetCount};
use belter_common::records::DeliveryStatus;
use belter_common::EventType;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use tui_input::InputRequest;

use super::render;
use crate::action::{Action, DaemonMessage, Motion};
use crate::app::{App, Connection};
use crate::command::Command;
use crate::fixtures::{self, delivery, failed_delivery, retrying_delivery};
use crate::theme::Theme;
use crate::update::update;

const NARROW: (u16, u16) = (80, 24);
const WIDE: (u16, u16) = (132, 36);

fn daemon(app: &mut App, message: DaemonMessage) -> Vec<Command> {
    update(app, Action::Daemon(Box::new(message)))
}

/// The rows of the log fixture: one of each outcome, newest first.
fn log_rows() -> Vec<belter_common::records::Delivery> {
    let mut rows = vec![delivery(1), failed_delivery(2), retrying_delivery(3)];
    let mut in_flight = delivery(4);
    in_flight.status = DeliveryStatus::InFlight;
    in_flight.last_status_code = None;
    in_flight.last_latency_ms = None;
    in_flight.attempt_count = 0;
    rows.push(in_flight);
    let mut paused = delivery(5);
    paused.status = DeliveryStatus::Paused;
    paused.last_status_code = None;
    paused.last_latency_ms = None;
    paused.attempt_count = 0;
    rows.push(paused);
    rows.push(failed_delivery(6));
    let mut old = delivery(200_000);
    old.event_type = EventType::ScoreThresholdBreached;
    rows.push(old);
    rows
}

/// A console with the log fixture loaded, totals known and the stream live.
fn app_with_log(size: (u16, u16), theme: Theme) -> App {
    let mut app = App::new(
        "/run/belter/control.sock".into(),
        theme,
        fixtures::now(),
        size.0,
        size.1,
    );
    let commands = update(&mut app, Action::Start);
    let Some(Command::FetchPage { request, .. }) = commands.into_iter().next() else {
        panic!("start did not fetch a page");
    };
    daemon(
        &mut app,
        DaemonMessage::Page {
            request,
            result: Ok(DeliveryPage {
                deliveries: log_rows(),
                next_cursor: None,
            }),
        },
    );
    daemon(&mut app, DaemonMessage::Stats(Ok(fixtures::stats())));
    daemon(&mut app, DaemonMessage::StreamConnected(fixtures::health()));
    app
}

fn color() -> Theme {
    Theme { color: true }
}

fn draw(app: &App) -> Buffer {
    let backend = TestBackend::new(app.width, app.height);
    let mut terminal = Terminal::new(backend).expect("test terminal");
    terminal
        .draw(|frame| render(app, frame))
        .expect("draw succeeds");
    terminal.backend().buffer().clone()
}

/// Converts the screen to text, one line per row, with trailing blanks cut and ids masked.
fn text(buffer: &Buffer) -> String {
    let mut lines = Vec::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        lines.push(line.trim_end().to_owned());
    }
    mask_ids(&lines.join("\n"))
}

/// Replaces every full id (`del_`, `evt_`, `ep_` or `rule_` and 26 base32 characters) with a
/// placeholder.
fn mask_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for prefix in ["del_", "evt_", "ep_", "rule_"] {
            if let Some(tail) = rest.strip_prefix(prefix) {
                let id_length = tail
                    .chars()
                    .take_while(|character| character.is_ascii_alphanumeric())
                    .count();
                if id_length == 26 {
                    out.push_str(prefix);
                    out.push_str("<id>");
                    rest = &tail[26..];
                    continue 'scan;
                }
            }
        }
        let mut characters = rest.chars();
        if let Some(character) = characters.next() {
            out.push(character);
        }
        rest = characters.as_str();
    }
    out
}

fn screen(app: &App) -> String {
    text(&draw(app))
}

fn row_containing(screen: &str, needle: &str) -> String {
    screen
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?} in\n{screen}"))
        .to_owned()
}

#[test]
fn log_at_80x24() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::ToggleMark);
    let screen = screen(&app);
    insta::assert_snapshot!("log_80x24", screen);
    assert!(row_containing(&screen, "3,892 OK").contains("14 failed"));
    assert!(row_containing(&screen, "score.threshold_brea…").contains("✖ 500"));
    assert!(row_containing(&screen, "↻ timeout").contains("3.0s"));
    assert!(screen.contains("1 marked"));
}

#[test]
fn log_at_wide_size() {
    let app = app_with_log(WIDE, color());
    let screen = screen(&app);
    insta::assert_snapshot!("log_wide", screen);
    assert!(screen.contains("hooks.example.com/integrations/crm/receive"));
    assert!(screen.contains("belterd 0.1.0"));
}

#[test]
fn failure_is_red_with_color() {
    let app = app_with_log(NARROW, color());
    let buffer = draw(&app);
    let screen = text(&buffer);
    let y = screen
        .lines()
        .position(|line| line.contains("✖ 500"))
        .expect("a failed row") as u16;
    let x = (0..buffer.area.width)
        .find(|&x| buffer[(x, y)].symbol() == "✖")
        .expect("the failure symbol");
    assert_eq!(buffer[(x, y)].fg, Color::Red);
}

#[test]
fn no_color_theme_uses_no_color() {
    let mut app = app_with_log(NARROW, Theme { color: false });
    update(&mut app, Action::ToggleMark);
    let buffer = draw(&app);
    for cell in buffer.content() {
        assert_eq!(cell.fg, Color::Reset, "cell {:?}", cell.symbol());
        assert_eq!(cell.bg, Color::Reset, "cell {:?}", cell.symbol());
    }
    assert!(text(&buffer).contains("✖ 500"));
}

#[test]
fn detail_at_80x24() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::Open);
    let detail = fixtures::sample_detail();
    daemon(
        &mut app,
        DaemonMessage::Detail {
            id: detail.delivery.id.clone(),
            result: Ok(Box::new(detail)),
        },
    );
    let first = screen(&app);
    insta::assert_snapshot!("detail_80x24", first);
    assert!(first.contains("x-webhook-signature: v1=abab"));
    update(&mut app, Action::Move(Motion::Last));
    let scrolled = screen(&app);
    insta::assert_snapshot!("detail_80x24_scrolled", scrolled);
    assert!(scrolled.contains("\"score\": 2"));
    assert!(scrolled.contains("response {\"error\":\"boom\"}"));
}

/// Builds a console on the endpoints pane with a healthy endpoint and one that belterd paused.
fn app_with_endpoints(size: (u16, u16), theme: Theme) -> App {
    let mut app = app_with_log(size, theme);
    update(&mut app, Action::ShowEndpoints);
    daemon(
        &mut app,
        DaemonMessage::Endpoints(Ok(vec![
            fixtures::endpoint(
                0,
                "https://hooks.example.com/integrations/crm/receive",
                false,
                0,
            ),
            fixtures::endpoint(1, "http://127.0.0.1:9000/alerts", true, 12),
        ])),
    );
    app
}

#[test]
fn endpoints_at_80x24() {
    let mut app = app_with_endpoints(NARROW, color());
    let screen = screen(&app);
    insta::assert_snapshot!("endpoints_80x24", screen);
    assert!(row_containing(&screen, "127.0.0.1:9000/alerts").contains("‖ paused"));
    assert!(row_containing(&screen, "127.0.0.1:9000/alerts").contains("12 / 84"));
    assert!(row_containing(&screen, "format raw").contains("no filter"));
    assert!(row_containing(&screen, "format slack + Standard Webhooks")
        .contains("filter data.brand == \"northwind\" &&"));
    assert!(row_containing(
        &screen,
        "auto-paused by belterd: every attempt failed since"
    )
    .ends_with('…'));
    assert!(screen.contains("filter   none, every event of the types above"));
    assert!(
        screen.contains("0 failed attempts in a row, 0 in 24 h"),
        "{screen}"
    );
    update(&mut app, Action::Move(Motion::Down));
    let screen = self::screen(&app);
    assert!(
        screen.contains("filter   data.brand == \"northwind\" && data.level >= 0.8"),
        "{screen}"
    );
    assert!(
        screen.contains("format   slack, with the Standard Webhooks headers"),
        "{screen}"
    );
    assert!(
        screen.contains("paused   by belterd: every attempt failed since 2026-11-30T09:12:44.000Z"),
        "{screen}"
    );
}

#[test]
fn endpoint_panel_shows_resend_pause() {
    let mut app = app_with_log(WIDE, color());
    update(&mut app, Action::ShowEndpoints);
    let mut endpoint = fixtures::endpoint(0, "http://127.0.0.1:9000/closing", false, 2);
    endpoint.resends_paused_until = Some(fixtures::now().plus_millis(600_000));
    daemon(&mut app, DaemonMessage::Endpoints(Ok(vec![endpoint])));
    let screen = screen(&app);
    let line = row_containing(&screen, "no resend on reset until");
    assert!(
        line.contains("2 failed attempts in a row, 14 in 24 h"),
        "{line}"
    );
    assert!(
        line.contains(&fixtures::now().plus_millis(600_000).to_string()),
        "{line}"
    );
}

#[test]
fn endpoints_at_wide_size() {
    let app = app_with_endpoints(WIDE, color());
    let screen = screen(&app);
    insta::assert_snapshot!("endpoints_wide", screen);
    assert!(screen.contains("hooks.example.com/integrations/crm/receive"));
    assert!(screen
        .contains("auto-paused by belterd: every attempt failed since 2026-11-30T09:12:44.000Z"));
}

#[test]
fn auto_pause_reads_without_color() {
    let app = app_with_endpoints(NARROW, Theme { color: false });
    let buffer = draw(&app);
    for cell in buffer.content() {
        assert_eq!(cell.fg, Color::Reset, "cell {:?}", cell.symbol());
    }
    let screen = text(&buffer);
    assert!(screen.contains("‖ paused"), "{screen}");
    assert!(screen.contains("auto-paused by belterd"), "{screen}");
}

#[test]
fn derived_detail_names_rule_and_event() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::Open);
    let mut json = serde_json::to_value(fixtures::sample_detail()).expect("detail as JSON");
    json["event_type"] = serde_json::json!("score.threshold_breached");
    json["derived_from"] = serde_json::json!({
        "rule_id": fixtures::rules()[2].id,
        "event_id": format!("evt_{}", ulid::Ulid::from_parts(fixtures::NOW_MILLIS - 5_000, 9)),
    });
    let detail: belter_common::records::DeliveryDetail =
        serde_json::from_value(json).expect("valid detail");
    daemon(
        &mut app,
        DaemonMessage::Detail {
            id: detail.delivery.id.clone(),
            result: Ok(Box::new(detail)),
        },
    );
    let screen = screen(&app);
    insta::assert_snapshot!("detail_derived_80x24", screen);
    assert!(screen.contains("derived   from rule rule_<id>"), "{screen}");
    assert!(screen.contains("          on event evt_<id>"), "{screen}");
    app.width = WIDE.0;
    let wide = self::screen(&app);
    assert!(
        wide.contains("derived   from rule rule_<id> on event evt_<id>"),
        "{wide}"
    );
}

/// Builds a console on the rules pane with the rule fixtures loaded.
fn app_with_rules(size: (u16, u16), theme: Theme) -> App {
    let mut app = app_with_log(size, theme);
    let commands = update(&mut app, Action::ShowRules);
    assert_eq!(commands, vec![Command::FetchRules]);
    daemon(&mut app, DaemonMessage::Rules(Ok(fixtures::rules())));
    app
}

#[test]
fn rules_at_80x24() {
    let mut app = app_with_rules(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    let screen = screen(&app);
    insta::assert_snapshot!("rules_80x24", screen);
    let global = row_containing(&screen, "global");
    assert!(global.contains("overall"), "{global}");
    assert!(global.contains("60"), "{global}");
    let team = row_containing(&screen, "billing-emea");
    assert!(team.starts_with("team"), "{team}");
    assert!(team.contains("greeting"), "{team}");
    assert!(team.contains("80"), "{team}");
    assert!(row_containing(&screen, "agent_1187").contains("72.5"));
    assert!(screen.contains("a add"), "{screen}");
}

#[test]
fn rules_at_wide_size() {
    let app = app_with_rules(WIDE, color());
    let screen = screen(&app);
    insta::assert_snapshot!("rules_wide", screen);
    assert!(row_containing(&screen, "billing-emea").contains("rule_<id>"));
}

#[test]
fn empty_rules_say_how_to_add() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::ShowRules);
    assert!(screen(&app).contains("loading rules…"));
    daemon(&mut app, DaemonMessage::Rules(Ok(Vec::new())));
    let screen = screen(&app);
    assert!(
        screen.contains("no threshold rules yet: press a to add one"),
        "{screen}"
    );
}

#[test]
fn rule_line_shows_input_and_error() {
    let mut app = app_with_rules(NARROW, color());
    update(&mut app, Action::OpenRuleEditor);
    for character in "scope:team criterion:greeting min:80".chars() {
        update(
            &mut app,
            Action::EditRule(InputRequest::InsertChar(character)),
        );
    }
    update(&mut app, Action::SubmitRule);
    let screen = screen(&app);
    insta::assert_snapshot!("rule_error_80x24", screen);
    assert!(screen.contains("new rule> scope:team criterion:greeting min:80"));
    assert!(screen.contains("scope:global|brand|team|agent id:ID"));
    assert!(screen.contains("missing id for scope:team: add the team id"));
}

#[test]
fn rule_rejection_shows_daemon_message() {
    let mut app = app_with_rules(NARROW, color());
    update(&mut app, Action::OpenRuleEditor);
    for character in "scope:team id:x min:80".chars() {
        update(
            &mut app,
            Action::EditRule(InputRequest::InsertChar(character)),
        );
    }
    let commands = update(&mut app, Action::SubmitRule);
    assert_eq!(commands.len(), 1);
    assert!(screen(&app).contains("adding…"));
    daemon(
        &mut app,
        DaemonMessage::RuleCreated(Err(crate::action::CallError {
            message:
                "belterd returned 422 Unprocessable Entity: scope_id must be 1 to 256 bytes long"
                    .to_owned(),
            api_message: Some("scope_id must be 1 to 256 bytes long".to_owned()),
        })),
    );
    let screen = screen(&app);
    assert!(
        screen.contains("belterd rejected the rule: scope_id must be 1 to 256 bytes long"),
        "{screen}"
    );
    assert!(
        screen.contains("new rule> scope:team id:x min:80"),
        "{screen}"
    );
}

#[test]
fn rule_deletion_asks_first() {
    let mut app = app_with_rules(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::DeleteRule);
    let screen = screen(&app);
    insta::assert_snapshot!("rule_delete_80x24", screen);
    assert!(screen.contains("Delete rule rule_<id>?"), "{screen}");
    assert!(screen.contains("scope:team id:billing-emea criterion:greeting min:80"));
    assert!(screen.contains("It checks greeting below 80 for team billing-emea."));
    assert!(screen.contains("y delete"), "{screen}");
}

#[test]
fn help_fits_80x24() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::ToggleHelp);
    let screen = screen(&app);
    insta::assert_snapshot!("help_80x24", screen);
    for (_, keys) in crate::keymap::KEY_HELP {
        for (_, meaning) in *keys {
            assert!(screen.contains(meaning), "help lacks {meaning:?}");
        }
    }
}

#[test]
fn confirm_lists_targets() {
    let mut app = app_with_log(NARROW, color());
    let request = ReplayRequest {
        ids: vec![delivery(1).id, delivery(2).id],
        dry_run: true,
        ..ReplayRequest::default()
    };
    daemon(
        &mut app,
        DaemonMessage::ReplayCounted {
            request,
            result: Ok(ReplayResponse {
                queued: 1_204,
                skipped: 3,
                skipped_in_flight: 2,
                skipped_no_endpoint: 1,
                paused: 0,
                targets: vec![
                    TargetCount {
                        url: "https://hooks.example.com/integrations/crm/receive".to_owned(),
                        count: 1_200,
                    },
                    TargetCount {
                        url: "http://127.0.0.1:9000/alerts".to_owned(),
                        count: 4,
                    },
                ],
                dry_run: true,
            }),
        },
    );
    let screen = screen(&app);
    insta::assert_snapshot!("confirm_80x24", screen);
    assert!(screen.contains("Replay 1,204 deliveries?"));
    assert!(row_containing(&screen, "1,200").contains("hooks.example.com"));
}

#[test]
fn filter_line_shows_input_and_error() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::OpenFilter);
    for character in "status:broken".chars() {
        update(
            &mut app,
            Action::EditFilter(InputRequest::InsertChar(character)),
        );
    }
    update(&mut app, Action::ApplyFilter);
    let screen = screen(&app);
    insta::assert_snapshot!("filter_error_80x24", screen);
    assert!(screen.contains("filter> status:broken"));
    assert!(screen.contains("unknown delivery status \"broken\""));
}

#[test]
fn lost_connection_is_shown() {
    let mut app = app_with_log(NARROW, color());
    daemon(
        &mut app,
        DaemonMessage::StreamLost(
            "cannot connect to belterd at /run/belter/control.sock: Connection refused".to_owned(),
        ),
    );
    update(&mut app, Action::Tick(fixtures::now().plus_millis(12_000)));
    let screen = screen(&app);
    let header = screen.lines().next().unwrap_or_default().to_owned();
    assert!(
        header.starts_with("belter │ ✖ belterd unreachable for 12s, reconnecting"),
        "{header}"
    );
    let footer = screen.lines().nth(22).unwrap_or_default().to_owned();
    assert!(
        footer.starts_with("connection lost: cannot connect to belterd at /run/belter"),
        "{footer}"
    );
}

#[test]
fn empty_filtered_log_says_so() {
    let mut app = app_with_log(NARROW, color());
    let commands = update(&mut app, Action::ToggleFailedOnly);
    assert!(screen(&app).contains("loading deliveries…"));
    let Some(Command::FetchPage { request, .. }) = commands.into_iter().next() else {
        panic!("expected a page fetch");
    };
    daemon(
        &mut app,
        DaemonMessage::Page {
            request,
            result: Ok(DeliveryPage {
                deliveries: Vec::new(),
                next_cursor: None,
            }),
        },
    );
    assert!(screen(&app).contains("no deliveries match status:failed"));
}

#[test]
fn any_size_renders_without_panic() {
    let mut app = app_with_log(NARROW, color());
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::Open);
    let detail = fixtures::sample_detail();
    daemon(
        &mut app,
        DaemonMessage::Detail {
            id: detail.delivery.id.clone(),
            result: Ok(Box::new(detail)),
        },
    );
    for view in 0..9 {
        match view {
            1 => {
                update(&mut app, Action::Back);
            }
            2 => {
                update(&mut app, Action::ToggleHelp);
            }
            3 => {
                update(&mut app, Action::ToggleHelp);
                update(&mut app, Action::OpenFilter);
            }
            4 => {
                update(&mut app, Action::CancelFilter);
                update(&mut app, Action::ShowEndpoints);
                daemon(
                    &mut app,
                    DaemonMessage::Endpoints(Ok(vec![
                        fixtures::endpoint(0, "https://hooks.example.com/crm", false, 0),
                        fixtures::endpoint(1, "http://127.0.0.1:9000/alerts", true, 12),
                    ])),
                );
            }
            5 => {
                update(&mut app, Action::ShowRules);
                daemon(&mut app, DaemonMessage::Rules(Ok(fixtures::rules())));
            }
            6 => {
                update(&mut app, Action::OpenRuleEditor);
                for character in "scope:team id:billing-emea min:80".chars() {
                    update(
                        &mut app,
                        Action::EditRule(InputRequest::InsertChar(character)),
                    );
                }
                update(&mut app, Action::SubmitRule);
            }
            7 => {
                update(&mut app, Action::CancelRule);
                update(&mut app, Action::DeleteRule);
            }
            8 => {
                update(&mut app, Action::Back);
                daemon(&mut app, DaemonMessage::Rules(Ok(Vec::new())));
            }
            _ => {}
        }
        for width in [1, 10, 40, 79, 80, 81, 200] {
            for height in [1, 3, 5, 12, 24, 60] {
                update(&mut app, Action::Resize { width, height });
                update(&mut app, Action::Move(Motion::Down));
                draw(&app);
            }
        }
    }
    assert!(matches!(app.connection, Connection::Live(_)));
}
