//! Request and response bodies of the ingest and control APIs, beyond the records themselves.

use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::records::{DeliveryFormat, DeliveryStatus, EventSelection};
use crate::timestamp::Timestamp;

/// Version prefix of every API route.
pub const API_PREFIX: &str = "/v1";

/// Default number of deliveries in one page of `GET /v1/deliveries`.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Largest number of deliveries in one page.
pub const MAX_PAGE_LIMIT: u32 = 1_000;

/// Body of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestRequest {
    /// The event type.
    pub event: String,
    /// The event data, validated against the type's schema.
    pub data: serde_json::Value,
}

/// Body of `POST /v1/events/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestBatchRequest {
    /// 1 to 1,000 events, each as `POST /v1/events` takes it.
    pub events: Vec<IngestRequest>,
}

/// Response of `POST /v1/events/batch`, sent once every event is flushed to disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestBatchResponse {
    /// One entry per event, in the order of the request.
    pub events: Vec<IngestResponse>,
}

/// Response of `POST /v1/events`, sent once the event and its deliveries are flushed to disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    /// The new event's id.
    pub event_id: EventId,
    /// One delivery per subscribed endpoint.
    pub deliveries: Vec<DeliveryId>,
    /// Events the daemon derived from this one in the same write, such as threshold breaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<DerivedEvent>,
}

/// An event derived at ingest, with its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DerivedEvent {
    /// The derived event's id.
    pub event_id: EventId,
    /// Its type, such as `score.threshold_breached`.
    pub event: EventType,
    /// One delivery per subscribed endpoint.
    pub deliveries: Vec<DeliveryId>,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What failed, on which value, and what to do.
    pub error: String,
}

/// Body of `POST /v1/endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where deliveries are posted: an http or https URL.
    pub url: String,
    /// Which event types it receives; every type when absent.
    #[serde(default = "all_events")]
    pub event_types: EventSelection,
    /// A note for operators.
    #[serde(default)]
    pub description: String,
    /// Whether the endpoint starts paused.
    #[serde(default)]
    pub paused: bool,
    /// A payload filter such as `data.brand == "northwind" && data.level >= 0.8`; events it
    /// rejects create no delivery to the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The body format, `raw` when absent.
    #[serde(default)]
    pub format: DeliveryFormat,
    /// The PagerDuty routing key, required with the `pagerduty` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Add the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) beside Belter's own.
    #[serde(default)]
    pub standard_webhooks: bool,
}

fn all_events() -> EventSelection {
    EventSelection::All
}

/// Body of `PATCH /v1/endpoints/{id}`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// A new URL for deliveries created from now on and for replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A new event selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<EventSelection>,
    /// A new description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A new payload filter; an empty text removes the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A new body format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
    /// A new PagerDuty routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Turn the Standard Webhooks headers on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_webhooks: Option<bool>,
}

/// Body of `POST /v1/endpoints/{id}/rotate-secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret still signs deliveries beside the new one, such as `24h`;
    /// absent or `0s` retires it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// Body of `POST /v1/ingest-token/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateIngestToken {
    /// How long the old token is still accepted beside the new one, such as `1h`; absent or
    /// `0s` retires it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// Response of `POST /v1/ingest-token/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestToken {
    /// The new token, for `Authorization: Bearer <token>`.
    pub token: String,
    /// Until when the old token is still accepted, after a rotation with a grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Timestamp>,
}

/// Response of `POST /v1/endpoints`: the endpoint and its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEndpoint {
    /// The new endpoint.
    pub endpoint: crate::records::Endpoint,
    /// Its signing secret.
    pub secret: String,
}

/// Filters of the delivery log, shared by listing and replay by filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    /// Only deliveries in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
    /// Only events of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventType>,
    /// Only deliveries to this endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointId>,
    /// Only deliveries whose target URL or endpoint id contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only deliveries created at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Only deliveries created before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl DeliveryFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self == &DeliveryFilter::default()
    }
}

/// Query of `GET /v1/deliveries`: filters plus paging. Results come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
    /// Only events of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventType>,
    /// Only deliveries to this endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointId>,
    /// Only deliveries whose target URL or endpoint id contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only deliveries created at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Only deliveries created before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// The `next_cursor` of the previous page: results continue with older deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<DeliveryId>,
    /// Page size, 50 when absent, at most 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl DeliveryQuery {
    /// The filter part of the query.
    pub fn filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            status: self.status,
            event: self.event,
            endpoint: self.endpoint.clone(),
            target: self.target.clone(),
            since: self.since,
            until: self.until,
        }
    }

    /// A query for the first page of a filter.
    pub fn from_filter(filter: DeliveryFilter, limit: Option<u32>) -> Self {
        DeliveryQuery {
            status: filter.status,
            event: filter.event,
            endpoint: filter.endpoint,
            target: filter.target,
            since: filter.since,
            until: filter.until,
            cursor: None,
            limit,
        }
    }
}

/// Response of `GET /v1/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryPage {
    /// Deliveries, newest first.
    pub deliveries: Vec<crate::records::Delivery>,
    /// Pass as `cursor` for the next, older page; absent on the last page.
    pub next_cursor: Option<DeliveryId>,
}

/// Body of `POST /v1/replay`: deliveries by id, or every delivery that a filter matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Deliveries to replay by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<DeliveryId>,
    /// Replay every delivery this filter matches, used when `ids` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<DeliveryFilter>,
    /// Count what would be replayed without queueing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// Deliveries of one replay bound for one target URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetCount {
    /// The target URL.
    pub url: String,
    /// How many deliveries go there.
    pub count: u64,
}

/// Response of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayResponse {
    /// Deliveries queued for a new attempt, or that would be with `dry_run`.
    pub queued: u64,
    /// Deliveries left alone: in flight now, or whose endpoint was deleted.
    pub skipped: u64,
    /// The skipped deliveries whose attempt runs now.
    #[serde(default)]
    pub skipped_in_flight: u64,
    /// The skipped deliveries whose endpoint was deleted. The other skipped ones were removed
    /// by retention during the replay.
    #[serde(default)]
    pub skipped_no_endpoint: u64,
    /// Queued deliveries whose endpoint is paused, which are sent once it is resumed.
    #[serde(default)]
    pub paused: u64,
    /// Queued deliveries per target URL, most first.
    pub targets: Vec<TargetCount>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl ReplayResponse {
    /// Describes why deliveries were skipped, such as "2 in flight now, 1 without an
    /// endpoint". Returns `None` when none were.
    pub fn skip_reasons(&self) -> Option<String> {
        if self.skipped == 0 {
            return None;
        }
        let past_retention = self
            .skipped
            .saturating_sub(self.skipped_in_flight)
            .saturating_sub(self.skipped_no_endpoint);
        let mut reasons = Vec::new();
        if self.skipped_in_flight > 0 {
            reasons.push(format!("{} in flight now", self.skipped_in_flight));
        }
        if self.skipped_no_endpoint > 0 {
            reasons.push(format!("{} without an endpoint", self.skipped_no_endpoint));
        }
        if past_retention > 0 {
            reasons.push(format!("{past_retention} past retention"));
        }
        Some(reasons.join(", "))
    }
}

/// Query of `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct StatsQuery {
    /// Window length such as `24h` or `15m`; 24 h when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(total: u64, in_flight: u64, no_endpoint: u64) -> ReplayResponse {
        ReplayResponse {
            queued: 0,
            skipped: total,
            skipped_in_flight: in_flight,
            skipped_no_endpoint: no_endpoint,
            paused: 0,
            targets: Vec::new(),
            dry_run: false,
        }
    }

    #[test]
    fn skip_reasons_name_each_cause() {
        assert_eq!(skipped(0, 0, 0).skip_reasons(), None);
        assert_eq!(
            skipped(2, 2, 0).skip_reasons().as_deref(),
            Some("2 in flight now")
        );
        assert_eq!(
            skipped(4, 1, 2).skip_reasons().as_deref(),
            Some("1 in flight now, 2 without an endpoint, 1 past retention")
        );
    }
}
