//! The control API, served as HTTP/1.1 on a Unix socket: endpoints, the delivery log, replays,
//! stats and the live stream, plus the ingest route without a token for local services.

mod deliveries;
mod endpoints;
mod extract;
mod rules;
mod socket;
mod stream;

use axum::routing::{get, post};
use axum::Router;

use crate::api_error::{method_not_allowed, route_not_found};
use crate::ingest;
use crate::state::AppState;

pub(crate) use socket::bind_control_socket;
pub use socket::SocketError;

/// The router of the control socket.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ingest::health))
        .route("/v1/events", post(ingest::ingest_local))
        .route("/v1/event-types", get(deliveries::event_types))
        .route(
            "/v1/endpoints",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::show)
                .patch(endpoints::update)
                .delete(endpoints::remove),
        )
        .route("/v1/endpoints/{id}/pause", post(endpoints::pause))
        .route("/v1/endpoints/{id}/resume", post(endpoints::resume))
        .route("/v1/endpoints/{id}/secret", get(endpoints::secret))
        .route(
            "/v1/endpoints/{id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route("/v1/deliveries", get(deliveries::list))
        .route("/v1/deliveries/{id}", get(deliveries::show))
        .route("/v1/deliveries/{id}/replay", post(deliveries::replay_one))
        .route("/v1/replay", post(deliveries::replay_many))
        .route("/v1/rules", get(rules::list).post(rules::create))
        .route("/v1/rules/{id}", axum::routing::delete(rules::remove))
        .route("/v1/stats", get(deliveries::stats))
        .route("/v1/stream", get(stream::stream))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
