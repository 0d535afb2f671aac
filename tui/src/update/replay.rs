//! Replays from the console. One delivery is replayed at once. Several, by marks or by filter,
//! are first counted with a dry run, and replayed only after the user confirms the counts.

use belter_common::api::{ReplayRequest, ReplayResponse};
use belter_common::DeliveryId;

use crate::app::{App, Overlay, ReplayConfirm, View};
use crate::command::Command;

/// Replays the open delivery in the detail view, else the marked deliveries, else the selected one.
pub(super) fn replay_selection(app: &mut App, commands: &mut Vec<Command>) {
    if app.view == View::Detail {
        if let Some(view) = &app.detail {
            commands.push(Command::Replay(view.id.clone()));
            app.inform(format!("replaying {}", view.id));
        }
        return;
    }
    if app.marks.len() > 1 {
        let request = ReplayRequest {
            ids: app.marks.iter().cloned().collect(),
            dry_run: true,
            ..ReplayRequest::default()
        };
        count(app, request, commands);
        return;
    }
    let id = match app.marks.first() {
        Some(id) => id.clone(),
        None => match app.log.selected_delivery() {
            Some(delivery) => delivery.id.clone(),
            None => return,
        },
    };
    app.inform(format!("replaying {id}"));
    commands.push(Command::Replay(id));
}

/// Counts every delivery the current filter matches, to confirm a replay of all of them.
/// Relative time bounds resolve as they did for the rows on screen, so a row that aged out of
/// `since:2m` while shown is still replayed.
pub(super) fn count_filtered(app: &mut App, commands: &mut Vec<Command>) {
    let bounds_at = app.log.bounds_time(app.now);
    let request = ReplayRequest {
        filter: Some(app.filter.to_filter(bounds_at)),
        dry_run: true,
        ..ReplayRequest::default()
    };
    count(app, request, commands);
}

fn count(app: &mut App, request: ReplayRequest, commands: &mut Vec<Command>) {
    if app.counting_replay {
        return;
    }
    app.counting_replay = true;
    app.inform("counting the deliveries to replay…");
    commands.push(Command::CountReplay(request));
}

/// Shows the dry run's counts and waits for the user's yes.
pub(super) fn counted(app: &mut App, request: ReplayRequest, counted: ReplayResponse) {
    app.counting_replay = false;
    if counted.queued == 0 {
        let reasons = counted
            .skip_reasons()
            .map(|reasons| format!(" ({reasons})"))
            .unwrap_or_default();
        app.warn(format!(
            "nothing to replay: {} skipped{reasons}",
            counted.skipped
        ));
        return;
    }
    let scope = if !request.ids.is_empty() {
        format!("{} marked deliveries", request.ids.len())
    } else if app.filter.is_empty() {
        "every delivery in the log".to_owned()
    } else {
        format!("every delivery matching {}", app.filter)
    };
    app.notice = None;
    app.overlay = Some(Overlay::Confirm(ReplayConfirm {
        request: ReplayRequest {
            dry_run: false,
            ..request
        },
        counted,
        scope,
    }));
}

/// Sends the confirmed replay.
pub(super) fn confirm(app: &mut App, commands: &mut Vec<Command>) {
    let Some(Overlay::Confirm(confirmation)) = app.overlay.take() else {
        return;
    };
    app.inform(format!(
        "replaying {} deliveries…",
        crate::format::count(confirmation.counted.queued)
    ));
    commands.push(Command::ReplayMany(confirmation.request));
}

/// Reports what the daemon did with a replay of one delivery: queued, queued for a paused
/// endpoint, or skipped.
pub(super) fn replayed_one(app: &mut App, id: &DeliveryId, response: &ReplayResponse) {
    app.marks.remove(id);
    let text = if response.queued == 0 && response.skipped_in_flight > 0 {
        format!("replay of {id} skipped: an attempt is in flight now")
    } else if response.queued == 0 && response.skipped_no_endpoint > 0 {
        format!("replay of {id} skipped: its endpoint was deleted")
    } else if response.queued == 0 {
        format!("replay of {id} skipped: it is past retention")
    } else if response.paused > 0 {
        format!("replay of {id} queued; it is sent once its endpoint is resumed")
    } else {
        format!("replay of {id} queued")
    };
    app.inform(text);
}

/// Reports a replay the daemon queued.
pub(super) fn replayed_many(app: &mut App, request: &ReplayRequest, response: &ReplayResponse) {
    if !request.ids.is_empty() {
        for id in &request.ids {
            app.marks.remove(id);
        }
    }
    let mut text = format!(
        "queued {} deliveries for replay",
        crate::format::count(response.queued)
    );
    if let Some(reasons) = response.skip_reasons() {
        text.push_str(&format!(
            ", {} skipped ({reasons})",
            crate::format::count(response.skipped)
        ));
    }
    if response.paused > 0 {
        text.push_str(&format!(
            ", {} wait for their endpoint's resume",
            crate::format::count(response.paused)
        ));
    }
    app.inform(text);
}
