//! Records as the control API returns them: endpoints, deliveries, attempts, the live stream and
//! the totals. The daemon stores its own encoding and converts to these at the API edge.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::timestamp::Timestamp;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// An attempt is running now.
    InFlight,
    /// A receiver answered 2xx.
    Succeeded,
    /// Every scheduled attempt failed, or a replay failed.
    Failed,
    /// Queued, but its endpoint is paused.
    Paused,
    /// Its endpoint was deleted before the delivery succeeded.
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in the order a filter offers them.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::InFlight,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Paused,
        DeliveryStatus::Cancelled,
    ];

    /// The wire name, such as `in_flight`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Paused => "paused",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no more attempts are scheduled.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Succeeded | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|status| status.as_str()).collect();
                format!(
                    "unknown delivery status {name:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Why an attempt failed when no 2xx status arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The receiver answered with a status other than 2xx, redirects included.
    HttpStatus,
    /// The attempt did not finish within the timeout.
    Timeout,
    /// Nothing listens at the target address.
    ConnectionRefused,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The connection was reset or closed before a full response.
    Reset,
    /// Another connection error.
    Connect,
    /// The target address is not allowed by the delivery policy.
    BlockedByPolicy,
    /// The request could not be built or sent for another reason.
    Other,
}

impl FailureKind {
    /// A short label for tables, such as `timeout` or `TLS`.
    pub const fn label(self) -> &'static str {
        match self {
            FailureKind::HttpStatus => "HTTP",
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "refused",
            FailureKind::Dns => "DNS",
            FailureKind::Tls => "TLS",
            FailureKind::Reset => "reset",
            FailureKind::Connect => "connect",
            FailureKind::BlockedByPolicy => "blocked",
            FailureKind::Other => "error",
        }
    }
}

/// What caused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptTrigger {
    /// The first attempt after ingest.
    First,
    /// A scheduled retry after a failure.
    Retry,
    /// A manual replay from the control API.
    Replay,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// Attempt number, starting at 1 and counting replays too.
    pub number: u32,
    /// What caused the attempt.
    pub trigger: AttemptTrigger,
    /// When the request started.
    pub started_at: Timestamp,
    /// Time from the start of the request to the end of the response excerpt, in milliseconds.
    pub latency_ms: u64,
    /// Whether the receiver answered 2xx within the timeout.
    pub succeeded: bool,
    /// The HTTP status, when a status line arrived.
    pub status_code: Option<u16>,
    /// The kind of failure, for every failed attempt.
    pub failure: Option<FailureKind>,
    /// A readable description of the failure.
    pub error: Option<String>,
    /// The first bytes of the response body (at most 4 KiB), decoded lossily as UTF-8.
    pub response_body: Option<String>,
    /// The `X-Webhook-Signature` value that was sent.
    pub signature: String,
}

impl Attempt {
    /// A short status label: the HTTP code, or the failure kind such as `timeout`.
    pub fn status_label(&self) -> String {
        match (self.status_code, self.failure) {
            (Some(code), _) => code.to_string(),
            (None, Some(kind)) => kind.label().to_owned(),
            (None, None) => "-".to_owned(),
        }
    }
}

/// One delivery: an event bound for one endpoint, with the outcome of its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// The delivery id, sent as `X-Belter-Delivery`.
    pub id: DeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: EventType,
    /// The endpoint it is bound for.
    pub endpoint_id: EndpointId,
    /// The URL it is sent to: the endpoint's URL when the delivery was created, or when it was
    /// last replayed.
    pub target_url: String,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
    /// How many attempts were made.
    pub attempt_count: u32,
    /// When the delivery was created.
    pub created_at: Timestamp,
    /// When the delivery last changed.
    pub updated_at: Timestamp,
    /// When the next attempt is due, while one is scheduled.
    pub next_attempt_at: Option<Timestamp>,
    /// HTTP status of the latest attempt, if a status line arrived.
    pub last_status_code: Option<u16>,
    /// Failure kind of the latest attempt, if it failed.
    pub last_failure: Option<FailureKind>,
    /// Failure description of the latest attempt, if it failed.
    pub last_error: Option<String>,
    /// Latency of the latest attempt in milliseconds.
    pub last_latency_ms: Option<u64>,
}

impl Delivery {
    /// A short label of the latest outcome: the HTTP code, the failure kind, or the status.
    pub fn outcome_label(&self) -> String {
        match (self.last_status_code, self.last_failure) {
            (Some(code), _) => code.to_string(),
            (None, Some(kind)) => kind.label().to_owned(),
            (None, None) => self.status.as_str().to_owned(),
        }
    }
}

/// One request header as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Header {
    /// Header name, lowercase.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A delivery with its payload, the request headers of its latest attempt, and every attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryDetail {
    /// The delivery summary.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The exact body that is sent, as stored at ingest.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Box<RawValue>,
    /// Headers of the latest attempt as sent, or of the next one when none was made yet.
    pub request_headers: Vec<Header>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The rule and event this delivery's event was derived from, for derived events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<crate::rules::DerivedFrom>,
}

/// Which event types an endpoint receives: a list, or every type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EventTypesWire", into = "Vec<String>")]
pub enum EventSelection {
    /// Every event type, written `"*"` or `["*"]`.
    All,
    /// Only the listed types.
    Only(Vec<EventType>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EventTypesWire {
    One(String),
    List(Vec<String>),
}

impl TryFrom<EventTypesWire> for EventSelection {
    type Error = String;

    fn try_from(wire: EventTypesWire) -> Result<Self, Self::Error> {
        let names = match wire {
            EventTypesWire::One(name) => vec![name],
            EventTypesWire::List(names) => names,
        };
        EventSelection::parse(&names)
    }
}

impl From<EventSelection> for Vec<String> {
    fn from(selection: EventSelection) -> Vec<String> {
        match selection {
            EventSelection::All => vec!["*".to_owned()],
            EventSelection::Only(kinds) => kinds.iter().map(|kind| kind.to_string()).collect(),
        }
    }
}

impl EventSelection {
    /// Parses a list of event type names, where `*` selects every type.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Err(
                "event_types must not be empty: list event types, or use \"*\" for all".to_owned(),
            );
        }
        if names.iter().any(|name| name.as_ref() == "*") {
            return Ok(EventSelection::All);
        }
        let mut kinds = Vec::with_capacity(names.len());
        for name in names {
            let kind: EventType = name.as_ref().parse().map_err(|error| format!("{error}"))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(EventSelection::Only(kinds))
    }

    /// Whether events of `kind` are selected.
    pub fn includes(&self, kind: EventType) -> bool {
        match self {
            EventSelection::All => true,
            EventSelection::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// The selection as comma-separated text, `*` for all.
    pub fn to_text(&self) -> String {
        Vec::<String>::from(self.clone()).join(",")
    }
}

/// The body an endpoint receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFormat {
    /// The stored Belter body, `{"id", "event", "created_at", "data"}`.
    #[default]
    Raw,
    /// A Slack incoming-webhook message: text plus blocks.
    Slack,
    /// A PagerDuty Events API v2 enqueue body; needs the endpoint's routing key.
    Pagerduty,
    /// A Microsoft Teams message card.
    Teams,
}

impl DeliveryFormat {
    /// The wire name, such as `pagerduty`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryFormat::Raw => "raw",
            DeliveryFormat::Slack => "slack",
            DeliveryFormat::Pagerduty => "pagerduty",
            DeliveryFormat::Teams => "teams",
        }
    }
}

impl std::str::FromStr for DeliveryFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            DeliveryFormat::Raw,
            DeliveryFormat::Slack,
            DeliveryFormat::Pagerduty,
            DeliveryFormat::Teams,
        ]
        .into_iter()
        .find(|format| format.as_str() == name)
        .ok_or_else(|| format!("unknown format {name:?}: expected raw, slack, pagerduty or teams"))
    }
}

/// Whether an endpoint receives deliveries now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Deliveries are sent.
    Active,
    /// Deliveries queue until the endpoint is resumed.
    Paused,
}

/// A subscribed endpoint, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    /// The endpoint id.
    pub id: EndpointId,
    /// Where deliveries are posted.
    pub url: String,
    /// Which event types it receives.
    pub event_types: EventSelection,
    /// A note for operators.
    pub description: String,
    /// Whether deliveries are sent now.
    pub state: EndpointState,
    /// When the endpoint was created.
    pub created_at: Timestamp,
    /// When the endpoint last changed.
    pub updated_at: Timestamp,
    /// Failed attempts in a row since the last success.
    pub consecutive_failures: u32,
    /// Failed attempts in the last 24 hours.
    pub recent_failures: u64,
    /// When the last successful attempt ended, if one did.
    pub last_success_at: Option<Timestamp>,
    /// The payload filter, if the endpoint has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Why the daemon paused the endpoint by itself, such as after failing for days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// The body format deliveries are sent in.
    #[serde(default)]
    pub format: DeliveryFormat,
    /// Whether deliveries carry the Standard Webhooks headers beside Belter's own.
    #[serde(default)]
    pub standard_webhooks: bool,
    /// End of the pause in resends after a reset. While it runs, a request whose connection the
    /// receiver closed is not sent again at once on a new connection, because such a resend was
    /// closed too. Each pause lasts 10 minutes, lives in memory only and ends when the URL
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resends_paused_until: Option<Timestamp>,
}

/// An endpoint's signing secret, returned only on creation, rotation and the `secret` route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointSecret {
    /// The endpoint id.
    pub endpoint_id: EndpointId,
    /// The secret: `whsec_` followed by the standard base64 of 32 random bytes.
    pub secret: String,
    /// Until when the previous secret also signs deliveries, after a rotation with a grace
    /// period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Timestamp>,
}

/// What a stream line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// A delivery was created at ingest.
    DeliveryCreated,
    /// An attempt started.
    AttemptStarted,
    /// An attempt ended, with its result.
    AttemptFinished,
    /// A delivery changed without an attempt: replay queued, paused, resumed or cancelled.
    DeliveryUpdated,
    /// The reader fell behind and `missed` lines were dropped.
    Lagged,
}

/// One line of `GET /v1/stream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamEvent {
    /// What the line reports.
    pub kind: StreamKind,
    /// The delivery as it stands after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// The attempt, for `attempt_finished`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
    /// How many lines were dropped, for `lagged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// Delivery totals over a window, from `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Length of the window in seconds.
    pub window_secs: u64,
    /// Start of the window.
    pub since: Timestamp,
    /// Attempts that succeeded in the window.
    pub ok: u64,
    /// Attempts that failed in the window.
    pub failed: u64,
    /// Deliveries that gave up after their last scheduled attempt in the window.
    pub gave_up: u64,
    /// Deliveries waiting for an attempt now, in flight included.
    pub pending: u64,
    /// Subscribed endpoints.
    pub endpoints: u64,
}

/// One event type with its schema, from `GET /v1/event-types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypeInfo {
    /// The wire name.
    pub name: EventType,
    /// What the event means.
    pub description: String,
    /// JSON Schema of the event's `data`.
    pub schema: serde_json::Value,
}

/// The daemon's health, from `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` while the daemon serves.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// When the daemon started.
    pub started_at: Timestamp,
    /// The address the ingest API listens on, with the port actually bound.
    pub ingest_addr: String,
    /// The daemon's data directory.
    pub data_dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_selection_accepts_star_and_lists() {
        let all: EventSelection = serde_json::from_str("\"*\"").unwrap();
        assert_eq!(all, EventSelection::All);
        let all: EventSelection = serde_json::from_str("[\"*\"]").unwrap();
        assert_eq!(all, EventSelection::All);
        let some: EventSelection = serde_json::from_str("[\"csat.received\"]").unwrap();
        assert!(some.includes(EventType::CsatReceived));
        assert!(!some.includes(EventType::FrustrationDetected));
        assert_eq!(serde_json::to_string(&some).unwrap(), "[\"csat.received\"]");
    }

    #[test]
    fn event_selection_rejects_unknown_and_empty() {
        let error = serde_json::from_str::<EventSelection>("[\"csat\"]").unwrap_err();
        assert!(error.to_string().contains("unknown event type"), "{error}");
        assert!(serde_json::from_str::<EventSelection>("[]").is_err());
    }

    #[test]
    fn status_parses_wire_names() {
        assert_eq!("in_flight".parse(), Ok(DeliveryStatus::InFlight));
        assert!("done"
            .parse::<DeliveryStatus>()
            .unwrap_err()
            .contains("succeeded"));
    }
}
