//! `POST /v1/ingest-token/rotate`: replaces the ingest token, optionally keeping the old one
//! valid for a grace period so services can switch without a rejected event.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use belter_common::api::{ErrorBody, IngestToken, RotateIngestToken};
use belter_common::Timestamp;

use super::extract;
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::token::{TokenError, MAX_GRACE};

/// `POST /v1/ingest-token/rotate`
#[utoipa::path(
    post,
    path = "/v1/ingest-token/rotate",
    tag = "daemon",
    summary = "Replace the ingest token",
    request_body = inline(RotateIngestToken),
    responses(
        (status = 200, description = "The new token", body = IngestToken),
        (status = 409, description = "The token is set in the config", body = ErrorBody),
        (status = 422, description = "Invalid grace period", body = ErrorBody),
        (status = 503, description = "The token file cannot be written", body = ErrorBody),
    )
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<IngestToken>, ApiError> {
    extract::options_in_body(raw.as_deref())?;
    let request: RotateIngestToken = extract::json(&body)?;
    let grace_ms = extract::grace(request.grace.as_deref(), MAX_GRACE)?;
    let now = Timestamp::now().as_millis();
    let token = state
        .ingest_tokens
        .rotate(grace_ms, now)
        .map_err(|error| match error {
            TokenError::Configured => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            other => ApiError::store(other),
        })?;
    tracing::info!(grace_ms, "ingest token rotated");
    Ok(Json(IngestToken {
        token,
        previous_valid_until: (grace_ms > 0)
            .then(|| Timestamp::from_millis(now.saturating_add(grace_ms))),
    }))
}
