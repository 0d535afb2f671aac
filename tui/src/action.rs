//! What can happen to the console: a key's meaning, a tick, a resize, or a reply from the daemon.
//! `update` turns each into state changes and commands.

use belter_common::api::{DeliveryPage, ReplayRequest, ReplayResponse};
use belter_common::records::{DeliveryDetail, Endpoint, Health, Stats, StreamEvent};
use belter_common::rules::ThresholdRule;
use belter_common::{DeliveryId, RuleId, Timestamp};
use tui_input::InputRequest;

use crate::app::delivery_log::PageRequest;

/// A cursor movement, applied to whichever list or document the current view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// One line up.
    Up,
    /// One line down.
    Down,
    /// One screen up.
    PageUp,
    /// One screen down.
    PageDown,
    /// Half a screen up.
    HalfPageUp,
    /// Half a screen down.
    HalfPageDown,
    /// The first line: the newest delivery in the log.
    First,
    /// The last line: the oldest delivery in the log.
    Last,
}

/// One input to `update`.
#[derive(Debug)]
pub enum Action {
    /// The console started: load the first page and the totals.
    Start,
    /// Time passed; carries the current time, so the clock is injected.
    Tick(Timestamp),
    /// The terminal was resized.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Leave the console.
    Quit,
    /// Move the selection or scroll.
    Move(Motion),
    /// Open the selected delivery, or the selected endpoint's deliveries.
    Open,
    /// Close the current view, overlay or the marks.
    Back,
    /// Show or hide the key overlay.
    ToggleHelp,
    /// Start editing the filter.
    OpenFilter,
    /// Edit the filter text.
    EditFilter(InputRequest),
    /// Apply the edited filter.
    ApplyFilter,
    /// Stop editing and keep the old filter.
    CancelFilter,
    /// Switch between all deliveries and failed ones only.
    ToggleFailedOnly,
    /// Mark or unmark the selected delivery for replay.
    ToggleMark,
    /// Unmark every delivery.
    ClearMarks,
    /// Replay the marked deliveries, or else the selected one.
    Replay,
    /// Replay every delivery the filter matches.
    ReplayFiltered,
    /// Accept the confirmation on screen.
    Confirm,
    /// Show the endpoints.
    ShowEndpoints,
    /// Pause or resume the selected endpoint.
    TogglePause,
    /// Jump to the next section of the delivery detail.
    NextSection,
    /// Show the threshold rules.
    ShowRules,
    /// Open the line for a new threshold rule.
    OpenRuleEditor,
    /// Edit the rule line.
    EditRule(InputRequest),
    /// Send the rule line to the daemon.
    SubmitRule,
    /// Close the rule line without sending it.
    CancelRule,
    /// Ask to delete the selected threshold rule.
    DeleteRule,
    /// A reply or update from the daemon.
    Daemon(Box<DaemonMessage>),
}

/// A failed daemon call, reduced to the text the console shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The error text.
    pub message: String,
    /// The daemon's own `error` text when it rejected the request with a 4xx status, such as a
    /// 422 for an invalid rule.
    pub api_message: Option<String>,
}

impl From<belter_common::client::ClientError> for CallError {
    fn from(error: belter_common::client::ClientError) -> Self {
        let api_message = match &error {
            belter_common::client::ClientError::Api { status, message }
                if status.is_client_error() =>
            {
                Some(message.clone())
            }
            _ => None,
        };
        CallError {
            message: error.to_string(),
            api_message,
        }
    }
}

/// A reply or update from a background task that talks to the daemon.
#[derive(Debug)]
pub enum DaemonMessage {
    /// A page of the delivery log.
    Page {
        /// The request the page answers.
        request: PageRequest,
        /// The page.
        result: Result<DeliveryPage, CallError>,
    },
    /// The 24 h totals.
    Stats(Result<Stats, CallError>),
    /// One delivery in full.
    Detail {
        /// The delivery asked for.
        id: DeliveryId,
        /// The delivery.
        result: Result<Box<DeliveryDetail>, CallError>,
    },
    /// The endpoint list.
    Endpoints(Result<Vec<Endpoint>, CallError>),
    /// An endpoint after a pause or resume.
    EndpointChanged(Result<Endpoint, CallError>),
    /// A single replay was queued.
    Replayed {
        /// The delivery replayed.
        id: DeliveryId,
        /// The daemon's response.
        result: Result<ReplayResponse, CallError>,
    },
    /// A dry run counted what a replay would send.
    ReplayCounted {
        /// The request counted, with `dry_run` set.
        request: ReplayRequest,
        /// Counts per target.
        result: Result<ReplayResponse, CallError>,
    },
    /// A replay of many deliveries was queued.
    ReplayedMany {
        /// The request sent.
        request: ReplayRequest,
        /// The daemon's response.
        result: Result<ReplayResponse, CallError>,
    },
    /// The live stream is open.
    StreamConnected(Health),
    /// The threshold rules.
    Rules(Result<Vec<ThresholdRule>, CallError>),
    /// A threshold rule was created, or the daemon rejected it.
    RuleCreated(Result<ThresholdRule, CallError>),
    /// A threshold rule was deleted.
    RuleDeleted {
        /// The rule asked for.
        id: RuleId,
        /// The deleted rule.
        result: Result<ThresholdRule, CallError>,
    },
    /// A line of the live stream.
    Stream(StreamEvent),
    /// The live stream closed or could not be opened; it is retried by itself.
    StreamLost(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use belter_common::client::ClientError;
    use hyper::StatusCode;

    fn api_error(status: StatusCode) -> CallError {
        CallError::from(ClientError::Api {
            status,
            message: "scope_id is required for scope team: give the team id".to_owned(),
        })
    }

    #[test]
    fn call_error_keeps_daemon_message_of_4xx() {
        let error = api_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            error.api_message.as_deref(),
            Some("scope_id is required for scope team: give the team id")
        );
        assert!(
            error.message.starts_with("belterd returned 422"),
            "{}",
            error.message
        );
    }

    #[test]
    fn call_error_of_5xx_has_no_daemon_message() {
        assert_eq!(
            api_error(StatusCode::INTERNAL_SERVER_ERROR).api_message,
            None
        );
    }
}
