//! `belter-tui --demo`: a belterd child process on a temporary data directory, a sample receiver
//! on 127.0.0.1 and a bounded stream of sample events, so the console has something to show.
//! Everything it starts is stopped, and the directory removed, by `Demo::stop`.

mod daemon_process;
mod receiver;
mod traffic;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use belter_common::api::CreateEndpoint;
use belter_common::client::ControlClient;
use belter_common::records::EventSelection;
use belter_common::rules::{CreateRule, RuleScope};
use belter_common::EventType;
use tempfile::TempDir;
use tokio::task::JoinHandle;

pub use daemon_process::find_belterd;
use daemon_process::DaemonProcess;
use receiver::Receiver;

/// The running demo.
pub struct Demo {
    directory: TempDir,
    socket: PathBuf,
    daemon: DaemonProcess,
    receiver: Receiver,
    traffic: JoinHandle<()>,
}

impl Demo {
    /// Starts belterd (`belterd` if given, else found next to this binary or on PATH), the
    /// receiver, three endpoints, a threshold rule and the sample traffic.
    pub async fn start(belterd: Option<PathBuf>) -> anyhow::Result<Demo> {
        let binary = find_belterd(belterd)?;
        let directory = tempfile::Builder::new()
            .prefix("belter-demo-")
            .tempdir()
            .context("cannot create the demo's temporary directory")?;
        let socket = directory.path().join("control.sock");
        eprintln!(
            "belter-tui demo: starting {} in {}",
            binary.display(),
            directory.path().display()
        );
        let daemon = DaemonProcess::spawn(&binary, directory.path(), &socket).await?;
        let client = ControlClient::new(&socket);
        let receiver = Receiver::start().await?;
        create_endpoints(&client, &receiver).await?;
        create_rule(&client).await?;
        let traffic = traffic::spawn(client);
        Ok(Demo {
            directory,
            socket,
            daemon,
            receiver,
            traffic,
        })
    }

    /// Returns the demo daemon's control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops the traffic, the daemon and the receiver, and removes the temporary directory.
    pub async fn stop(self) {
        self.traffic.abort();
        self.daemon.stop().await;
        self.receiver.stop();
        let path = self.directory.path().to_path_buf();
        if let Err(error) = self.directory.close() {
            // The terminal may be gone by now, so a failed write is ignored, not a panic.
            let _ = writeln!(
                std::io::stderr(),
                "belter-tui demo: cannot remove {}: {error}",
                path.display()
            );
        }
    }
}

async fn create_endpoints(client: &ControlClient, receiver: &Receiver) -> anyhow::Result<()> {
    let endpoints = [
        (
            receiver.url(receiver::CRM_PATH),
            EventSelection::All,
            "CRM sync: answers 200",
        ),
        (
            receiver.url(receiver::ALERTS_PATH),
            EventSelection::Only(vec![
                EventType::ScoreThresholdBreached,
                EventType::SmartAlertCreated,
                EventType::FrustrationDetected,
                EventType::CsatReceived,
            ]),
            "Alerting: a third of deliveries get 500 on every attempt",
        ),
        (
            receiver.url(receiver::ANALYTICS_PATH),
            EventSelection::Only(vec![
                EventType::EvaluationCompleted,
                EventType::ConversationImported,
                EventType::SentimentAnalyzed,
            ]),
            "Analytics: slow, and a quarter of first attempts time out",
        ),
    ];
    for (url, event_types, description) in endpoints {
        // Built from JSON so that optional fields the contract adds keep their defaults.
        let request: CreateEndpoint = serde_json::from_value(serde_json::json!({
            "url": url,
            "event_types": event_types,
            "description": description,
        }))
        .context("cannot encode a demo endpoint")?;
        client
            .create_endpoint(&request)
            .await
            .with_context(|| format!("cannot create the demo endpoint {url}"))?;
    }
    Ok(())
}

/// Creates a threshold rule that the sample evaluation breaks, since it scores 90 on resolution,
/// so the demo derives a `score.threshold_breached` event from every evaluation it posts.
async fn create_rule(client: &ControlClient) -> anyhow::Result<()> {
    let request = CreateRule {
        scope: RuleScope::Team,
        scope_id: Some("billing-emea".to_owned()),
        criterion: Some("resolution".to_owned()),
        min_score: 95.0,
    };
    client
        .create_rule(&request)
        .await
        .context("cannot create the demo threshold rule")?;
    Ok(())
}
