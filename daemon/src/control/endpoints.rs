//! Endpoint routes: create, list, show, update, delete, pause, resume, and the secret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use belter_common::api::{
    CreateEndpoint, CreatedEndpoint, ErrorBody, RotateSecret, UpdateEndpoint,
};
use belter_common::records::{DeliveryFormat, Endpoint, EndpointSecret};
use belter_common::signing::SECRET_PREFIX;
use belter_common::{EndpointId, Timestamp};

use super::extract;
use crate::address_policy::AddressPolicy;
use crate::api_error::ApiError;
use crate::registry::EndpointEntry;
use crate::rules::filter::Filter;
use crate::state::AppState;
use crate::store::EndpointRecord;

/// Maximum endpoint description length, in bytes.
const MAX_DESCRIPTION_LEN: usize = 1_024;
/// Maximum grace period of a secret rotation.
const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// Maximum endpoint URL length, in bytes.
const MAX_URL_LEN: usize = 2_048;

/// Checks an endpoint URL: absolute http or https, with a host, and no user name or password.
pub(crate) fn check_url(text: &str, policy: &AddressPolicy) -> Result<String, ApiError> {
    let invalid = |fix: &str| {
        let shown: String = text.chars().take(200).collect();
        ApiError::unprocessable(format!("invalid url {shown:?}: {fix}"))
    };
    if text.len() > MAX_URL_LEN {
        return Err(invalid(&format!("use at most {MAX_URL_LEN} bytes")));
    }
    // The URL parser drops tabs and line breaks anywhere, which would turn `http://\t/host`
    // into `http:///host` after the host check below.
    if text.chars().any(char::is_control) {
        return Err(invalid(
            "remove the control characters, such as tabs and line breaks",
        ));
    }
    let url = url::Url::parse(text).map_err(|error| {
        invalid(&format!(
            "{error}; expected a URL such as https://example.com/hooks"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    // The URL parser accepts `http:///path`, `http:/host` and `http:\\host` and takes the first
    // name it finds as the host, so `http:///path` would deliver to a host called `path`.
    let written_host = text.trim().split_once("://").map_or("", |(_, rest)| rest);
    if written_host.is_empty() || written_host.starts_with(['/', '\\']) {
        return Err(invalid(
            "write the host right after the scheme, as in https://example.com/hooks",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL must name a host"));
    }
    if let Some(ip) = literal_ip(&url) {
        if !policy.permits(ip) {
            return Err(invalid(&format!(
                "{ip} is an internal address, which deliveries may not reach; add its range to allow_networks in the daemon's config, or pass --allow-network, to allow it"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "user names and passwords in URLs are not sent; remove them",
        ));
    }
    Ok(url.to_string())
}

fn literal_ip(url: &url::Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(std::net::IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(std::net::IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Checks a payload filter; an empty or blank text means no filter.
fn check_filter(text: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    Filter::parse(text).map_err(|error| ApiError::unprocessable(format!("filter: {error}")))?;
    Ok(Some(text.to_owned()))
}

/// Longest PagerDuty routing key accepted, in bytes.
const MAX_ROUTING_KEY_LEN: usize = 128;

/// Checks that the `pagerduty` format has a routing key, and trims it.
fn check_routing_key(
    format: DeliveryFormat,
    routing_key: Option<String>,
) -> Result<Option<String>, ApiError> {
    let key = routing_key
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty());
    if let Some(key) = &key {
        if key.len() > MAX_ROUTING_KEY_LEN || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ApiError::unprocessable(format!(
                "routing_key must be 1 to {MAX_ROUTING_KEY_LEN} printable ASCII characters"
            )));
        }
    }
    if format == DeliveryFormat::Pagerduty && key.is_none() {
        return Err(ApiError::unprocessable(
            "routing_key is required with format pagerduty: give the integration key of the PagerDuty service",
        ));
    }
    Ok(key)
}

fn check_description(text: &str) -> Result<(), ApiError> {
    if text.len() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::unprocessable(format!(
            "description is {} bytes long: use at most {MAX_DESCRIPTION_LEN}",
            text.len()
        )));
    }
    Ok(())
}

/// Generates a secret: `whsec_` and the standard base64 of 32 bytes from the OS CSPRNG.
fn generate_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "the OS random source failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot generate a secret: the OS random source failed",
        )
    })?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn lookup(state: &AppState, id: &str) -> Result<Arc<EndpointEntry>, ApiError> {
    let id = extract::endpoint_id(id)?;
    state
        .endpoints
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("endpoint {id} not found")))
}

/// Applies a change to an endpoint, writes it and flushes, so a confirmed change survives a
/// crash.
async fn modify(
    state: &AppState,
    id: &EndpointId,
    change: impl FnOnce(&mut EndpointRecord),
) -> Result<Arc<EndpointEntry>, ApiError> {
    let entry = state
        .endpoints
        .modify(&state.store, id, |record| {
            change(record);
            record.updated_at = Timestamp::now().as_millis();
        })?
        .ok_or_else(|| ApiError::not_found(format!("endpoint {id} not found")))?;
    state.flusher.flush().await.map_err(ApiError::store)?;
    Ok(entry)
}

/// `GET /v1/endpoints`
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    tag = "endpoints",
    summary = "List every endpoint, without secrets",
    responses(
        (status = 200, description = "Every endpoint, oldest first", body = Vec<Endpoint>),
    )
)]
pub(super) async fn list(State(state): State<AppState>) -> Json<Vec<Endpoint>> {
    Json(
        state
            .endpoints
            .all()
            .iter()
            .map(|entry| entry.to_api())
            .collect(),
    )
}

/// `POST /v1/endpoints`
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    tag = "endpoints",
    summary = "Subscribe an endpoint",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint and its secret, shown once", body = CreatedEndpoint),
        (status = 422, description = "Invalid request body, naming the field", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    extract::options_in_body(raw.as_deref())?;
    let request: CreateEndpoint = extract::json(&body)?;
    let url = check_url(&request.url, &state.policy)?;
    check_description(&request.description)?;
    let now = Timestamp::now().as_millis();
    let secret = generate_secret()?;
    let mut record = EndpointRecord {
        url,
        event_types: Vec::new(),
        description: request.description,
        paused: request.paused,
        created_at: now,
        updated_at: now,
        secret: secret.clone(),
        previous_secrets: Vec::new(),
        failing_since: None,
        paused_reason: None,
        filter: check_filter(request.filter.as_deref())?,
        format: request.format,
        routing_key: check_routing_key(request.format, request.routing_key)?,
        standard_webhooks: request.standard_webhooks,
    };
    record.set_selection(&request.event_types);
    let id = EndpointId::generate();
    let entry = state.endpoints.insert(&state.store, &id, record)?;
    state.flusher.flush().await.map_err(ApiError::store)?;
    // Only the host is logged: the path of a Slack or Teams webhook URL is a credential.
    let host = url::Url::parse(&entry.record.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    tracing::info!(endpoint_id = %id, %host, events = %entry.record.selection().to_text(), "endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint: entry.to_api(),
            secret,
        }),
    ))
}

/// `GET /v1/endpoints/{id}`
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    summary = "Show one endpoint",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(lookup(&state, &id)?.to_api()))
}

/// `PATCH /v1/endpoints/{id}`
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    summary = "Change an endpoint",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The changed endpoint", body = Endpoint),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "Invalid request body, naming the field", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Endpoint>, ApiError> {
    extract::options_in_body(raw.as_deref())?;
    let entry = lookup(&state, &id)?;
    let request: UpdateEndpoint = extract::json(&body)?;
    let url = request
        .url
        .as_deref()
        .map(|url| check_url(url, &state.policy))
        .transpose()?;
    if let Some(description) = &request.description {
        check_description(description)?;
    }
    let filter = request
        .filter
        .as_deref()
        .map(|text| check_filter(Some(text)))
        .transpose()?;
    let format = request.format.unwrap_or(entry.record.format);
    let routing_key = match request.routing_key.clone() {
        Some(key) => check_routing_key(format, Some(key))?,
        None => check_routing_key(format, entry.record.routing_key.clone())?,
    };
    let entry = modify(&state, &entry.id, |record| {
        if let Some(url) = url {
            record.url = url;
        }
        if let Some(selection) = &request.event_types {
            record.set_selection(selection);
        }
        if let Some(description) = request.description {
            record.description = description;
        }
        if let Some(filter) = filter {
            record.filter = filter;
        }
        record.format = format;
        record.routing_key = routing_key;
        if let Some(standard) = request.standard_webhooks {
            record.standard_webhooks = standard;
        }
    })
    .await?;
    tracing::info!(endpoint_id = %entry.id, "endpoint updated");
    Ok(Json(entry.to_api()))
}

/// `DELETE /v1/endpoints/{id}`: cancels its queued deliveries and keeps their history.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    summary = "Delete an endpoint and cancel its queued deliveries",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The deleted endpoint", body = Endpoint),
        (status = 400, description = "Invalid id, or a query string", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A request body other than {}", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Endpoint>, ApiError> {
    check_no_options(raw.as_deref(), &body)?;
    let entry = lookup(&state, &id)?;
    state.endpoints.remove(&state.store, &entry.id)?;
    state.flusher.flush().await.map_err(ApiError::store)?;
    let cancelled = state.cancel_queue(&entry.id)?;
    tracing::info!(endpoint_id = %entry.id, cancelled = cancelled.len(), "endpoint deleted");
    Ok(Json(entry.to_api()))
}

/// Rejects a query string or a request body on a route that takes neither, because an option
/// such as `dry_run` sent there would otherwise go unread while the change is made.
fn check_no_options(raw: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    const FIX: &str = "send the request without one, and GET \
                       /v1/deliveries?endpoint=ID&status=pending first to see what it affects";
    extract::no_query(raw, FIX)?;
    extract::no_body(body, FIX)
}

async fn set_paused(state: &AppState, id: &str, paused: bool) -> Result<Endpoint, ApiError> {
    let entry = lookup(state, id)?;
    if entry.record.paused == paused {
        return Ok(entry.to_api());
    }
    let entry = modify(state, &entry.id, |record| {
        record.paused = paused;
        record.paused_reason = None;
        if !paused {
            // A resumed endpoint gets the whole auto-pause period again.
            record.failing_since = None;
        }
    })
    .await?;
    if paused {
        state.ready.release(&entry.id);
        tracing::info!(endpoint_id = %entry.id, "endpoint paused");
    } else {
        tracing::info!(endpoint_id = %entry.id, "endpoint resumed");
        state.ready.request_scan(&entry.id);
        state.wake_scheduler.notify_one();
    }
    Ok(entry.to_api())
}

/// `POST /v1/endpoints/{id}/pause`
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/pause",
    tag = "endpoints",
    summary = "Pause an endpoint, so its deliveries queue",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The paused endpoint", body = Endpoint),
        (status = 400, description = "Invalid id, or a query string", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A request body other than {}", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Endpoint>, ApiError> {
    check_no_options(raw.as_deref(), &body)?;
    Ok(Json(set_paused(&state, &id, true).await?))
}

/// `POST /v1/endpoints/{id}/resume`
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/resume",
    tag = "endpoints",
    summary = "Resume a paused endpoint",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The resumed endpoint", body = Endpoint),
        (status = 400, description = "Invalid id, or a query string", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "A request body other than {}", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Endpoint>, ApiError> {
    check_no_options(raw.as_deref(), &body)?;
    Ok(Json(set_paused(&state, &id, false).await?))
}

/// `GET /v1/endpoints/{id}/secret`
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/secret",
    tag = "endpoints",
    summary = "Show an endpoint's signing secret",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The secret", body = EndpointSecret),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    )
)]
pub(super) async fn secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointSecret>, ApiError> {
    let entry = lookup(&state, &id)?;
    Ok(Json(secret_view(&entry)))
}

fn secret_view(entry: &EndpointEntry) -> EndpointSecret {
    EndpointSecret {
        endpoint_id: entry.id.clone(),
        secret: entry.record.secret.clone(),
        previous_valid_until: entry
            .record
            .previous_valid_until(Timestamp::now().as_millis())
            .map(Timestamp::from_millis),
    }
}

/// `POST /v1/endpoints/{id}/rotate-secret`: the new secret signs every attempt from now on, and
/// during the grace period the old one signs too.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/rotate-secret",
    tag = "endpoints",
    summary = "Replace an endpoint's signing secret",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    request_body = inline(RotateSecret),
    responses(
        (status = 200, description = "The new secret", body = EndpointSecret),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "Invalid request body, naming the field", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<EndpointSecret>, ApiError> {
    extract::options_in_body(raw.as_deref())?;
    let entry = lookup(&state, &id)?;
    let request: RotateSecret = extract::json(&body)?;
    let grace_ms = extract::grace(request.grace.as_deref(), MAX_GRACE)?;
    let now = Timestamp::now().as_millis();
    let new_secret = generate_secret()?;
    let entry = modify(&state, &entry.id, |record| {
        record
            .previous_secrets
            .retain(|(_, valid_until)| *valid_until > now);
        let old = std::mem::replace(&mut record.secret, new_secret);
        if grace_ms == 0 {
            // A rotation without grace is what an operator does after a leak: every earlier
            // secret stops signing at once.
            record.previous_secrets.clear();
        } else {
            record
                .previous_secrets
                .push((old, now.saturating_add(grace_ms)));
        }
    })
    .await?;
    tracing::info!(endpoint_id = %entry.id, grace_ms, "endpoint secret rotated");
    Ok(Json(secret_view(&entry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_checks() {
        let loopback = AddressPolicy::new(vec![crate::parse_network("127.0.0.0/8").unwrap()]);
        let strict = AddressPolicy::default();
        assert!(check_url("https://hooks.example.com/belter", &strict).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x?y=1", &loopback).is_ok());
        let message = check_url("http://10.0.0.1/", &loopback)
            .unwrap_err()
            .message;
        assert!(message.contains("allow_networks"), "{message}");
        let cases = [
            ("ftp://example.com/", "http or https"),
            ("https://user:pw@example.com/", "passwords"),
            ("not a url", "invalid url"),
            ("https://", "invalid url"),
            ("file:///etc/passwd", "http or https"),
            ("http:///hooks", "host right after the scheme"),
            ("http://\t/example.com/hooks", "control characters"),
            ("http://exam\nple.com/hooks", "control characters"),
            ("http:/example.com/hooks", "host right after the scheme"),
            (
                "https:\\\\example.com\\hooks",
                "host right after the scheme",
            ),
        ];
        for (url, expected) in cases {
            let message = check_url(url, &strict).unwrap_err().message;
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn filter_checks() {
        assert_eq!(check_filter(None).unwrap(), None);
        assert_eq!(check_filter(Some("  ")).unwrap(), None);
        assert_eq!(
            check_filter(Some(" data.level >= 0.8 "))
                .unwrap()
                .as_deref(),
            Some("data.level >= 0.8")
        );
        let message = check_filter(Some("data.level >=")).unwrap_err().message;
        assert!(message.contains("column"), "{message}");
    }

    #[test]
    fn pagerduty_needs_routing_key() {
        let message = check_routing_key(DeliveryFormat::Pagerduty, None)
            .unwrap_err()
            .message;
        assert!(message.contains("routing_key is required"), "{message}");
        assert_eq!(
            check_routing_key(DeliveryFormat::Pagerduty, Some(" R0UT ".to_owned())).unwrap(),
            Some("R0UT".to_owned())
        );
        assert_eq!(
            check_routing_key(DeliveryFormat::Slack, None).unwrap(),
            None
        );
    }

    #[test]
    fn secret_has_prefix_and_32_bytes() {
        let secret = generate_secret().unwrap();
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(decoded.len(), 32);
        assert_ne!(secret, generate_secret().unwrap());
    }
}
