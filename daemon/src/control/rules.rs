//! Threshold rule routes: list, create and delete. A change applies to the next accepted event.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use belter_common::api::ErrorBody;
use belter_common::rules::{CreateRule, RuleScope, ThresholdRule};
use belter_common::{RuleId, Timestamp};

use super::extract;
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::store::RuleRecord;

/// Longest scope id or criterion name accepted, in bytes.
const MAX_NAME_LEN: usize = 256;

/// Checks a rule request and turns it into a record.
fn check_rule(request: CreateRule) -> Result<RuleRecord, ApiError> {
    let scope_id = request.scope_id.map(|id| id.trim().to_owned());
    match (request.scope, &scope_id) {
        (RuleScope::Global, Some(_)) => {
            return Err(ApiError::unprocessable(
                "scope_id must be absent for a global rule: remove it, or pick scope brand, team or agent",
            ))
        }
        (RuleScope::Global, None) => {}
        (scope, None) => {
            return Err(ApiError::unprocessable(format!(
                "scope_id is required for scope {}: give the {} id",
                scope.as_str(),
                scope.as_str()
            )))
        }
        (_, Some(id)) if id.is_empty() || id.len() > MAX_NAME_LEN => {
            return Err(ApiError::unprocessable(format!(
                "scope_id must be 1 to {MAX_NAME_LEN} bytes long"
            )))
        }
        _ => {}
    }
    let criterion = request.criterion.map(|name| name.trim().to_owned());
    if criterion
        .as_ref()
        .is_some_and(|name| name.is_empty() || name.len() > MAX_NAME_LEN)
    {
        return Err(ApiError::unprocessable(format!(
            "criterion must be 1 to {MAX_NAME_LEN} bytes long, or absent for the overall score"
        )));
    }
    if !request.min_score.is_finite() {
        return Err(ApiError::unprocessable(format!(
            "min_score must be a finite number, got {}",
            request.min_score
        )));
    }
    Ok(RuleRecord {
        scope: request.scope,
        scope_id,
        criterion,
        min_score: request.min_score,
        created_at: Timestamp::now().as_millis(),
    })
}

/// `GET /v1/rules`
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "rules",
    summary = "List the threshold rules",
    responses((status = 200, description = "Every rule", body = Vec<ThresholdRule>))
)]
pub(super) async fn list(State(state): State<AppState>) -> Json<Vec<ThresholdRule>> {
    Json(state.rules.list())
}

/// `POST /v1/rules`
#[utoipa::path(
    post,
    path = "/v1/rules",
    tag = "rules",
    summary = "Add a threshold rule",
    request_body = CreateRule,
    responses(
        (status = 201, description = "The new rule", body = ThresholdRule),
        (status = 409, description = "A rule for the same scope and criterion exists", body = ErrorBody),
        (status = 422, description = "Invalid request body, naming the field", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<ThresholdRule>), ApiError> {
    extract::options_in_body(raw.as_deref())?;
    let request: CreateRule = extract::json(&body)?;
    let record = check_rule(request)?;
    let existing = state.rules.list().into_iter().find(|rule| {
        rule.scope == record.scope
            && rule.scope_id == record.scope_id
            && rule.criterion == record.criterion
    });
    if let Some(existing) = existing {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "rule {} already covers this scope and criterion: delete it first, or keep it",
                existing.id
            ),
        ));
    }
    let rule = state.rules.insert(&state.store, record)?;
    state.flusher.flush().await.map_err(ApiError::store)?;
    tracing::info!(rule_id = %rule.id, scope = rule.scope.as_str(), min_score = rule.min_score, "threshold rule created");
    Ok((StatusCode::CREATED, Json(rule)))
}

/// `DELETE /v1/rules/{id}`
#[utoipa::path(
    delete,
    path = "/v1/rules/{id}",
    tag = "rules",
    summary = "Remove a threshold rule",
    params(("id" = RuleId, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The removed rule", body = ThresholdRule),
        (status = 400, description = "Invalid id, or a query string", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 422, description = "A request body other than {}", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<ThresholdRule>, ApiError> {
    // An option such as `dry_run` sent here would otherwise go unread while the rule goes.
    const FIX: &str = "send the request without one";
    extract::no_query(raw.as_deref(), FIX)?;
    extract::no_body(&body, FIX)?;
    let id = RuleId::parse(&id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let rule = state
        .rules
        .remove(&state.store, &id)?
        .ok_or_else(|| ApiError::not_found(format!("rule {id} not found")))?;
    state.flusher.flush().await.map_err(ApiError::store)?;
    tracing::info!(rule_id = %rule.id, "threshold rule deleted");
    Ok(Json(rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scope: RuleScope, scope_id: Option<&str>, min_score: f64) -> CreateRule {
        CreateRule {
            scope,
            scope_id: scope_id.map(str::to_owned),
            criterion: None,
            min_score,
        }
    }

    #[test]
    fn scope_id_follows_scope() {
        assert!(check_rule(request(RuleScope::Global, None, 80.0)).is_ok());
        assert!(check_rule(request(RuleScope::Team, Some("billing"), 80.0)).is_ok());
        let cases = [
            (
                request(RuleScope::Global, Some("x"), 80.0),
                "must be absent",
            ),
            (
                request(RuleScope::Agent, None, 80.0),
                "scope_id is required",
            ),
            (request(RuleScope::Brand, Some(" "), 80.0), "1 to 256"),
            (request(RuleScope::Global, None, f64::NAN), "finite"),
        ];
        for (request, expected) in cases {
            let message = check_rule(request).unwrap_err().message;
            assert!(message.contains(expected), "{message}");
        }
    }
}
