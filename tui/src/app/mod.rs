//! The console's whole state as plain data: what is on screen, what is loaded, and what is under
//! way. Only `update` changes it, and `keymap` and `render` only read it.

pub mod delivery_log;
pub mod detail_document;

use std::collections::BTreeSet;
use std::path::PathBuf;

use belter_common::api::{ReplayRequest, ReplayResponse};
use belter_common::records::{DeliveryDetail, Endpoint, Health, Stats};
use belter_common::rules::ThresholdRule;
use belter_common::{DeliveryId, Timestamp};
use tui_input::Input;

use crate::filter::FilterSpec;
use crate::theme::Theme;
use delivery_log::DeliveryLog;

/// The main pane on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The delivery log.
    Log,
    /// One delivery in full.
    Detail,
    /// The endpoint list.
    Endpoints,
    /// The threshold rules.
    Rules,
}

/// The state of the link to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The live stream has not opened yet.
    Connecting,
    /// The live stream is open.
    Live(Health),
    /// The live stream closed; a background task reconnects.
    Lost {
        /// Why it closed.
        error: String,
        /// When it closed.
        since: Timestamp,
    },
}

/// A one-line message in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub is_error: bool,
    /// When it was shown.
    pub at: Timestamp,
}

/// The filter line while it is being edited.
#[derive(Debug, Clone, Default)]
pub struct FilterEditor {
    /// The text and cursor.
    pub input: Input,
    /// Why the last attempt to apply it failed.
    pub error: Option<String>,
}

/// The detail view of one delivery.
#[derive(Debug, Clone)]
pub struct DetailView {
    /// The delivery shown.
    pub id: DeliveryId,
    /// The delivery, once loaded.
    pub detail: Option<Box<DeliveryDetail>>,
    /// The first document line on screen.
    pub scroll: usize,
    /// Whether a fetch is under way.
    pub loading: bool,
    /// Whether the delivery changed since the fetch under way started.
    pub stale: bool,
    /// Why the last fetch failed.
    pub error: Option<String>,
}

/// The endpoint list.
#[derive(Debug, Clone, Default)]
pub struct EndpointsView {
    /// Endpoints as last fetched.
    pub endpoints: Vec<Endpoint>,
    /// Index of the selected endpoint.
    pub selected: usize,
    /// Whether a fetch is under way.
    pub loading: bool,
    /// When the list was last requested.
    pub requested_at: Option<Timestamp>,
    /// Why the last fetch failed.
    pub error: Option<String>,
}

/// The line where a new threshold rule is typed.
#[derive(Debug, Clone, Default)]
pub struct RuleEditor {
    /// The text and cursor.
    pub input: Input,
    /// The reason the console or the daemon rejected the line.
    pub error: Option<String>,
    /// Whether the rule was sent and no reply has arrived yet.
    pub submitting: bool,
}

/// The threshold rule list.
#[derive(Debug, Clone, Default)]
pub struct RulesView {
    /// Rules as last fetched, sorted by scope, scope id and criterion.
    pub rules: Vec<ThresholdRule>,
    /// Index of the selected rule.
    pub selected: usize,
    /// Whether a fetch is under way.
    pub loading: bool,
    /// When the list was last requested.
    pub requested_at: Option<Timestamp>,
    /// The error of the last fetch.
    pub error: Option<String>,
    /// The new rule line, while it is open.
    pub editor: Option<RuleEditor>,
}

impl RulesView {
    /// Returns the selected rule, if the list has any.
    pub fn selected_rule(&self) -> Option<&ThresholdRule> {
        self.rules.get(self.selected)
    }
}

/// A replay of several deliveries waiting for the user's yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfirm {
    /// The request to send on yes, `dry_run` unset.
    pub request: ReplayRequest,
    /// What the dry run counted.
    pub counted: ReplayResponse,
    /// What is replayed, such as "3 marked deliveries".
    pub scope: String,
}

/// A box drawn over the current view.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// The key list.
    Help,
    /// A replay waiting for confirmation.
    Confirm(ReplayConfirm),
    /// A threshold rule deletion waiting for confirmation.
    DeleteRule(ThresholdRule),
}

/// The console's state.
#[derive(Debug)]
pub struct App {
    /// The current time, set by ticks so tests control it.
    pub now: Timestamp,
    /// The control socket, for messages.
    pub socket: PathBuf,
    /// Styles.
    pub theme: Theme,
    /// Terminal columns.
    pub width: u16,
    /// Terminal rows.
    pub height: u16,
    /// The main pane.
    pub view: View,
    /// A box over the pane.
    pub overlay: Option<Overlay>,
    /// The log filter applied on the daemon side.
    pub filter: FilterSpec,
    /// The filter line while it is edited.
    pub filter_editor: Option<FilterEditor>,
    /// The loaded window of the delivery log.
    pub log: DeliveryLog,
    /// Deliveries marked for replay.
    pub marks: BTreeSet<DeliveryId>,
    /// The open delivery.
    pub detail: Option<DetailView>,
    /// The endpoint list.
    pub endpoints: EndpointsView,
    /// The threshold rules.
    pub rules: RulesView,
    /// When the first page of the log last failed to load, so a tick can try again.
    pub log_failed_at: Option<Timestamp>,
    /// The 24 h totals, adjusted live between fetches.
    pub stats: Option<Stats>,
    /// When the totals were last requested.
    pub stats_requested_at: Option<Timestamp>,
    /// The link to the daemon.
    pub connection: Connection,
    /// The footer message.
    pub notice: Option<Notice>,
    /// Whether a replay dry run is under way.
    pub counting_replay: bool,
    /// Set when the console should exit.
    pub should_quit: bool,
}

impl App {
    /// A console for the daemon at `socket`, sized `width` x `height`, at time `now`.
    pub fn new(socket: PathBuf, theme: Theme, now: Timestamp, width: u16, height: u16) -> Self {
        let mut log = DeliveryLog::default();
        log.set_viewport(crate::render::layout::list_rows(height));
        App {
            now,
            socket,
            theme,
            width,
            height,
            view: View::Log,
            overlay: None,
            filter: FilterSpec::default(),
            filter_editor: None,
            log,
            marks: BTreeSet::new(),
            detail: None,
            endpoints: EndpointsView::default(),
            rules: RulesView::default(),
            log_failed_at: None,
            stats: None,
            stats_requested_at: None,
            connection: Connection::Connecting,
            notice: None,
            counting_replay: false,
            should_quit: false,
        }
    }

    /// Shows an informational footer message.
    pub fn inform(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: false,
            at: self.now,
        });
    }

    /// Shows a failure in the footer.
    pub fn warn(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: true,
            at: self.now,
        });
    }
}
