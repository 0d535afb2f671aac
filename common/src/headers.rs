//! Names of the HTTP headers on every delivery request and on the ingest API.

/// Signature of the raw body: `v1=<lowercase hex HMAC-SHA256>`, keyed with the endpoint secret.
pub const SIGNATURE: &str = "x-webhook-signature";
/// The event type, such as `csat.received`.
pub const EVENT: &str = "x-belter-event";
/// The delivery id, stable across retries and replays.
pub const DELIVERY: &str = "x-belter-delivery";
/// The event id, shared by every delivery of one event.
pub const EVENT_ID: &str = "x-belter-event-id";
/// The attempt number of this request, starting at 1.
pub const ATTEMPT: &str = "x-belter-attempt";
/// Standard Webhooks message id: the delivery id, stable across retries and replays.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks timestamp: seconds since the epoch at the attempt.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signatures, `v1,<base64>`, one per valid secret, space-separated.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Key that makes a repeated ingest request return the first response.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` on an ingest response that repeats the first response to an idempotency key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `User-Agent` of every delivery request.
pub fn user_agent() -> String {
    format!("Belter-Webhooks/{}", env!("CARGO_PKG_VERSION"))
}
