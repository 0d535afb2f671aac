use belter_common::api::{DeliveryPage, ReplayResponse, TargetCount};
use belter_common::records::{DeliveryStatus, EndpointState, StreamKind};
use belter_common::EventType;
use tui_input::InputRequest;

use super::*;
use crate::action::{CallError, DaemonMessage};
use crate::app::Connection;
use crate::fixtures::{self, delivery, failed_delivery};
use crate::theme::Theme;

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

/// Starts the app and replies to its first page fetch with deliveries 1..=count, newest first.
fn started(count: u64) -> App {
    let mut app = app();
    let commands = update(&mut app, Action::Start);
    let Some(Command::FetchPage { request, .. }) = commands.into_iter().next() else {
        panic!("start did not fetch a page");
    };
    let page = DeliveryPage {
        deliveries: (1..=count).map(delivery).collect(),
        next_cursor: None,
    };
    daemon(
        &mut app,
        DaemonMessage::Page {
            request,
            result: Ok(page),
        },
    );
    app
}

fn counts() -> ReplayResponse {
    ReplayResponse {
        queued: 2,
        skipped: 1,
        skipped_in_flight: 1,
        skipped_no_endpoint: 0,
        paused: 0,
        targets: vec![TargetCount {
            url: "https://hooks.example.com/integrations/crm/receive".to_owned(),
            count: 2,
        }],
        dry_run: true,
    }
}

fn type_text(app: &mut App, text: &str) {
    for character in text.chars() {
        update(app, Action::EditFilter(InputRequest::InsertChar(character)));
    }
}

#[test]
fn start_fetches_first_page_and_totals() {
    let mut app = app();
    let commands = update(&mut app, Action::Start);
    assert_eq!(commands.len(), 2);
    let Command::FetchPage { query, .. } = &commands[0] else {
        panic!("expected a page fetch, got {commands:?}");
    };
    assert_eq!(query.cursor, None);
    assert_eq!(query.limit, Some(crate::app::delivery_log::PAGE_SIZE));
    assert_eq!(commands[1], Command::FetchStats);
}

#[test]
fn page_reply_fills_log() {
    let app = started(30);
    assert_eq!(app.log.rows().len(), 30);
    assert_eq!(app.log.selected_delivery(), Some(&delivery(1)));
}

#[test]
fn enter_opens_detail_and_esc_returns() {
    let mut app = started(5);
    update(&mut app, Action::Move(Motion::Down));
    let commands = update(&mut app, Action::Open);
    assert_eq!(app.view, View::Detail);
    assert_eq!(commands, vec![Command::FetchDetail(delivery(2).id)]);
    update(&mut app, Action::Back);
    assert_eq!(app.view, View::Log);
    assert!(app.detail.is_none());
}

#[test]
fn filter_applies_on_daemon_side() {
    let mut app = started(5);
    update(&mut app, Action::OpenFilter);
    type_text(&mut app, "event:csat.received target:example status:failed");
    let commands = update(&mut app, Action::ApplyFilter);
    assert!(app.filter_editor.is_none());
    let [Command::FetchPage { query, .. }] = commands.as_slice() else {
        panic!("expected one page fetch, got {commands:?}");
    };
    assert_eq!(query.event, Some(EventType::CsatReceived));
    assert_eq!(query.target.as_deref(), Some("example"));
    assert_eq!(query.status, Some(DeliveryStatus::Failed));
    assert!(app.log.rows().is_empty());
}

#[test]
fn invalid_filter_keeps_editor_open() {
    let mut app = started(5);
    update(&mut app, Action::OpenFilter);
    type_text(&mut app, "colour:red");
    let commands = update(&mut app, Action::ApplyFilter);
    assert!(commands.is_empty());
    let error = app
        .filter_editor
        .as_ref()
        .and_then(|editor| editor.error.clone());
    assert!(error.is_some_and(|text| text.contains("\"colour\"")));
    assert!(app.filter.is_empty());
}

#[test]
fn filter_editor_starts_with_current_filter() {
    let mut app = started(5);
    update(&mut app, Action::ToggleFailedOnly);
    update(&mut app, Action::OpenFilter);
    let value = app
        .filter_editor
        .as_ref()
        .map(|editor| editor.input.value().to_owned());
    assert_eq!(value.as_deref(), Some("status:failed "));
    update(&mut app, Action::CancelFilter);
    assert!(app.filter_editor.is_none());
    assert_eq!(app.filter.status, Some(DeliveryStatus::Failed));
}

#[test]
fn failed_only_toggles_status() {
    let mut app = started(5);
    let commands = update(&mut app, Action::ToggleFailedOnly);
    let [Command::FetchPage { query, .. }] = commands.as_slice() else {
        panic!("expected one page fetch");
    };
    assert_eq!(query.status, Some(DeliveryStatus::Failed));
    let commands = update(&mut app, Action::ToggleFailedOnly);
    let [Command::FetchPage { query, .. }] = commands.as_slice() else {
        panic!("expected one page fetch");
    };
    assert_eq!(query.status, None);
}

#[test]
fn single_replay_needs_no_confirmation() {
    let mut app = started(5);
    let commands = update(&mut app, Action::Replay);
    assert_eq!(commands, vec![Command::Replay(delivery(1).id)]);
    assert!(app.overlay.is_none());
}

#[test]
fn single_replay_notice_follows_response() {
    let mut app = started(5);
    let id = delivery(1).id;
    // Queued, skipped in flight, skipped without an endpoint, paused, and the notice's ending.
    let cases = [
        (1, 0, 0, 0, "queued"),
        (
            1,
            0,
            0,
            1,
            "queued; it is sent once its endpoint is resumed",
        ),
        (0, 1, 0, 0, "skipped: an attempt is in flight now"),
        (0, 0, 1, 0, "skipped: its endpoint was deleted"),
        (0, 0, 0, 0, "skipped: it is past retention"),
    ];
    for (queued, skipped_in_flight, skipped_no_endpoint, paused, ending) in cases {
        let response = ReplayResponse {
            queued,
            skipped: 1 - queued,
            skipped_in_flight,
            skipped_no_endpoint,
            paused,
            targets: Vec::new(),
            dry_run: false,
        };
        daemon(
            &mut app,
            DaemonMessage::Replayed {
                id: id.clone(),
                result: Ok(response),
            },
        );
        let notice = app.notice.as_ref().map(|notice| notice.text.clone());
        assert_eq!(notice, Some(format!("replay of {id} {ending}")));
    }
}

#[test]
fn marked_replay_confirms_counts_first() {
    let mut app = started(5);
    update(&mut app, Action::ToggleMark);
    update(&mut app, Action::ToggleMark);
    assert_eq!(app.marks.len(), 2);
    let commands = update(&mut app, Action::Replay);
    let [Command::CountReplay(request)] = commands.as_slice() else {
        panic!("expected a dry run, got {commands:?}");
    };
    assert!(request.dry_run);
    assert_eq!(request.ids, vec![delivery(2).id, delivery(1).id]);

    daemon(
        &mut app,
        DaemonMessage::ReplayCounted {
            request: request.clone(),
            result: Ok(counts()),
        },
    );
    let Some(Overlay::Confirm(confirmation)) = &app.overlay else {
        panic!("expected the confirmation");
    };
    assert_eq!(confirmation.scope, "2 marked deliveries");
    assert!(!confirmation.request.dry_run);

    let commands = update(&mut app, Action::Confirm);
    let [Command::ReplayMany(sent)] = commands.as_slice() else {
        panic!("expected the replay, got {commands:?}");
    };
    assert!(!sent.dry_run);
    assert!(app.overlay.is_none());
    daemon(
        &mut app,
        DaemonMessage::ReplayedMany {
            request: sent.clone(),
            result: Ok(ReplayResponse {
                dry_run: false,
                ..counts()
            }),
        },
    );
    assert!(app.marks.is_empty());
    let notice = app.notice.as_ref().map(|notice| notice.text.as_str());
    assert_eq!(
        notice,
        Some("queued 2 deliveries for replay, 1 skipped (1 in flight now)")
    );

    daemon(
        &mut app,
        DaemonMessage::ReplayedMany {
            request: sent.clone(),
            result: Ok(ReplayResponse {
                dry_run: false,
                paused: 2,
                ..counts()
            }),
        },
    );
    let notice = app.notice.as_ref().map(|notice| notice.text.as_str());
    assert_eq!(
        notice,
        Some(
            "queued 2 deliveries for replay, 1 skipped (1 in flight now), \
             2 wait for their endpoint's resume"
        )
    );
}

#[test]
fn confirmation_can_be_cancelled() {
    let mut app = started(5);
    update(&mut app, Action::ToggleFailedOnly);
    let commands = update(&mut app, Action::ReplayFiltered);
    let [Command::CountReplay(request)] = commands.as_slice() else {
        panic!("expected a dry run");
    };
    assert_eq!(
        request.filter.as_ref().and_then(|filter| filter.status),
        Some(DeliveryStatus::Failed)
    );
    daemon(
        &mut app,
        DaemonMessage::ReplayCounted {
            request: request.clone(),
            result: Ok(counts()),
        },
    );
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    let commands = update(&mut app, Action::Back);
    assert!(commands.is_empty());
    assert!(app.overlay.is_none());
}

#[test]
fn replay_all_keeps_listed_time_bounds() {
    let mut app = started(5);
    update(&mut app, Action::OpenFilter);
    type_text(&mut app, "status:failed since:2m");
    let commands = update(&mut app, Action::ApplyFilter);
    let [Command::FetchPage { query, .. }] = commands.as_slice() else {
        panic!("expected one page fetch, got {commands:?}");
    };
    let listed_since = query.since.expect("since resolved for the page");
    assert_eq!(listed_since, fixtures::now().minus_millis(120_000));

    // A minute later the same rows are on screen, and a replay of all of them must include the
    // ones that are now older than two minutes.
    update(&mut app, Action::Tick(fixtures::now().plus_millis(60_000)));
    let commands = update(&mut app, Action::ReplayFiltered);
    let [Command::CountReplay(request)] = commands.as_slice() else {
        panic!("expected a dry run, got {commands:?}");
    };
    let since = request.filter.as_ref().and_then(|filter| filter.since);
    assert_eq!(since, Some(listed_since));
}

#[test]
fn nothing_to_replay_skips_confirmation() {
    let mut app = started(5);
    let commands = update(&mut app, Action::ReplayFiltered);
    let [Command::CountReplay(request)] = commands.as_slice() else {
        panic!("expected a dry run");
    };
    let empty = ReplayResponse {
        queued: 0,
        skipped: 3,
        skipped_in_flight: 0,
        skipped_no_endpoint: 3,
        paused: 0,
        targets: Vec::new(),
        dry_run: true,
    };
    daemon(
        &mut app,
        DaemonMessage::ReplayCounted {
            request: request.clone(),
            result: Ok(empty),
        },
    );
    assert!(app.overlay.is_none());
    assert!(app.notice.as_ref().is_some_and(|notice| notice.is_error));
}

#[test]
fn replay_in_detail_replays_open_delivery() {
    let mut app = started(5);
    update(&mut app, Action::Move(Motion::Down));
    update(&mut app, Action::ToggleMark);
    update(&mut app, Action::Move(Motion::First));
    update(&mut app, Action::Open);
    let commands = update(&mut app, Action::Replay);
    assert_eq!(commands, vec![Command::Replay(delivery(1).id)]);
}

#[test]
fn stream_adds_new_delivery_live() {
    let mut app = started(5);
    let newer = delivery(0);
    daemon(
        &mut app,
        DaemonMessage::Stream(fixtures::stream_event(
            StreamKind::DeliveryCreated,
            Some(newer.clone()),
            None,
        )),
    );
    assert_eq!(app.log.rows()[0], newer);
}

#[test]
fn stream_failure_joins_failed_view() {
    let mut app = started(5);
    let commands = update(&mut app, Action::ToggleFailedOnly);
    let Some(Command::FetchPage { request, .. }) = commands.into_iter().next() else {
        panic!("expected a page fetch");
    };
    daemon(
        &mut app,
        DaemonMessage::Page {
            request,
            result: Ok(DeliveryPage {
                deliveries: vec![failed_delivery(4)],
                next_cursor: None,
            }),
        },
    );
    daemon(
        &mut app,
        DaemonMessage::Stream(fixtures::stream_event(
            StreamKind::AttemptFinished,
            Some(delivery(2)),
            None,
        )),
    );
    assert_eq!(app.log.rows().len(), 1);
    daemon(
        &mut app,
        DaemonMessage::Stream(fixtures::stream_event(
            StreamKind::AttemptFinished,
            Some(failed_delivery(2)),
            None,
        )),
    );
    let ids: Vec<_> = app.log.rows().iter().map(|row| row.id.clone()).collect();
    assert_eq!(ids, vec![delivery(2).id, delivery(4).id]);
}

#[test]
fn attempt_result_updates_totals() {
    let mut app = started(5);
    daemon(&mut app, DaemonMessage::Stats(Ok(fixtures::stats())));
    let attempt = fixtures::attempt(500);
    daemon(
        &mut app,
        DaemonMessage::Stream(fixtures::stream_event(
            StreamKind::AttemptFinished,
            Some(failed_delivery(1)),
            Some(attempt),
        )),
    );
    assert_eq!(app.stats.as_ref().map(|stats| stats.failed), Some(15));
    assert_eq!(app.log.rows()[0].status, DeliveryStatus::Failed);
}

#[test]
fn reconnect_refetches_window() {
    let mut app = started(5);
    daemon(&mut app, DaemonMessage::StreamConnected(fixtures::health()));
    assert!(matches!(app.connection, Connection::Live(_)));
    daemon(
        &mut app,
        DaemonMessage::StreamLost("connection reset".to_owned()),
    );
    assert!(matches!(app.connection, Connection::Lost { .. }));
    let commands = daemon(&mut app, DaemonMessage::StreamConnected(fixtures::health()));
    assert!(matches!(commands[0], Command::FetchPage { .. }));
    assert!(commands.contains(&Command::FetchStats));
}

#[test]
fn tick_refreshes_totals_and_expires_notice() {
    let mut app = started(5);
    app.inform("hello");
    let later = fixtures::now().plus_millis(STATS_REFRESH_MILLIS);
    let commands = update(&mut app, Action::Tick(later));
    assert_eq!(commands, vec![Command::FetchStats]);
    assert!(app.notice.is_none());
    let commands = update(&mut app, Action::Tick(later.plus_millis(500)));
    assert!(commands.is_empty());
}

#[test]
fn failed_first_page_is_retried() {
    let mut app = app();
    let commands = update(&mut app, Action::Start);
    let Some(Command::FetchPage { request, .. }) = commands.into_iter().next() else {
        panic!("expected a page fetch");
    };
    daemon(
        &mut app,
        DaemonMessage::Page {
            request,
            result: Err(CallError {
                message: "belterd returned 500: boom".to_owned(),
                api_message: None,
            }),
        },
    );
    let notice = app.notice.as_ref().map(|notice| notice.text.clone());
    assert_eq!(
        notice.as_deref(),
        Some("listing deliveries failed: belterd returned 500: boom")
    );
    let soon = update(&mut app, Action::Tick(fixtures::now().plus_millis(500)));
    assert!(!soon
        .iter()
        .any(|command| matches!(command, Command::FetchPage { .. })));
    let later = update(&mut app, Action::Tick(fixtures::now().plus_millis(2_000)));
    assert!(later
        .iter()
        .any(|command| matches!(command, Command::FetchPage { .. })));
}

#[test]
fn endpoint_pause_toggles() {
    let mut app = started(5);
    let commands = update(&mut app, Action::ShowEndpoints);
    assert_eq!(commands, vec![Command::FetchEndpoints]);
    let endpoint = fixtures::endpoint(0, "https://hooks.example.com/crm", false, 0);
    daemon(
        &mut app,
        DaemonMessage::Endpoints(Ok(vec![endpoint.clone()])),
    );
    let commands = update(&mut app, Action::TogglePause);
    assert_eq!(
        commands,
        vec![Command::SetEndpointPaused {
            id: endpoint.id.clone(),
            paused: true
        }]
    );
    let mut paused = endpoint;
    paused.state = EndpointState::Paused;
    daemon(&mut app, DaemonMessage::EndpointChanged(Ok(paused)));
    assert_eq!(app.endpoints.endpoints[0].state, EndpointState::Paused);
    let commands = update(&mut app, Action::TogglePause);
    assert!(matches!(
        commands.as_slice(),
        [Command::SetEndpointPaused { paused: false, .. }]
    ));
}

#[test]
fn open_endpoint_filters_log() {
    let mut app = started(5);
    update(&mut app, Action::ShowEndpoints);
    let endpoint = fixtures::endpoint(1, "http://127.0.0.1:9000/alerts", false, 2);
    daemon(
        &mut app,
        DaemonMessage::Endpoints(Ok(vec![endpoint.clone()])),
    );
    let commands = update(&mut app, Action::Open);
    assert_eq!(app.view, View::Log);
    let [Command::FetchPage { query, .. }] = commands.as_slice() else {
        panic!("expected a page fetch");
    };
    assert_eq!(query.endpoint, Some(endpoint.id));
}

#[test]
fn resize_changes_page_size() {
    let mut app = started(100);
    update(
        &mut app,
        Action::Resize {
            width: 120,
            height: 40,
        },
    );
    update(&mut app, Action::Move(Motion::PageDown));
    assert_eq!(app.log.selected(), layout::list_rows(40) - 1);
}

#[test]
fn quit_sets_flag() {
    let mut app = app();
    update(&mut app, Action::Quit);
    assert!(app.should_quit);
}

#[test]
fn one_mark_replays_without_confirmation() {
    let mut app = started(3);
    update(&mut app, Action::ToggleMark);
    let commands = update(&mut app, Action::Replay);
    assert_eq!(commands, vec![Command::Replay(delivery(1).id)]);
    assert!(app.overlay.is_none());
}
