//! The ingest API: services post events, the daemon validates them, stores the event with one
//! delivery per subscribed endpoint, flushes, and only then responds 202.

use std::cell::OnceCell;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use belter_common::api::{
    DerivedEvent, ErrorBody, IngestBatchRequest, IngestBatchResponse, IngestRequest, IngestResponse,
};
use belter_common::records::{Health, StreamEvent, StreamKind};
use belter_common::{
    headers, quick_check, schema, unique_keys, DeliveryId, EndpointId, EventId, EventType,
    Timestamp,
};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::api_error::ApiError;
use crate::envelope::Envelope;
use crate::flush::{IdempotencyOwned, WriteError};
use crate::ready::Work;
use crate::routes::{self, Route};
use crate::rules::threshold::find_breaches;
use crate::state::AppState;
use crate::store::{IngestWrite, NewDelivery, NewEvent, NewEventWrite};

/// Maximum time an ingest request body may take to arrive, so a slow client cannot hold a
/// connection and its buffer open.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Maximum idempotency key length, in bytes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Maximum events in one batch request.
const MAX_BATCH_EVENTS: usize = 1_000;

/// A batch body may be this many times `max_body_bytes`.
const BATCH_BODY_FACTOR: usize = 16;

/// Every route of the TCP ingest listener: token-protected ingest, health, metrics and the API
/// document.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/events", ingest_with_token),
        Route::post("/v1/events/batch", ingest_batch_with_token),
        Route::get("/healthz", health),
        Route::get("/metrics", crate::metrics::scrape),
        Route::get("/v1/openapi.json", crate::openapi::serve),
    ]
}

/// The router of the TCP ingest listener.
pub(crate) fn router(state: AppState) -> Router {
    routes::router(routes(), state).fallback(crate::api_error::ingest_route_not_found)
}

/// Accepts one event. The control socket serves the same route without a token.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    summary = "Accept one event and create its deliveries",
    description = "Validates the event against its type's schema, stores it with one delivery \
                   per subscribed endpoint, flushes the store, and only then responds. The \
                   ingest listener requires the bearer token; the control socket takes none.",
    request_body = IngestRequest,
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Repeating a key returns the first response with Idempotent-Replayed: true"
    )),
    security(("bearer" = []), ()),
    responses(
        (status = 202, description = "Stored and flushed", body = IngestResponse),
        (status = 400, description = "Invalid JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 413, description = "Body larger than max_body_bytes", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "The event breaks its schema, or an object in data repeats a key", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
async fn ingest_with_token(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_token(&state, &request_headers)?;
    ingest(&state, &request_headers, body, Shape::One).await
}

/// Accepts a batch of events. The control socket serves the same route without a token.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "events",
    summary = "Accept up to 1,000 events at once and create their deliveries",
    description = "Validates every event as POST /v1/events does. One invalid event rejects \
                   the whole batch, and the error names its index, so nothing of the batch is \
                   stored. Otherwise every event is stored and flushed before the one \
                   response. The body may be 16 times max_body_bytes, and each event at \
                   most max_body_bytes.",
    request_body = IngestBatchRequest,
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Repeating a key returns the first response with Idempotent-Replayed: true"
    )),
    security(("bearer" = []), ()),
    responses(
        (status = 202, description = "Stored and flushed, events in request order", body = IngestBatchResponse),
        (status = 400, description = "Invalid JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 413, description = "Body larger than 16 times max_body_bytes, or an event larger than max_body_bytes", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "An event breaks its schema or repeats a key in data, or the batch is empty or too long", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
async fn ingest_batch_with_token(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_token(&state, &request_headers)?;
    ingest(&state, &request_headers, body, Shape::Batch).await
}

/// The control socket's ingest route, for local services: no token.
pub(crate) async fn ingest_local(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(&state, &request_headers, body, Shape::One).await
}

/// Serves the control socket's batch ingest route, which takes no token.
pub(crate) async fn ingest_batch_local(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ingest(&state, &request_headers, body, Shape::Batch).await
}

/// `GET /healthz` on both listeners.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "daemon",
    summary = "Report that the daemon serves, with its version and addresses",
    responses((status = 200, description = "The daemon serves", body = Health))
)]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: state.started_at,
        ingest_addr: state.ingest_addr.to_string(),
        data_dir: state.config.data_dir.display().to_string(),
    })
}

fn check_token(state: &AppState, request_headers: &HeaderMap) -> Result<(), ApiError> {
    let fix = "send Authorization: Bearer <token>, with the token from the daemon's config or \
               its data directory's ingest.token file";
    let Some(value) = request_headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(format!("missing Authorization header: {fix}")));
    };
    // The scheme name is case-insensitive in HTTP, so `bearer` and `BEARER` are accepted too.
    let presented = value
        .to_str()
        .ok()
        .and_then(|text| text.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if !state
        .ingest_tokens
        .accepts(presented, Timestamp::now().as_millis())
    {
        return Err(unauthorized(format!("invalid ingest token: {fix}")));
    }
    Ok(())
}

fn unauthorized(message: String) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

/// A checked ingest request.
struct ValidEvent<'a> {
    kind: EventType,
    raw_data: &'a str,
    /// `data` as a value. An event that passed the quick check starts without one, and it is
    /// built when a filter or a threshold rule first reads it.
    data: OnceCell<serde_json::Value>,
}

impl ValidEvent<'_> {
    fn data(&self) -> &serde_json::Value {
        self.data
            .get_or_init(|| match unique_keys::parse(self.raw_data, "data") {
                Ok(data) => data,
                Err(error) => {
                    // The quick check accepts only data that parses, so reaching this branch
                    // means a bug in the quick check.
                    tracing::error!(%error, kind = %self.kind, "event data that passed the quick check does not parse, so filters and rules read it as null");
                    serde_json::Value::Null
                }
            })
    }
}

/// Builds the stored body of an event: `{"id", "event", "created_at", "data"}`, with `data`
/// written byte for byte as given.
fn stored_body(id: &EventId, kind: EventType, created_at: Timestamp, raw_data: &str) -> Vec<u8> {
    let created = created_at.to_rfc3339();
    let parts = [
        r#"{"id":""#,
        id.as_str(),
        r#"","event":""#,
        kind.as_str(),
        r#"","created_at":""#,
        &created,
        r#"","data":"#,
        raw_data,
        "}",
    ];
    let mut body = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        body.extend_from_slice(part.as_bytes());
    }
    body
}

/// Lists the endpoints that take an event: each one that subscribes to `kind` and whose filter
/// passes `data`, with its URL.
fn targets<'v>(
    state: &AppState,
    kind: EventType,
    data: &dyn Fn() -> &'v serde_json::Value,
) -> Vec<(EndpointId, String)> {
    state.endpoints.subscribers(kind, data)
}

/// An event to write, with the endpoints its deliveries go to. The delivery ids are given once
/// the whole request is planned, so that they form one run.
struct PlannedWrite {
    event: NewEvent,
    targets: Vec<(EndpointId, String)>,
    derived_from: Option<(String, String)>,
}

/// Derives the `score.threshold_breached` events of an evaluation from the threshold rules.
fn derive_breaches(
    state: &AppState,
    source: &EventId,
    created_at: Timestamp,
    valid: &ValidEvent<'_>,
) -> Vec<PlannedWrite> {
    let kind = EventType::ScoreThresholdBreached;
    let rules = state.rules.evaluator_rules();
    if rules.is_empty() {
        // Without rules, the data is not read, so it is not built either.
        return Vec::new();
    }
    find_breaches(&rules, valid.data(), source.as_str())
        .into_iter()
        .map(|breach| {
            let id = EventId::generate();
            let raw = breach.data.to_string();
            PlannedWrite {
                event: NewEvent {
                    body: stored_body(&id, kind, created_at, &raw),
                    id,
                    kind,
                    created_at: created_at.as_millis(),
                },
                targets: targets(state, kind, &|| &breach.data),
                derived_from: Some((breach.rule_id, source.to_string())),
            }
        })
        .collect()
}

/// Whether a request carries one event or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    One,
    Batch,
}

/// Plans the writes of one validated event: the event and the events derived from it.
fn event_writes(
    state: &AppState,
    valid: &ValidEvent<'_>,
    event_id: EventId,
    created_at: Timestamp,
) -> Vec<PlannedWrite> {
    let mut writes = vec![PlannedWrite {
        event: NewEvent {
            id: event_id.clone(),
            kind: valid.kind,
            created_at: created_at.as_millis(),
            body: stored_body(&event_id, valid.kind, created_at, valid.raw_data),
        },
        targets: targets(state, valid.kind, &|| valid.data()),
        derived_from: None,
    }];
    if valid.kind == EventType::EvaluationCompleted {
        writes.extend(derive_breaches(state, &event_id, created_at, valid));
    }
    writes
}

/// Gives the planned deliveries of a request their ids, one run for the whole request so that
/// the store keeps them in one record group, and builds each event's part of the response.
/// `planned` holds, per accepted event, the event and then the events derived from it.
fn with_delivery_ids(planned: Vec<Vec<PlannedWrite>>) -> (Vec<NewEventWrite>, Vec<IngestResponse>) {
    let count = planned
        .iter()
        .flatten()
        .map(|write| write.targets.len())
        .sum();
    let mut ids = DeliveryId::generate_run(count).into_iter();
    let mut writes = Vec::with_capacity(planned.iter().map(Vec::len).sum());
    let mut answers = Vec::with_capacity(planned.len());
    for event_writes in planned {
        let first = writes.len();
        for write in event_writes {
            let deliveries = write
                .targets
                .into_iter()
                .zip(ids.by_ref())
                .map(|((endpoint_id, target_url), id)| NewDelivery {
                    id,
                    endpoint_id,
                    target_url,
                    deferred: false,
                })
                .collect();
            writes.push(NewEventWrite {
                event: write.event,
                deliveries,
                derived_from: write.derived_from,
            });
        }
        let ids_of = |write: &NewEventWrite| -> Vec<DeliveryId> {
            write
                .deliveries
                .iter()
                .map(|delivery| delivery.id.clone())
                .collect()
        };
        answers.push(IngestResponse {
            event_id: writes[first].event.id.clone(),
            deliveries: ids_of(&writes[first]),
            derived: writes[first + 1..]
                .iter()
                .map(|write| DerivedEvent {
                    event_id: write.event.id.clone(),
                    event: write.event.kind,
                    deliveries: ids_of(write),
                })
                .collect(),
        });
    }
    (writes, answers)
}

async fn ingest(
    state: &AppState,
    request_headers: &HeaderMap,
    body: Body,
    shape: Shape,
) -> Result<Response, ApiError> {
    check_content_type(request_headers)?;
    let idempotency_key = idempotency_key(request_headers)?;
    let limit = match shape {
        Shape::One => state.config.max_body_bytes,
        Shape::Batch => state
            .config
            .max_body_bytes
            .saturating_mul(BATCH_BODY_FACTOR),
    };
    let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body, limit, shape))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s: send the whole body at once",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            )
        })??;
    let valid = match shape {
        Shape::One => vec![parse_event(&bytes)?],
        Shape::Batch => parse_batch(&bytes, state.config.max_body_bytes)?,
    };

    let created_at = Timestamp::now();
    // One run of ids per request lets the store keep the request's events in one record group.
    let event_ids = EventId::generate_run(valid.len());
    let planned = valid
        .iter()
        .zip(event_ids)
        .map(|(event, event_id)| event_writes(state, event, event_id, created_at))
        .collect();
    let (writes, answers) = with_delivery_ids(planned);
    let encoded = match shape {
        Shape::One => serde_json::to_vec(&answers[0]),
        Shape::Batch => serde_json::to_vec(&IngestBatchResponse { events: answers }),
    };
    let answer_bytes = encoded
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;

    // Only a repeated Idempotency-Key compares bodies, so a request without one skips the hash.
    let fingerprint = match idempotency_key {
        Some(_) => Sha256::digest(&bytes).to_vec(),
        None => Vec::new(),
    };
    let accepted = Accepted {
        writes,
        idempotency_key,
        fingerprint,
        answer_bytes,
        events: valid.len(),
    };
    // A client that closes its connection drops this handler. The write and the hand-over run
    // in a task of their own, so a stored delivery always reaches its lane or the due index.
    tokio::spawn(accepted.store(state.clone()))
        .await
        .map_err(|error| {
            tracing::error!(%error, "the ingest write task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the ingest write task failed: {error}"),
            )
        })?
}

/// A validated ingest request, ready to store.
struct Accepted {
    writes: Vec<NewEventWrite>,
    idempotency_key: Option<String>,
    /// SHA-256 of the request body, or empty without an idempotency key.
    fingerprint: Vec<u8>,
    /// The 202 response body.
    answer_bytes: Vec<u8>,
    /// Events in the request, derived ones not included.
    events: usize,
}

impl Accepted {
    /// Writes the events and their deliveries, waits for the flush, and hands the deliveries
    /// to their ready lanes. Returns the response.
    async fn store(self, state: AppState) -> Result<Response, ApiError> {
        let Self {
            mut writes,
            idempotency_key,
            fingerprint,
            answer_bytes,
            events,
        } = self;
        let state = &state;
        let idempotency = idempotency_key.clone().map(|key| IdempotencyOwned {
            key,
            response: answer_bytes.clone(),
            fingerprint: fingerprint.clone(),
        });
        let reserved: Vec<(EndpointId, DeliveryId)> = writes
            .iter()
            .flat_map(|write| &write.deliveries)
            .map(|delivery| (delivery.endpoint_id.clone(), delivery.id.clone()))
            .collect();
        let reserved_refs = || reserved.iter().map(|(endpoint, id)| (endpoint, id));
        state.ready.reserve(reserved_refs());
        state.ready.defer(&mut writes, |endpoint| {
            state
                .endpoints
                .get(endpoint)
                .is_some_and(|entry| !entry.record.paused)
        });
        let written = state.flusher.write(writes, idempotency).await;
        let (written, mut writes) = match written {
            Ok(written) => written,
            Err(error) => {
                state.ready.unreserve(reserved_refs());
                return Err(match error {
                    WriteError::Store(message) => ApiError::store(message),
                    WriteError::Flush(error) => ApiError::not_flushed(error),
                });
            }
        };
        if let IngestWrite::Duplicate {
            response,
            fingerprint: first,
        } = written
        {
            // Nothing was written, so nothing is handed over.
            state.ready.unreserve(reserved_refs());
            state
                .ready
                .discard_unwritten(reserved.iter().map(|(_, id)| id));
            let key = idempotency_key.unwrap_or_default();
            if first != fingerprint {
                return Err(ApiError::unprocessable(format!(
                    "Idempotency-Key {key:?} was first used with a different body: send a new key for a new event"
                )));
            }
            tracing::debug!(idempotency_key = %key, "repeated idempotency key");
            return Ok(json_answer(response, true));
        }

        let derived = writes
            .iter()
            .filter(|write| write.derived_from.is_some())
            .count();
        let mut offers = Vec::new();
        // Per delivery in write order, whether its lane got its work. The rest are unreserved.
        let mut handed_over = Vec::with_capacity(reserved.len());
        for write in &mut writes {
            let deliveries = &write.deliveries;
            state.add_waiting(i64::try_from(deliveries.len()).unwrap_or(i64::MAX));
            cancel_for_deleted_endpoints(state, write);
            state.metrics.record_event(write.event.kind);
            tracing::debug!(event_id = %write.event.id, event = %write.event.kind, deliveries = deliveries.len(), "event accepted");
            let body = Bytes::from(std::mem::take(&mut write.event.body));
            for delivery in &write.deliveries {
                state.publish_with(|| StreamEvent {
                    kind: StreamKind::DeliveryCreated,
                    delivery: Some(
                        state.delivery_view(&delivery.id, &write.delivery_record(delivery)),
                    ),
                    attempt: None,
                    missed: None,
                });
                // Only deferred deliveries of active endpoints go to their lanes. The others were
                // written with their due entry, because the lane was full, the endpoint inactive,
                // or belterd starting or stopping. The due index hands them over, so no work is
                // built for a lane that would drop it. An endpoint paused since the write also
                // leaves its deliveries to the due index.
                let active = || {
                    state
                        .endpoints
                        .get(&delivery.endpoint_id)
                        .is_some_and(|entry| !entry.record.paused)
                };
                let hand_over = delivery.deferred && active();
                if hand_over {
                    let work = Work {
                        due: write.due_work(delivery),
                        body: Some(body.clone()),
                    };
                    offers.push((delivery.endpoint_id.clone(), work));
                }
                handed_over.push(hand_over);
            }
        }
        state.ready.offer(offers);
        let unheld = writes
            .iter()
            .flat_map(|write| &write.deliveries)
            .zip(handed_over)
            .filter(|(_, handed_over)| !handed_over)
            .map(|(delivery, _)| (&delivery.endpoint_id, &delivery.id));
        state.ready.unreserve(unheld);
        if derived > 0 {
            tracing::info!(
                events,
                breaches = derived,
                "threshold rules derived breach events"
            );
        }
        state.wake_scheduler.notify_one();
        Ok(json_answer(answer_bytes, false))
    }
}

/// Cancels the new deliveries of endpoints deleted while this event was being written. Deletion
/// removes the endpoint before cancelling its queue, so either that cancel or this one finds them.
///
/// Writes the due entry of a deferred delivery first, because a cancel that ran before the write
/// found that entry without its delivery and removed it as stale. That cancel also took the
/// delivery off the unindexed list, so nothing else writes the entry again.
fn cancel_for_deleted_endpoints(state: &AppState, write: &NewEventWrite) {
    for delivery in &write.deliveries {
        let endpoint = &delivery.endpoint_id;
        if state.endpoints.get(endpoint).is_some() {
            continue;
        }
        if delivery.deferred {
            let key = crate::store::due_key(
                endpoint.as_str(),
                write.event.created_at,
                delivery.id.as_str(),
            );
            match state.store.write_due_entries([key.as_slice()]) {
                Ok(()) => state.ready.settled(&delivery.id),
                Err(error) => {
                    tracing::error!(%error, delivery_id = %delivery.id, endpoint_id = %endpoint, "cannot write the due entry of a deleted endpoint's delivery, so it stays pending");
                }
            }
        }
        if let Err(error) = state.cancel_queue(endpoint) {
            tracing::error!(%error, endpoint_id = %endpoint, "cannot cancel deliveries of a deleted endpoint");
        }
    }
}

fn json_answer(body: Vec<u8>, replayed: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        response_headers.insert(
            headers::IDEMPOTENT_REPLAYED,
            HeaderValue::from_static("true"),
        );
    }
    response
}

fn check_content_type(request_headers: &HeaderMap) -> Result<(), ApiError> {
    let value = request_headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = value.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("unsupported Content-Type {value:?}: send Content-Type: application/json"),
    ))
}

fn idempotency_key(request_headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = request_headers.get(headers::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    let valid = !text.is_empty()
        && text.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && text.bytes().all(|byte| byte.is_ascii_graphic());
    if !valid {
        let shown: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(64)
            .collect();
        return Err(ApiError::bad_request(format!(
            "invalid Idempotency-Key {shown:?}: use 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(Some(text.to_owned()))
}

async fn read_limited(
    body: Body,
    max_bytes: usize,
    shape: Shape,
) -> Result<bytes::Bytes, ApiError> {
    let fix = match shape {
        Shape::One => "send a smaller event",
        Shape::Batch => "split the batch",
    };
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {max_bytes} bytes: {fix}, or raise max_body_bytes in the daemon's config"),
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

/// Rejects a body that is not a JSON object: 400 when it does not parse, else 422 with
/// `shape`. serde would read a struct from an array too, so this check comes first.
fn require_object(bytes: &[u8], shape: &str) -> Result<(), ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(());
    }
    Err(
        match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(error) => ApiError::bad_request(format!("invalid JSON: {error}")),
            Ok(_) => ApiError::unprocessable(shape),
        },
    )
}

/// The envelope of a batch body, each event kept raw until it is parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

/// Parses and validates a batch body: an object with `events`, an array of 1 to
/// [`MAX_BATCH_EVENTS`] events, each checked as [`parse_event`] checks one. The first invalid
/// event rejects the batch, with its index in the message.
fn parse_batch(bytes: &[u8], max_event_bytes: usize) -> Result<Vec<ValidEvent<'_>>, ApiError> {
    const SHAPE: &str = "body must be a JSON object with \"events\", an array of events, each with \"event\" and \"data\"";
    require_object(bytes, SHAPE)?;
    let envelope: BatchEnvelope<'_> = serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::unprocessable(format!("{SHAPE}: {error}"))
        } else {
            ApiError::bad_request(format!("invalid JSON: {error}"))
        }
    })?;
    let events = envelope
        .events
        .ok_or_else(|| ApiError::unprocessable(format!("events is required: {SHAPE}")))?;
    if events.is_empty() {
        return Err(ApiError::unprocessable(
            "events is empty: send at least one event",
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::unprocessable(format!(
            "events has {} entries: send at most {MAX_BATCH_EVENTS} per batch",
            events.len()
        )));
    }
    if let Some((index, raw)) = events
        .iter()
        .enumerate()
        .find(|(_, raw)| raw.get().len() > max_event_bytes)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "events[{index}] is {} bytes, larger than the limit of {max_event_bytes} bytes for one event: send a smaller event, or raise max_body_bytes in the daemon's config",
                raw.get().len()
            ),
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            parse_event(raw.get().as_bytes()).map_err(|error| {
                ApiError::new(
                    error.status,
                    format!(
                        "events[{index}] is invalid, so nothing of the batch was stored: {}",
                        error.message
                    ),
                )
            })
        })
        .collect()
}

/// Parses and validates an ingest body: an object with `event`, a known type, and `data`, an
/// object that matches the type's schema and repeats no key at any depth.
fn parse_event(bytes: &[u8]) -> Result<ValidEvent<'_>, ApiError> {
    require_object(
        bytes,
        "body must be a JSON object with \"event\" and \"data\"",
    )?;
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::unprocessable(format!(
                "body must be a JSON object with \"event\" and \"data\": {error}"
            ))
        } else {
            ApiError::bad_request(format!("invalid JSON: {error}"))
        }
    })?;
    let Some(raw_event) = envelope.event else {
        if envelope.events.is_some() {
            return Err(ApiError::unprocessable(
                "event is required: this body has \"events\", so it is a batch; post it to \
                 /v1/events/batch",
            ));
        }
        return Err(ApiError::unprocessable(format!(
            "event is required: name one of {}",
            EventType::names().join(", ")
        )));
    };
    let name: String = serde_json::from_str(raw_event.get()).map_err(|_| {
        ApiError::unprocessable(format!(
            "event must be a string naming the event type, got {}",
            shorten(raw_event.get())
        ))
    })?;
    let kind: EventType = name
        .parse()
        .map_err(|error| ApiError::unprocessable(format!("event: {error}")))?;
    if let Some(key) = envelope.unknown {
        return Err(ApiError::unprocessable(format!(
            "unknown field {key:?}: an event has only \"event\" and \"data\", so move other \
             fields into data. belterd sets each event's id and time itself"
        )));
    }
    let Some(raw_data) = envelope.data else {
        return Err(ApiError::unprocessable(format!(
            "data is required: an object with the fields of {kind}, see GET /v1/event-types"
        )));
    };
    if quick_check::passes(kind, raw_data.get()) {
        return Ok(ValidEvent {
            kind,
            raw_data: raw_data.get(),
            data: OnceCell::new(),
        });
    }
    // A repeated key would let the schema check one value while a receiver reads another.
    let data = unique_keys::parse(raw_data.get(), "data").map_err(|error| match error {
        unique_keys::ParseError::Invalid(error) => {
            ApiError::bad_request(format!("invalid JSON in data: {error}"))
        }
        duplicate @ unique_keys::ParseError::DuplicateKey { .. } => {
            ApiError::unprocessable(duplicate.to_string())
        }
    })?;
    schema::validate(kind, &data).map_err(|error| ApiError::unprocessable(error.to_string()))?;
    Ok(ValidEvent {
        kind,
        raw_data: raw_data.get(),
        data: OnceCell::from(data),
    })
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 64 {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(64).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(body: &str) -> StatusCode {
        match parse_event(body.as_bytes()) {
            Ok(_) => StatusCode::ACCEPTED,
            Err(error) => error.status,
        }
    }

    #[test]
    fn parse_keeps_data_bytes() {
        let body = r#"{"event":"frustration.detected","data":{"conversation_id":"c1", "level":0.9,"threshold":0.7,"extra":[1, 2]}}"#;
        let valid = parse_event(body.as_bytes()).unwrap();
        assert_eq!(valid.kind, EventType::FrustrationDetected);
        assert_eq!(
            valid.raw_data,
            r#"{"conversation_id":"c1", "level":0.9,"threshold":0.7,"extra":[1, 2]}"#
        );
        assert!(valid.data.get().is_none(), "valid data is parsed on demand");
        assert_eq!(valid.data()["extra"], serde_json::json!([1, 2]));
    }

    #[test]
    fn escaped_key_takes_the_full_check() {
        let body = r#"{"event":"frustration.detected","data":{"conversation_id":"c1","level":0.9,"thr\u0065shold":0.7}}"#;
        let valid = parse_event(body.as_bytes()).unwrap();
        assert!(valid.data.get().is_some());
        assert_eq!(valid.data()["threshold"], serde_json::json!(0.7));
    }

    #[test]
    fn rejections_have_their_status() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_data = format!(r#"{{"event":"csat.received","data":{{"x":{deep}}}}}"#);
        let cases = [
            ("{", StatusCode::BAD_REQUEST),
            ("", StatusCode::BAD_REQUEST),
            ("[1]", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"data":{}}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"event":7,"data":{}}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"event":"csat.recieved","data":{}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"event":"csat.received"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"event":"csat.received","data":{"conversation_id":"c"}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (deep.as_str(), StatusCode::UNPROCESSABLE_ENTITY),
            (deep_data.as_str(), StatusCode::BAD_REQUEST),
        ];
        for (body, expected) in cases {
            assert_eq!(status_of(body), expected, "{}", shorten(body));
        }
    }

    #[test]
    fn schema_error_names_field() {
        let body = r#"{"event":"frustration.detected","data":{"conversation_id":"c1","level":"high","threshold":0.7}}"#;
        let error = parse_event(body.as_bytes()).err().unwrap();
        assert!(error.message.contains("data.level"), "{}", error.message);
    }

    #[test]
    fn batch_body_points_at_batch_route() {
        let body = r#"{"events": [{"event": "csat.received", "data": {}}]}"#;
        let error = parse_event(body.as_bytes()).err().unwrap();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error.message.contains("post it to /v1/events/batch"),
            "{}",
            error.message
        );
        let error = parse_event(br#"{"data": {}}"#).err().unwrap();
        assert!(!error.message.contains("batch"), "{}", error.message);
    }

    #[test]
    fn repeated_data_key_is_named() {
        let cases = [
            (
                r#"{"event":"csat.received","data":{"conversation_id":"c","rating":99,"rating":1,"via":"api"}}"#,
                "data.rating appears more than once: send each key once",
            ),
            (
                r#"{"event":"csat.received","data":{"conversation_id":"c","rating":1,"rating":99,"via":"api"}}"#,
                "data.rating appears more than once: send each key once",
            ),
            (
                r#"{"event":"evaluation.completed","data":{"conversation_id":"c","score":90,"rubric_version":1,"criteria":[{"criterion":"a","score":1},{"criterion":"b","score":2,"score":200}]}}"#,
                "data.criteria[1].score appears more than once: send each key once",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_event(body.as_bytes()).err().unwrap();
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(error.message, expected, "{body}");
        }
    }

    #[test]
    fn batch_repeated_data_key_names_index() {
        let valid = belter_common::samples::sample_body(EventType::CsatReceived);
        let repeated = r#"{"event":"csat.received","data":{"conversation_id":"c","rating":99,"rating":1,"via":"api"}}"#;
        let body = format!(r#"{{"events":[{valid},{repeated}]}}"#);

        let error = parse_batch(body.as_bytes(), 1_024).err().unwrap();

        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            error.message,
            "events[1] is invalid, so nothing of the batch was stored: data.rating appears more than once: send each key once"
        );
    }

    #[test]
    fn raw_value_token_is_a_plain_key() {
        // With its `raw_value` feature, serde_json's own `Value` parser reads an object with this
        // key as the JSON text in its value, so the schema would check that text while receivers
        // get the object.
        let body = r#"{"event":"csat.received","data":{"$serde_json::private::RawValue":"{\"conversation_id\":\"c\",\"rating\":1,\"via\":\"api\"}"}}"#;

        let error = parse_event(body.as_bytes()).err().unwrap();

        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error
                .message
                .starts_with("data.conversation_id is required"),
            "{}",
            error.message
        );
    }

    #[test]
    fn samples_are_accepted() {
        for kind in EventType::ALL {
            let body = belter_common::samples::sample_body(kind);
            assert_eq!(status_of(body), StatusCode::ACCEPTED, "{kind}");
        }
    }
}
