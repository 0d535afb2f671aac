//! The control API, served as HTTP/1.1 on a Unix socket: endpoints, the delivery log, replays,
//! stats and the live stream, plus the ingest route without a token for local services.

pub(crate) mod deliveries;
pub(crate) mod endpoints;
mod extract;
pub(crate) mod ingest_token;
pub(crate) mod rules;
mod socket;

pub(crate) use socket::group_id;
pub(crate) mod stream;

use axum::Router;

use crate::ingest;
use crate::routes::{self, Route};
use crate::state::AppState;

pub use socket::SocketError;
pub(crate) use socket::{bind_control_socket, check_socket_path};

/// Every route of the control socket.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/healthz", ingest::health),
        Route::get("/v1/openapi.json", crate::openapi::serve),
        Route::post("/v1/events", ingest::ingest_local),
        Route::post("/v1/events/batch", ingest::ingest_batch_local),
        Route::get("/v1/event-types", deliveries::event_types),
        Route::get("/v1/endpoints", endpoints::list),
        Route::post("/v1/endpoints", endpoints::create),
        Route::get("/v1/endpoints/{id}", endpoints::show),
        Route::patch("/v1/endpoints/{id}", endpoints::update),
        Route::delete("/v1/endpoints/{id}", endpoints::remove),
        Route::post("/v1/endpoints/{id}/pause", endpoints::pause),
        Route::post("/v1/endpoints/{id}/resume", endpoints::resume),
        Route::get("/v1/endpoints/{id}/secret", endpoints::secret),
        Route::post("/v1/endpoints/{id}/rotate-secret", endpoints::rotate_secret),
        Route::get("/v1/deliveries", deliveries::list),
        Route::get("/v1/deliveries/{id}", deliveries::show),
        Route::post("/v1/deliveries/{id}/replay", deliveries::replay_one),
        Route::post("/v1/replay", deliveries::replay_many),
        Route::get("/v1/rules", rules::list),
        Route::post("/v1/rules", rules::create),
        Route::delete("/v1/rules/{id}", rules::remove),
        Route::post("/v1/ingest-token/rotate", ingest_token::rotate),
        Route::get("/v1/stats", deliveries::stats),
        Route::get("/v1/stream", stream::stream),
    ]
}

/// The router of the control socket.
pub(crate) fn router(state: AppState) -> Router {
    routes::router(routes(), state)
}
