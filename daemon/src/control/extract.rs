//! Parsing of path ids, query strings and JSON bodies into API errors that name the value, in
//! place of axum's plain-text rejections.

use belter_common::{DeliveryId, EndpointId};
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;

/// Parses an endpoint id from the path.
pub(super) fn endpoint_id(text: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(text).map_err(|error| ApiError::bad_request(error.to_string()))
}

/// Parses a delivery id from the path.
pub(super) fn delivery_id(text: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(text).map_err(|error| ApiError::bad_request(error.to_string()))
}

/// Parses a query string, absent meaning empty.
pub(super) fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let text = raw.unwrap_or_default();
    serde_urlencoded::from_str(text).map_err(|error| {
        let shown: String = text.chars().take(200).collect();
        ApiError::bad_request(format!(
            "invalid query {shown:?}: {error}; limit takes a whole number from 1, status and event take their names, and times take RFC 3339 or Unix milliseconds"
        ))
    })
}

/// Parses a JSON request body; an empty body reads as `{}`.
pub(super) fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::unprocessable(format!("invalid request body: {error}"))
        } else {
            ApiError::bad_request(format!("invalid JSON: {error}"))
        }
    })
}

/// Rejects a query string on a route that takes none, so that an option such as `dry_run`
/// sent there never goes unread. `fix` tells the client what to send instead.
pub(super) fn no_query(raw: Option<&str>, fix: &str) -> Result<(), ApiError> {
    match raw {
        Some(query) if !query.is_empty() => Err(ApiError::bad_request(format!(
            "this route takes no query parameters: {fix}"
        ))),
        _ => Ok(()),
    }
}

/// Rejects a request body other than none or `{}` on a route that takes none, so that an
/// option such as `dry_run` sent there never goes unread. `fix` tells the client what to send instead.
pub(super) fn no_body(body: &[u8], fix: &str) -> Result<(), ApiError> {
    let empty_object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|object| object.is_empty());
    if body.trim_ascii().is_empty() || empty_object {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "this route takes no request body, or {{}}: {fix}"
        )))
    }
}
