//! Work that `update` asks for and that a background task carries out against the daemon.

use belter_common::api::{DeliveryQuery, ReplayRequest};
use belter_common::rules::CreateRule;
use belter_common::{DeliveryId, EndpointId, RuleId};

use crate::app::delivery_log::PageRequest;

/// One call to the daemon; its result comes back as a `DaemonMessage`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// List one page of deliveries.
    FetchPage {
        /// What the page is for.
        request: PageRequest,
        /// The query, filter and cursor included.
        query: DeliveryQuery,
    },
    /// Fetch the 24 h totals.
    FetchStats,
    /// Fetch one delivery in full.
    FetchDetail(DeliveryId),
    /// Fetch the endpoint list.
    FetchEndpoints,
    /// Replay one delivery.
    Replay(DeliveryId),
    /// Count what a replay would send, without sending anything.
    CountReplay(ReplayRequest),
    /// Replay many deliveries.
    ReplayMany(ReplayRequest),
    /// Pause or resume an endpoint.
    SetEndpointPaused {
        /// The endpoint.
        id: EndpointId,
        /// Pause when true, resume when false.
        paused: bool,
    },
    /// Fetch the threshold rules.
    FetchRules,
    /// Create a threshold rule.
    CreateRule(CreateRule),
    /// Delete a threshold rule.
    DeleteRule(RuleId),
}
