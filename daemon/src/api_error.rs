//! Errors of the ingest and control APIs, sent as JSON `{"error": "..."}` with their status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use belter_common::api::ErrorBody;

use crate::store::StoreError;

/// An API error: the status and a message that names the value and the fix.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A store failure: logged once here, returned as 503 because a later try may succeed.
    pub(crate) fn store(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "store operation failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store cannot complete the request, try again later: {error}"),
        )
    }
}

impl ApiError {
    /// An ingest whose write could not be flushed: logged once, returned as 503. The event may
    /// still be delivered, so a client retries with the same idempotency key.
    pub(crate) fn not_flushed(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "cannot flush an accepted event");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the event was written but could not be flushed to disk, so it is not acknowledged: {error}. Retry with the same Idempotency-Key to avoid a duplicate"
            ),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::store(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Returns the error of every unknown route.
pub(crate) async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}: see docs/api.md for the routes",
        uri.path()
    ))
}

/// Returns the error of every unknown route of the ingest listener, which names the control
/// socket for a path of the control socket's route table.
pub(crate) async fn ingest_route_not_found(uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let control_route = crate::control::routes()
        .iter()
        .any(|route| crate::routes::path_matches(route.path, path));
    if !control_route {
        return route_not_found(uri).await;
    }
    ApiError::not_found(format!(
        "no route {path} on the ingest listener: the control socket serves it; run belter, or \
         curl --unix-socket with the control socket's path and http://belterd{path}"
    ))
}

/// Returns the error of a known route called with a method it does not serve.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} is not allowed on {}: see docs/api.md for the methods of each route",
            uri.path()
        ),
    )
}
