//! Delivery log routes: listing with filters and paging, one delivery in detail, replays, the
//! totals and the event type catalogue.

use std::collections::{BTreeMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use belter_common::api::{
    DeliveryFilter, DeliveryPage, DeliveryQuery, ErrorBody, ReplayRequest, ReplayResponse,
    StatsQuery, TargetCount, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};
use belter_common::duration::parse_duration;
use belter_common::records::{
    Delivery, DeliveryDetail, DeliveryStatus, EventTypeInfo, Stats, StreamEvent, StreamKind,
};
use belter_common::rules::DerivedFrom;
use belter_common::{schema, DeliveryId, EndpointId, EventId, EventType, RuleId, Timestamp};
use serde_json::value::RawValue;

use super::extract;
use crate::api_error::ApiError;
use crate::deliver::{request_headers, AttemptRequest, Signatures};
use crate::formats;
use crate::ready::Presence;
use crate::state::AppState;
use crate::store::{DeliveryRecord, LogScan, ReplayOutcome};

/// Default window of `GET /v1/stats`.
const DEFAULT_STATS_WINDOW: &str = "24h";

/// `GET /v1/event-types`
#[utoipa::path(
    get,
    path = "/v1/event-types",
    tag = "events",
    summary = "List the event types with the JSON Schema of their data",
    responses((status = 200, description = "Every event type", body = Vec<EventTypeInfo>))
)]
pub(super) async fn event_types() -> Json<Vec<EventTypeInfo>> {
    Json(
        EventType::ALL
            .into_iter()
            .map(|kind| EventTypeInfo {
                name: kind,
                description: kind.description().to_owned(),
                schema: schema::json_schema(kind),
            })
            .collect(),
    )
}

/// Whether a delivery, as the API shows it, passes a filter. Time bounds are applied by the scan.
fn matches(filter: &DeliveryFilter, delivery: &Delivery) -> bool {
    if filter
        .status
        .is_some_and(|status| status != delivery.status)
    {
        return false;
    }
    if filter.event.is_some_and(|kind| kind != delivery.event_type) {
        return false;
    }
    if filter
        .endpoint
        .as_ref()
        .is_some_and(|endpoint| *endpoint != delivery.endpoint_id)
    {
        return false;
    }
    if let Some(target) = &filter.target {
        let in_url = delivery.target_url.contains(target.as_str());
        let in_id = delivery.endpoint_id.as_str().contains(target.as_str());
        if !in_url && !in_id {
            return false;
        }
    }
    true
}

/// Whether a stored delivery can pass `filter`, checked on the record before the cost of the API
/// view. A pending delivery may show as paused or in flight, so those statuses are left to
/// [`matches`].
fn could_match(filter: &DeliveryFilter, record: &DeliveryRecord) -> bool {
    if filter
        .event
        .is_some_and(|kind| kind.code() != record.event_type)
    {
        return false;
    }
    if filter
        .endpoint
        .as_ref()
        .is_some_and(|endpoint| endpoint.as_str() != record.endpoint_id)
    {
        return false;
    }
    let maybe_paused = matches!(
        record.status,
        DeliveryStatus::Pending | DeliveryStatus::Paused | DeliveryStatus::InFlight
    );
    if !maybe_paused && filter.status.is_some_and(|status| status != record.status) {
        return false;
    }
    if let Some(target) = &filter.target {
        let found = record.target_url.contains(target.as_str())
            || record.endpoint_id.contains(target.as_str());
        if !found {
            return false;
        }
    }
    true
}

/// Rejects a time window that nothing can match, so that a reversed `since` and `until` get an
/// error instead of an empty result.
fn check_window(filter: &DeliveryFilter) -> Result<(), String> {
    match (filter.since, filter.until) {
        (Some(since), Some(until)) if since >= until => Err(format!(
            "empty time window: since {since} is not before until {until}, so no delivery can \
             match: swap the two times"
        )),
        _ => Ok(()),
    }
}

/// Walks the log newest first and calls `visit` with each delivery that passes `filter`, until
/// it returns `false`.
fn scan_filtered(
    state: &AppState,
    filter: &DeliveryFilter,
    cursor: Option<DeliveryId>,
    mut visit: impl FnMut(Delivery, &DeliveryRecord) -> bool,
) -> Result<(), ApiError> {
    let scan = LogScan {
        since: filter.since,
        until: filter.until,
        cursor,
    };
    state.store.scan_log(&scan, |id, record| {
        if !could_match(filter, &record) {
            return true;
        }
        let delivery = state.delivery_view(&id, &record);
        if !matches(filter, &delivery) {
            return true;
        }
        visit(delivery, &record)
    })?;
    Ok(())
}

/// `GET /v1/deliveries`: one page, newest first.
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    summary = "List deliveries, newest first, one page at a time",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = DeliveryPage),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 503, description = "The store cannot complete the request", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<DeliveryPage>, ApiError> {
    let query: DeliveryQuery = extract::query(raw.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: use 1 to {MAX_PAGE_LIMIT}"
        )));
    }
    let limit = limit as usize;
    let filter = query.filter();
    check_window(&filter).map_err(ApiError::bad_request)?;
    let mut deliveries = Vec::with_capacity(limit.min(64));
    let mut more = false;
    scan_filtered(&state, &filter, query.cursor.clone(), |delivery, _| {
        if deliveries.len() == limit {
            more = true;
            return false;
        }
        deliveries.push(delivery);
        true
    })?;
    let next_cursor = if more {
        deliveries.last().map(|delivery| delivery.id.clone())
    } else {
        None
    };
    Ok(Json(DeliveryPage {
        deliveries,
        next_cursor,
    }))
}

/// The message of every unknown or pruned delivery id.
fn not_found(id: &DeliveryId) -> ApiError {
    ApiError::not_found(format!("delivery {id} not found or past retention"))
}

/// `GET /v1/deliveries/{id}`: payload, request headers and every attempt.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    summary = "Show one delivery with its payload, request headers and attempts",
    params(("id" = DeliveryId, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such delivery, or past retention", body = ErrorBody),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let id = extract::delivery_id(&id)?;
    let record = state.store.delivery(&id)?.ok_or_else(|| not_found(&id))?;
    let event = state
        .store
        .event(&record.event_id)?
        .ok_or_else(|| not_found(&id))?;
    let attempts = state.store.attempts(&id, &record)?;
    let endpoint = state
        .endpoints
        .get(&EndpointId::parse(&record.endpoint_id).map_err(ApiError::store)?);
    // The payload is the body as sent: the endpoint's format applied to the stored event, with
    // a PagerDuty routing key masked, because it is a credential.
    let body = match &endpoint {
        Some(entry) => formats::render(
            entry.record.format,
            &event.body,
            entry
                .record
                .routing_key
                .as_ref()
                .map(|_| formats::MASKED_ROUTING_KEY),
        ),
        None => event.body.clone(),
    };
    let payload =
        RawValue::from_string(String::from_utf8_lossy(&body).into_owned()).map_err(|error| {
            ApiError::store(format!(
                "stored body of event {} is not JSON: {error}",
                record.event_id
            ))
        })?;

    let kind = record.kind();
    let now = Timestamp::now();
    let secrets = endpoint
        .as_ref()
        .map(|entry| entry.record.signing_secrets(now.as_millis()))
        .unwrap_or_default();
    let request = AttemptRequest {
        url: &record.target_url,
        parsed_url: None,
        body: bytes::Bytes::from(body.clone()),
        secrets,
        signing_key: endpoint.as_ref().map(|entry| &entry.signing_key),
        event_type: kind.as_str(),
        event_id: &record.event_id,
        delivery_id: id.as_str(),
        attempt: attempts.last().map_or(1, |last| last.number),
        standard_webhooks: endpoint
            .as_ref()
            .is_some_and(|entry| entry.record.standard_webhooks),
    };
    let signatures = match attempts.last() {
        Some(last) => Signatures {
            belter: last.signature.clone(),
            standard: last.standard_signature.clone(),
        },
        None => Signatures::compute(&request, now.as_millis() / 1_000),
    };
    let headers = request_headers(&request, &signatures);
    Ok(Json(DeliveryDetail {
        delivery: state.delivery_view(&id, &record),
        payload,
        request_headers: headers,
        attempts: attempts.iter().map(|attempt| attempt.to_api()).collect(),
        derived_from: event.derived_from.as_ref().and_then(|(rule_id, event_id)| {
            Some(DerivedFrom {
                rule_id: RuleId::parse(rule_id).ok()?,
                event_id: EventId::parse(event_id).ok()?,
            })
        }),
    }))
}

/// Tally of one replay, per target URL.
#[derive(Default)]
struct ReplayTally {
    queued: u64,
    skipped: u64,
    skipped_in_flight: u64,
    skipped_no_endpoint: u64,
    paused: u64,
    targets: BTreeMap<String, u64>,
    /// Endpoints with a delivery queued, whose due index the scheduler reads after the flush.
    endpoints: HashSet<EndpointId>,
}

impl ReplayTally {
    /// Flushes the queued replays, then requests a read of their endpoints' due index. The
    /// response follows the flush, so a replay reported as queued survives a crash.
    async fn commit(&self, state: &AppState) -> Result<(), ApiError> {
        if self.endpoints.is_empty() {
            return Ok(());
        }
        let flushed = state.flusher.flush().await;
        // The scheduler reads the due index even after a failed flush, because the replays
        // were written and may be sent like any other due entry.
        for endpoint in &self.endpoints {
            state.ready.request_scan(endpoint);
        }
        state.wake_scheduler.notify_one();
        flushed.map_err(ApiError::store)
    }

    /// Counts a delivery queued for `url`, whose endpoint may be paused.
    fn count_queued(&mut self, url: &str, paused: bool) {
        self.queued += 1;
        self.paused += u64::from(paused);
        *self.targets.entry(url.to_owned()).or_default() += 1;
    }

    /// Counts a delivery skipped because its attempt runs now.
    fn count_in_flight(&mut self) {
        self.skipped += 1;
        self.skipped_in_flight += 1;
    }

    fn into_response(self, dry_run: bool) -> ReplayResponse {
        let mut targets: Vec<TargetCount> = self
            .targets
            .into_iter()
            .map(|(url, count)| TargetCount { url, count })
            .collect();
        targets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.url.cmp(&b.url)));
        ReplayResponse {
            queued: self.queued,
            skipped: self.skipped,
            skipped_in_flight: self.skipped_in_flight,
            skipped_no_endpoint: self.skipped_no_endpoint,
            paused: self.paused,
            targets,
            dry_run,
        }
    }
}

/// Queues one delivery for a replay, or with `dry_run` only counts it.
fn replay_delivery(
    state: &AppState,
    id: &DeliveryId,
    record: &DeliveryRecord,
    dry_run: bool,
    tally: &mut ReplayTally,
) -> Result<(), ApiError> {
    let endpoint = EndpointId::parse(&record.endpoint_id)
        .ok()
        .and_then(|endpoint| state.endpoints.get(&endpoint));
    let Some(endpoint) = endpoint else {
        tally.skipped += 1;
        tally.skipped_no_endpoint += 1;
        return Ok(());
    };
    // A replay goes to the endpoint's current URL, so a receiver that moved gets it there.
    let target = &endpoint.record.url;
    if dry_run {
        if state.ready.is_running(&endpoint.id, id) {
            tally.count_in_flight();
        } else {
            tally.count_queued(target, endpoint.record.paused);
        }
        return Ok(());
    }
    // A running attempt decides what comes next itself; a delivery waiting in memory is taken
    // out, so the attempt that follows is the replay.
    if state.ready.withdraw(&endpoint.id, id) == Presence::Running {
        tally.count_in_flight();
        return Ok(());
    }
    let was_waiting = record.next_attempt_at.is_some();
    let outcome = state
        .store
        .requeue(id, target, Timestamp::now().as_millis());
    tally.endpoints.insert(endpoint.id.clone());
    match outcome? {
        ReplayOutcome::Queued(updated) => {
            // The replay wrote the due entry it needs, so the indexer need not write the first.
            state.ready.settled(id);
            if !was_waiting {
                state.add_waiting(1);
            }
            tally.count_queued(&updated.target_url, endpoint.record.paused);
            state.publish_with(|| StreamEvent {
                kind: StreamKind::DeliveryUpdated,
                delivery: Some(state.delivery_view(id, &updated)),
                attempt: None,
                missed: None,
            });
            tracing::info!(delivery_id = %id, endpoint_id = %updated.endpoint_id, "replay queued");
        }
        ReplayOutcome::NotFound => tally.skipped += 1,
    }
    Ok(())
}

/// Rejects a query string on a replay route, which takes none.
/// `POST /v1/deliveries/{id}/replay`
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/replay",
    tag = "deliveries",
    summary = "Queue one delivery for a new attempt now",
    params(("id" = DeliveryId, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "What was queued or skipped", body = ReplayResponse),
        (status = 400, description = "Invalid id, or a query string", body = ErrorBody),
        (status = 422, description = "A request body other than {}", body = ErrorBody),
        (status = 404, description = "No such delivery, or past retention", body = ErrorBody),
    )
)]
pub(super) async fn replay_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<ReplayResponse>, ApiError> {
    let id = extract::delivery_id(&id)?;
    // This route has no options, so a dry run requested here must not send anything.
    let dry_run_fix =
        format!("for a dry run, POST /v1/replay with {{\"ids\": [\"{id}\"], \"dry_run\": true}}");
    extract::no_query(raw.as_deref(), &dry_run_fix)?;
    extract::no_body(&body, &dry_run_fix)?;
    let record = state.store.delivery(&id)?.ok_or_else(|| not_found(&id))?;
    let mut tally = ReplayTally::default();
    let replayed = replay_delivery(&state, &id, &record, false, &mut tally);
    tally.commit(&state).await?;
    replayed?;
    Ok(Json(tally.into_response(false)))
}

/// `POST /v1/replay`: by ids, or every delivery a filter matches.
#[utoipa::path(
    post,
    path = "/v1/replay",
    tag = "deliveries",
    summary = "Queue deliveries by id or by filter for a new attempt now",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "What was queued or skipped", body = ReplayResponse),
        (status = 400, description = "A query string; options go in the body", body = ErrorBody),
        (status = 422, description = "Invalid request body, naming the field", body = ErrorBody),
    )
)]
pub(super) async fn replay_many(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<ReplayResponse>, ApiError> {
    // Options go in the body. A dry run requested in the query must not send anything.
    extract::no_query(
        raw.as_deref(),
        "put \"dry_run\": true and the other options in the JSON body",
    )?;
    let request: ReplayRequest = extract::json(&body)?;
    if !request.ids.is_empty() && request.filter.is_some() {
        return Err(ApiError::unprocessable(
            "both \"ids\" and \"filter\" given: give one of them, or send two requests",
        ));
    }
    let mut tally = ReplayTally::default();
    if !request.ids.is_empty() {
        // Every id is checked before any is queued, so an unknown id queues nothing, and an id
        // given twice is replayed once.
        let mut records = Vec::with_capacity(request.ids.len());
        let mut seen = HashSet::new();
        for id in &request.ids {
            let record = state.store.delivery(id)?.ok_or_else(|| not_found(id))?;
            if seen.insert(id.clone()) {
                records.push((id, record));
            }
        }
        let replayed = records.iter().try_for_each(|(id, record)| {
            replay_delivery(&state, id, record, request.dry_run, &mut tally)
        });
        tally.commit(&state).await?;
        replayed?;
    } else if let Some(filter) = &request.filter {
        check_window(filter).map_err(ApiError::unprocessable)?;
        let mut matched = Vec::new();
        scan_filtered(&state, filter, None, |delivery, record| {
            matched.push((delivery.id, record.clone()));
            true
        })?;
        let replayed = matched.iter().try_for_each(|(id, record)| {
            replay_delivery(&state, id, record, request.dry_run, &mut tally)
        });
        tally.commit(&state).await?;
        replayed?;
    } else {
        return Err(ApiError::unprocessable(
            "nothing to replay: give \"ids\", or a \"filter\" (an empty filter {} matches every delivery)",
        ));
    }
    Ok(Json(tally.into_response(request.dry_run)))
}

/// `GET /v1/stats`: attempt outcomes over a window, 24 h by default.
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "deliveries",
    summary = "Count attempt outcomes over a window, 24 h by default",
    params(StatsQuery),
    responses(
        (status = 200, description = "The totals", body = Stats),
        (status = 400, description = "Invalid window", body = ErrorBody),
    )
)]
pub(super) async fn stats(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Stats>, ApiError> {
    let query: StatsQuery = extract::query(raw.as_deref())?;
    let window_text = query.window.as_deref().unwrap_or(DEFAULT_STATS_WINDOW);
    let window = parse_duration(window_text)
        .ok()
        .filter(|window| !window.is_zero())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid window {window_text:?}: use a duration such as 15m, 24h or 7d"
            ))
        })?;
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let since = Timestamp::now().minus_millis(window_ms);
    let counts = state.store.outcomes_since(since.as_millis())?;
    Ok(Json(Stats {
        window_secs: window.as_secs(),
        since,
        ok: counts.ok,
        failed: counts.failed,
        gave_up: counts.gave_up,
        pending: state.waiting(),
        endpoints: state.endpoints.len() as u64,
    }))
}
