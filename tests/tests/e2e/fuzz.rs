//! Property tests of the event parser and validator, through `POST /v1/events` on the control
//! socket: no input gets a 5xx or a dropped connection, a valid event with extra fields in `data`
//! is always accepted, and one with an extra top-level key is always rejected with 422.

use std::cell::RefCell;
use std::collections::BTreeMap;

use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::http::HttpResponse;
use belter_tests::raw::unix_request;
use belter_tests::DaemonProcess;
use hyper::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use tokio::runtime::Runtime;

/// Cases of each property. Each case is one request of a few milliseconds on the socket.
const CASES: u32 = 1_000;

/// Shrink steps after a failure, so that a broken daemon fails the test quickly.
const MAX_SHRINK_ITERS: u32 = 200;

fn config() -> Config {
    Config {
        cases: CASES,
        max_shrink_iters: MAX_SHRINK_ITERS,
        failure_persistence: None,
        ..Config::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.]{0,12}",
        any::<String>(),
        Just(String::new()),
        Just("\u{0}".to_owned()),
    ]
}

/// Any JSON value up to four levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |number| {
            serde_json::Number::from_f64(number).map(Value::Number)
        }),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop::sample::select(EventType::ALL.to_vec())
}

fn sample(kind: EventType) -> Value {
    serde_json::from_str(sample_body(kind)).expect("sample is JSON")
}

/// Ingest bodies of every shape: any JSON, an envelope around any data, and a valid sample with
/// one field replaced or removed.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let any_json = json_value();
    let envelope = (
        prop_oneof![
            event_type().prop_map(|kind| Value::from(kind.as_str())),
            json_value()
        ],
        json_value(),
    )
        .prop_map(|(event, data)| serde_json::json!({ "event": event, "data": data }));
    let mutated = (
        event_type(),
        any::<prop::sample::Index>(),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(kind, field, value, remove)| {
            let mut body = sample(kind);
            if let Some(data) = body["data"].as_object_mut() {
                let keys: Vec<String> = data.keys().cloned().collect();
                let key = field.get(&keys).clone();
                if remove {
                    data.remove(&key);
                } else {
                    data.insert(key, value);
                }
            }
            body
        });
    prop_oneof![any_json, envelope, mutated].prop_map(|body| body.to_string().into_bytes())
}

/// Raw bytes: random ones, and valid samples with a few bytes changed.
fn byte_body() -> impl Strategy<Value = Vec<u8>> {
    let random = prop::collection::vec(any::<u8>(), 0..512);
    let damaged = (
        event_type(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    )
        .prop_map(|(kind, edits)| {
            let mut bytes = sample_body(kind).as_bytes().to_vec();
            for (position, byte) in edits {
                let at = position.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        });
    prop_oneof![random, damaged]
}

/// Extra keys for an object. Every key starts with `x_`, so none replaces a field of the schema.
fn extras() -> impl Strategy<Value = BTreeMap<String, Value>> {
    prop::collection::btree_map("x_[a-z0-9_]{0,10}", json_value(), 1..6)
}

/// Builds valid samples with extra fields in `data`.
fn valid_with_extras() -> impl Strategy<Value = Vec<u8>> {
    (event_type(), extras()).prop_map(|(kind, in_data)| {
        let mut body = sample(kind);
        if let Some(data) = body["data"].as_object_mut() {
            data.extend(in_data);
        }
        body.to_string().into_bytes()
    })
}

/// Builds valid samples with extra keys beside `event` and `data`, which ingest rejects.
fn envelope_with_extras() -> impl Strategy<Value = Vec<u8>> {
    (event_type(), extras()).prop_map(|(kind, in_envelope)| {
        let mut body = sample(kind);
        if let Some(envelope) = body.as_object_mut() {
            let extra: Map<String, Value> = in_envelope.into_iter().collect();
            envelope.extend(extra);
        }
        body.to_string().into_bytes()
    })
}

async fn post_event(daemon: &DaemonProcess, body: Vec<u8>) -> Result<HttpResponse, String> {
    unix_request(
        &daemon.socket_path(),
        Method::POST,
        "/v1/events",
        &[("content-type", "application/json")],
        body,
    )
    .await
    .map_err(|error| format!("{error:#}"))
}

/// Runs `strategy` and fails a case whose response is a 5xx or missing, or fails `accept`.
fn check_property(
    runtime: &Runtime,
    daemon: &DaemonProcess,
    strategy: impl Strategy<Value = Vec<u8>>,
    accept: fn(StatusCode) -> bool,
) {
    let mut runner = TestRunner::new(config());
    let statuses = RefCell::new(BTreeMap::<u16, usize>::new());
    let outcome = runner.run(&strategy, |body| {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .collect::<String>();
        let response = runtime
            .block_on(post_event(daemon, body))
            .map_err(|error| TestCaseError::fail(format!("no response to {shown:?}: {error}")))?;
        *statuses
            .borrow_mut()
            .entry(response.status.as_u16())
            .or_default() += 1;
        if response.status.is_server_error() || !accept(response.status) {
            return Err(TestCaseError::fail(format!(
                "{} for {shown:?}: {}",
                response.status,
                response.error_message()
            )));
        }
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    println!("responses by status: {:?}", statuses.borrow());
    runtime
        .block_on(daemon.client().health())
        .expect("belterd healthy after the property");
}

#[test]
fn parser_never_fails_server() {
    let runtime = Runtime::new().expect("tokio runtime");
    let daemon = runtime.block_on(DaemonProcess::start());
    let any_answer =
        |status: StatusCode| status == StatusCode::ACCEPTED || status.is_client_error();

    check_property(&runtime, &daemon, json_body(), any_answer);
    check_property(&runtime, &daemon, byte_body(), any_answer);
}

#[test]
fn extra_fields_accepted() {
    let runtime = Runtime::new().expect("tokio runtime");
    let daemon = runtime.block_on(DaemonProcess::start());

    check_property(&runtime, &daemon, valid_with_extras(), |status| {
        status == StatusCode::ACCEPTED
    });
}

#[test]
fn extra_envelope_keys_rejected() {
    let runtime = Runtime::new().expect("tokio runtime");
    let daemon = runtime.block_on(DaemonProcess::start());

    check_property(&runtime, &daemon, envelope_with_extras(), |status| {
        status == StatusCode::UNPROCESSABLE_ENTITY
    });
}
