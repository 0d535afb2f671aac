//! The contract between `belterd` and its clients: event types and their schemas, ids, the
//! records the control API returns, the request signature, and a typed client for the control
//! socket. Nothing here touches the store or the network beyond the control socket.

pub mod api;
pub mod client;
pub mod duration;
pub mod event_type;
pub mod headers;
pub mod http1_client;
pub mod ids;
#[cfg(feature = "openapi")]
mod openapi;
pub mod quick_check;
pub mod records;
pub mod rules;
pub mod samples;
pub mod schema;
pub mod signing;
pub mod timestamp;
pub mod unique_keys;

pub use event_type::EventType;
pub use ids::{DeliveryId, EndpointId, EventId, IdError, RuleId};
pub use timestamp::Timestamp;
