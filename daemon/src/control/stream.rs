//! `GET /v1/stream`: one JSON line per delivery change or attempt result, until the client
//! leaves or the daemon stops.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use belter_common::records::{StreamEvent, StreamKind};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// `GET /v1/stream`
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "deliveries",
    summary = "Follow deliveries and attempts live, one JSON line per change",
    responses((
        status = 200,
        description = "Newline-delimited JSON, one stream event per line, until the daemon stops",
        body = StreamEvent,
        content_type = "application/x-ndjson"
    ))
)]
pub(super) async fn stream(State(state): State<AppState>) -> Response {
    let receiver = state.stream.subscribe();
    let shutdown = state.shutdown.clone();
    let lines = stream::unfold(
        (receiver, shutdown),
        |(mut receiver, shutdown)| async move {
            let event = tokio::select! {
                () = shutdown.cancelled() => return None,
                received = receiver.recv() => match received {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => StreamEvent {
                        kind: StreamKind::Lagged,
                        delivery: None,
                        attempt: None,
                        missed: Some(missed),
                    },
                    Err(RecvError::Closed) => return None,
                },
            };
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            Some((Ok::<_, std::io::Error>(line), (receiver, shutdown)))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
