//! The OpenAPI document at `GET /v1/openapi.json`: the same on both listeners, and equal to the
//! checked-in `docs/openapi.json`. Set `BELTER_UPDATE_OPENAPI=1` to rewrite that file from the
//! served document.

use std::path::PathBuf;

use belter_tests::http::get;
use belter_tests::raw::unix_request;
use belter_tests::DaemonProcess;
use hyper::{Method, StatusCode};

/// Environment variable that makes the test rewrite `docs/openapi.json`.
const UPDATE_ENV: &str = "BELTER_UPDATE_OPENAPI";

/// Path of the checked-in copy.
fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[tokio::test]
async fn served_document_matches_docs() {
    let daemon = DaemonProcess::start().await;
    let from_socket = unix_request(
        &daemon.socket_path(),
        Method::GET,
        "/v1/openapi.json",
        &[],
        Vec::new(),
    )
    .await
    .expect("GET /v1/openapi.json on the control socket");
    let ingest_url = format!("http://{}/v1/openapi.json", daemon.ingest_addr());
    let from_ingest = get(&ingest_url, &[])
        .await
        .expect("GET /v1/openapi.json on the ingest listener");

    assert_eq!(
        from_socket.status,
        StatusCode::OK,
        "{}",
        from_socket.error_message()
    );
    assert_eq!(
        from_ingest.status,
        StatusCode::OK,
        "{}",
        from_ingest.error_message()
    );
    let served = from_socket.json();
    assert_eq!(
        served,
        from_ingest.json(),
        "the listeners serve different documents"
    );
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "not an OpenAPI 3 document: {}",
        served["openapi"]
    );

    let path = docs_path();
    if std::env::var_os(UPDATE_ENV).is_some() {
        let text = serde_json::to_string_pretty(&served).expect("serialize the document") + "\n";
        std::fs::write(&path, text)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let checked_in: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
    assert!(
        checked_in == served,
        "docs/openapi.json differs from the document belterd serves; rewrite it with \
         {UPDATE_ENV}=1 cargo test -p belter-tests --test e2e served_document_matches_docs"
    );
}
