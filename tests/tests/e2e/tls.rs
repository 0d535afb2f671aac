//! Deliveries over TLS to local receivers with certificates made for the test: a valid one
//! succeeds, and a self-signed, expired or wrongly named certificate fails as `tls` before any
//! request is sent.
//!
//! belterd verifies certificates with the platform verifier, which on Linux reads its trusted
//! roots from `SSL_CERT_FILE` when that is set. The daemon runs with it pointing at the test's
//! CA, so the valid certificate proves the failures come from the certificate and not from a
//! missing root store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use belter_common::records::{DeliveryStatus, FailureKind};
use belter_common::samples::sample_body;
use belter_common::EventType;
use belter_tests::faults::{read_request, write_ok_and_close, Fault, FaultServer};
use belter_tests::raw::create_endpoint;
use belter_tests::wait::wait_for_status;
use belter_tests::{DaemonOptions, DaemonProcess};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Maximum time a failed TLS attempt may take: the attempt timeout of 1 s plus slack.
const MAX_LATENCY: Duration = Duration::from_millis(2_500);

/// A certificate authority made for one test.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "belter-tests CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generate the CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a leaf certificate for `names`, valid from January 1 of the first year in `valid`
    /// to January 1 of the second.
    fn issue(&self, names: &[&str], valid: (i32, i32)) -> (CertificateDer<'static>, KeyPair) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params.not_before = date_time_ymd(valid.0, 1, 1);
        params.not_after = date_time_ymd(valid.1, 1, 1);
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        (cert.der().clone(), key)
    }
}

/// Years of a certificate that is valid now.
const VALID_NOW: (i32, i32) = (2020, 4000);

/// Issues a self-signed certificate for 127.0.0.1, which no trusted root vouches for.
fn self_signed() -> (CertificateDer<'static>, KeyPair) {
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("self-signed parameters");
    let key = KeyPair::generate().expect("generate a key");
    let cert = params.self_signed(&key).expect("self-sign");
    (cert.der().clone(), key)
}

/// An HTTPS receiver on 127.0.0.1 that responds 200 to every request it can read.
struct TlsReceiver {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl TlsReceiver {
    async fn start(cert: CertificateDer<'static>, key: KeyPair) -> Self {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the TLS receiver on 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn(serve_tls(
            listener,
            acceptor,
            Arc::clone(&handshakes),
            Arc::clone(&requests),
        ));
        Self {
            port,
            handshakes,
            requests,
            server,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            break;
        };
        let acceptor = acceptor.clone();
        let handshakes = Arc::clone(&handshakes);
        let requests = Arc::clone(&requests);
        connections.spawn(async move {
            // A client that rejects the certificate aborts the handshake, which is expected.
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            handshakes.fetch_add(1, Ordering::SeqCst);
            if let Ok(Some(_)) = read_request(&mut tls, 0).await {
                requests.fetch_add(1, Ordering::SeqCst);
                let _ = write_ok_and_close(&mut tls).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

#[tokio::test]
async fn tls_failures_classified() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write the CA certificate");
    let options = DaemonOptions {
        extra_env: vec![("SSL_CERT_FILE".to_owned(), ca_file.display().to_string())],
        ..DaemonOptions::default()
    };
    let daemon = DaemonProcess::start_with(options).await;
    let client = daemon.client();
    let (cert, key) = ca.issue(&["127.0.0.1"], VALID_NOW);
    let valid = TlsReceiver::start(cert, key).await;
    let (cert, key) = self_signed();
    let untrusted = TlsReceiver::start(cert, key).await;
    let (cert, key) = ca.issue(&["127.0.0.1"], (2019, 2020));
    let expired = TlsReceiver::start(cert, key).await;
    let (cert, key) = ca.issue(&["wrong-host.test"], VALID_NOW);
    let wrong_host = TlsReceiver::start(cert, key).await;
    let stalled = FaultServer::start(Fault::Silent).await;
    let stalled_url = format!("https://{}/hook", stalled.addr());
    // (name, URL, failure kind, text the error contains in lowercase)
    let failing = [
        ("self-signed", untrusted.url(), FailureKind::Tls, "issuer"),
        ("expired", expired.url(), FailureKind::Tls, "expired"),
        (
            "wrong host",
            wrong_host.url(),
            FailureKind::Tls,
            "not valid for",
        ),
        (
            "stalled handshake",
            stalled_url,
            FailureKind::Timeout,
            "timed out",
        ),
    ];
    let valid_endpoint = create_endpoint(&daemon.socket_path(), &valid.url(), false).await;
    let mut endpoints = Vec::new();
    for (_, url, _, _) in &failing {
        endpoints.push(
            create_endpoint(&daemon.socket_path(), url, false)
                .await
                .endpoint
                .id,
        );
    }

    let answer = daemon
        .ingest_accepted(sample_body(EventType::CsatReceived))
        .await;
    let mut details = Vec::new();
    for id in &answer.deliveries {
        let detail = client.get_delivery(id).await.expect("get delivery");
        let expected = if detail.delivery.endpoint_id == valid_endpoint.endpoint.id {
            DeliveryStatus::Succeeded
        } else {
            DeliveryStatus::Failed
        };
        details.push(wait_for_status(&client, id, expected).await);
    }

    assert_eq!(valid.requests.load(Ordering::SeqCst), 1);
    for ((name, _, kind, text), endpoint) in failing.iter().zip(&endpoints) {
        let detail = details
            .iter()
            .find(|detail| detail.delivery.endpoint_id == *endpoint)
            .unwrap_or_else(|| panic!("{name}: no delivery"));
        assert_eq!(detail.attempts.len(), 3, "{name}");
        for attempt in &detail.attempts {
            let error = attempt.error.clone().unwrap_or_default();
            assert_eq!(attempt.failure, Some(*kind), "{name}: {error}");
            assert!(
                error.to_lowercase().contains(text),
                "{name}: error {error:?} lacks {text:?}"
            );
            assert!(
                Duration::from_millis(attempt.latency_ms) <= MAX_LATENCY,
                "{name}: attempt took {} ms",
                attempt.latency_ms
            );
        }
    }
    for (name, receiver) in [
        ("self-signed", &untrusted),
        ("expired", &expired),
        ("wrong host", &wrong_host),
    ] {
        assert_eq!(receiver.handshakes.load(Ordering::SeqCst), 0, "{name}");
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 0, "{name}");
    }
    assert_eq!(stalled.requests().len(), 0);
}
