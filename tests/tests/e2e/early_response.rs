//! A receiver that sends its response before it has read the whole request. The attempt records
//! that response, not a timeout or a closed connection.

use std::time::Duration;

use belter_common::records::{DeliveryStatus, FailureKind};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::raw::create_endpoint;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Size of the event's padding: more than the kernel buffers of a loopback connection take when
/// the receiver's window is small.
const PADDING_BYTES: usize = 8 * 1024 * 1024;

/// Starts a receiver on 127.0.0.1 with a small receive buffer. It reads each request's head,
/// sends 413 at once without reading the body, and keeps the connection open for 5 s.
async fn early_413_receiver() -> String {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a receive buffer size");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("a port");
    let listener = socket.listen(16).expect("a listener");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let raw_response =
                    b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!";
                let _ = stream.write_all(raw_response).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn early_413_recorded() {
    let options = DaemonOptions {
        max_body_bytes: Some(PADDING_BYTES + 64 * 1024),
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let url = early_413_receiver().await;
    create_endpoint(&daemon.socket_path(), &url, false).await;

    let mut body: Value =
        serde_json::from_str(sample_body(EventType::CsatReceived)).expect("sample is JSON");
    body["data"]["comment"] = json!("p".repeat(PADDING_BYTES));
    let accepted = daemon.ingest_accepted(&body.to_string()).await;
    let detail = wait_for_status(
        &daemon.client(),
        &accepted.deliveries[0],
        DeliveryStatus::Failed,
    )
    .await;

    assert!(!detail.attempts.is_empty());
    for attempt in &detail.attempts {
        assert_eq!(attempt.status_code, Some(413), "{attempt:?}");
        assert_eq!(
            attempt.failure,
            Some(FailureKind::HttpStatus),
            "{attempt:?}"
        );
        assert_eq!(attempt.response_body.as_deref(), Some("too big!"));
    }
}
