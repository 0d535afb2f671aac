//! Parsing of path ids, query strings and JSON bodies into API errors that name the value, in
//! place of axum's plain-text rejections.

use std::time::Duration;

use belter_common::duration::{format_duration, parse_duration};
use belter_common::{DeliveryId, EndpointId};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::api_error::ApiError;

/// Parses an endpoint id from the path.
pub(super) fn endpoint_id(text: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(text).map_err(|error| ApiError::bad_request(error.to_string()))
}

/// Parses a delivery id from the path.
pub(super) fn delivery_id(text: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(text).map_err(|error| ApiError::bad_request(error.to_string()))
}

/// Parses the `grace` of a rotation into milliseconds, absent meaning none. A grace longer than
/// `max` is rejected with a message that names the value given.
pub(super) fn grace(text: Option<&str>, max: Duration) -> Result<u64, ApiError> {
    let Some(text) = text else {
        return Ok(0);
    };
    let grace =
        parse_duration(text).map_err(|error| ApiError::unprocessable(format!("grace: {error}")))?;
    if grace > max {
        return Err(ApiError::unprocessable(format!(
            "grace {text:?} is longer than the maximum of {}",
            format_duration(max)
        )));
    }
    Ok(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX))
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

/// Parses a JSON request body, which must be an object; an empty body reads as `{}`.
pub(super) fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    // serde also reads a struct from a JSON array of its fields in order, which would let
    // `["http://…", "*"]` create an endpoint with fields no one named. Other JSON values get
    // the same message, in place of serde's, which names the Rust type.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        if let Err(error) = serde_json::from_slice::<IgnoredAny>(bytes) {
            return Err(ApiError::bad_request(format!("invalid JSON: {error}")));
        }
        let found = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(ApiError::unprocessable(format!(
            "invalid request body: expected a JSON object with named fields, got {found}"
        )));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::unprocessable(format!("invalid request body: {error}"))
        } else {
            ApiError::bad_request(format!("invalid JSON: {error}"))
        }
    })
}

/// Rejects a query string on a route that takes none, so that an option such as `dry_run`
/// sent there never goes unread. `fix` is the advice the error ends with.
pub(super) fn no_query(raw: Option<&str>, fix: &str) -> Result<(), ApiError> {
    match raw {
        Some(query) if !query.is_empty() => Err(ApiError::bad_request(format!(
            "this route takes no query parameters: {fix}"
        ))),
        _ => Ok(()),
    }
}

/// Rejects a query string on a route that takes its options in the JSON body, so that
/// `?grace=1h` is not lost while the change goes ahead without it.
pub(super) fn options_in_body(raw: Option<&str>) -> Result<(), ApiError> {
    no_query(
        raw,
        "put the options in the JSON body, such as {\"grace\": \"1h\"} or {\"paused\": true}",
    )
}

/// Rejects a request body other than none or `{}` on a route that takes none, so that an
/// option such as `dry_run` sent there never goes unread. `fix` is the advice the error ends with.
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

#[cfg(test)]
mod tests {
    use belter_common::api::UpdateEndpoint;

    use super::*;

    #[test]
    fn json_takes_objects_only() {
        let update: UpdateEndpoint = json(b" ").unwrap();
        assert_eq!(update.url, None);
        let update: UpdateEndpoint = json(br#"{"description": "billing"}"#).unwrap();
        assert_eq!(update.description.as_deref(), Some("billing"));
        for body in [&b"[]"[..], b" [\"http://127.0.0.1:9/hook\"]"] {
            let error = json::<UpdateEndpoint>(body).unwrap_err();
            assert!(error.message.contains("got an array"), "{}", error.message);
        }
        let cases = [
            (&b"\"url\""[..], "got a string"),
            (b"42", "got a number"),
            (b"true", "got a boolean"),
            (b"null", "got null"),
        ];
        for (body, expected) in cases {
            let error = json::<UpdateEndpoint>(body).unwrap_err();
            assert!(error.message.contains(expected), "{}", error.message);
            assert!(!error.message.contains("struct"), "{}", error.message);
        }
        let error = json::<UpdateEndpoint>(b"[1,").unwrap_err();
        assert!(
            error.message.starts_with("invalid JSON"),
            "{}",
            error.message
        );
    }

    #[test]
    fn no_body_takes_empty_object() {
        assert!(no_body(b"", "fix").is_ok());
        assert!(no_body(b" {} ", "fix").is_ok());
        let error = no_body(br#"{"dry_run": true}"#, "send none").unwrap_err();
        assert!(error.message.ends_with(": send none"), "{}", error.message);
    }

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    #[test]
    fn grace_over_maximum_names_value() {
        let message = grace(Some("8d"), WEEK).unwrap_err().message;
        assert_eq!(message, "grace \"8d\" is longer than the maximum of 7d");
    }

    #[test]
    fn grace_parses_milliseconds() {
        assert_eq!(grace(None, WEEK).unwrap(), 0);
        assert_eq!(grace(Some("1h"), WEEK).unwrap(), 3_600_000);
        assert_eq!(grace(Some("7d"), WEEK).unwrap(), 604_800_000);
        let message = grace(Some("soon"), WEEK).unwrap_err().message;
        assert!(message.starts_with("grace: "), "{message}");
    }
}
