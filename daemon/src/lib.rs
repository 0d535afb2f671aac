//! `belterd`, the Belter Outbound webhook delivery daemon, as a library: [`Daemon::start`] runs
//! it in-process, and the `belterd` binary is a thin wrapper that adds flags, logging and
//! signals.

mod address_policy;
mod api_error;
mod codec;
pub mod config;
mod control;
mod deliver;
mod envelope;
mod flush;
mod formats;
mod indexer;
mod ingest;
pub mod log_writer;
mod metrics;
mod openapi;
mod outcome;
pub mod packaging;
mod ready;
mod registry;
mod retention;
mod retry;
mod routes;
mod rules;
mod schedule;
mod serve;
mod state;
mod store;
mod token;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use belter_common::Timestamp;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use address_policy::{parse_network, NetworkError};
pub use config::Config;
pub use control::SocketError;
pub use store::StoreError;
pub use token::TokenError;

use crate::address_policy::AddressPolicy;
use crate::flush::Flusher;
use crate::registry::Registry;
use crate::state::{AppState, StateParts};
use crate::store::Store;

/// Maximum wait for the flush at shutdown.
const FINAL_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connection timeout of delivery requests; the attempt timeout still bounds the whole attempt.
const CONNECT_TIMEOUT_CAP: std::time::Duration = std::time::Duration::from_secs(10);

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store could not be opened, for example because another daemon has it open.
    #[error(
        "cannot open the store in {path}: {source}. Is another belterd using this data directory?"
    )]
    Store {
        /// The store directory.
        path: PathBuf,
        /// The underlying error.
        source: StoreError,
    },
    /// The store was written by a newer belterd.
    #[error("cannot open the store in {path}: {source}")]
    StoreFormat {
        /// The store directory.
        path: PathBuf,
        /// The format error.
        source: StoreError,
    },
    /// The ingest token could not be loaded.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The ingest address could not be bound.
    #[error("cannot listen for ingest on {addr}: {source}. Pass another --ingest-addr")]
    IngestBind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The control socket could not be bound.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The HTTP client for deliveries could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A thread could not be started.
    #[error("cannot start the ingest writer thread: {0}. Check the process and memory limits")]
    Thread(std::io::Error),
}

/// A running daemon.
pub struct Daemon {
    state: AppState,
    tasks: JoinSet<()>,
}

impl Daemon {
    /// Opens the store, binds the ingest address and the control socket, and starts delivering.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        control::check_socket_path(&config.control_socket)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .map_err(|source| StartError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        let store_path = config.data_dir.join("store");
        let store = Store::open(&store_path).map_err(|source| match source {
            StoreError::NewerFormat { .. } => StartError::StoreFormat {
                path: store_path.clone(),
                source,
            },
            source => StartError::Store {
                path: store_path.clone(),
                source,
            },
        })?;
        let ingest_tokens = match &config.ingest_token {
            Some(token) => token::IngestTokens::configured(token.clone()),
            None => token::IngestTokens::load(&config.data_dir, Timestamp::now().as_millis())?,
        };
        let recovered = store
            .recover_inflight(Timestamp::now().as_millis())
            .map_err(|source| StartError::Store {
                path: store_path.clone(),
                source,
            })?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "attempts cut short by the last stop are queued again"
            );
        }
        let started_at = Timestamp::now().as_millis();
        let unindexed = store
            .recover_unindexed()
            .and_then(|written| {
                store.mark_indexed_before(started_at)?;
                Ok(written)
            })
            .map_err(|source| StartError::Store {
                path: store_path.clone(),
                source,
            })?;
        if unindexed > 0 {
            tracing::info!(
                deliveries = unindexed,
                "due entries that the last stop did not write are written"
            );
        }
        let window_start = (Timestamp::now().as_millis() / 60_000)
            .saturating_sub(registry::FAILURE_WINDOW_MINUTES);
        let endpoints = store
            .endpoints()
            .and_then(|endpoints| {
                endpoints
                    .into_iter()
                    .map(|(id, record)| {
                        let health = store.endpoint_health(&id, window_start)?;
                        Ok((id, record, health))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .map_err(|source| StartError::Store {
                path: store_path.clone(),
                source,
            })?;
        let policy = AddressPolicy::new(config.allow_networks.clone());
        let rules = store.rules().map_err(|source| StartError::Store {
            path: store_path.clone(),
            source,
        })?;
        let http = deliver::build_client(
            config.attempt_timeout.min(CONNECT_TIMEOUT_CAP),
            policy.clone(),
        )?;
        let ingest_listener = tokio::net::TcpListener::bind(config.ingest_addr)
            .await
            .map_err(|source| StartError::IngestBind {
                addr: config.ingest_addr,
                source,
            })?;
        let ingest_addr =
            ingest_listener
                .local_addr()
                .map_err(|source| StartError::IngestBind {
                    addr: config.ingest_addr,
                    source,
                })?;
        let control_listener = control::bind_control_socket(
            &config.control_socket,
            config.control_socket_group.as_deref(),
        )?;

        // The count a clean stop kept is removed before anything changes the queue, so a crash
        // from here on makes the next start count again instead of trusting a stale number.
        let saved_waiting = store
            .take_saved_waiting()
            .map_err(|source| StartError::Store {
                path: store_path.clone(),
                source,
            })?;
        let waiting_at_start = match saved_waiting {
            Some(count) => {
                store.flush().await.map_err(|source| StartError::Store {
                    path: store_path.clone(),
                    source,
                })?;
                count
            }
            None => {
                // After a crash the queue is counted before anything can change it. That reads
                // every due entry: about a second at 1M.
                let started = std::time::Instant::now();
                let counting = store.clone();
                let counted = tokio::task::spawn_blocking(move || counting.count_waiting())
                    .await
                    .map_err(|error| StartError::Store {
                        path: store_path.clone(),
                        source: StoreError::Task(error.to_string()),
                    })?
                    .map_err(|source| StartError::Store {
                        path: store_path.clone(),
                        source,
                    })?;
                tracing::info!(
                    waiting = counted,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "counted the waiting deliveries, since the last stop kept no count"
                );
                counted
            }
        };
        let mut tasks = JoinSet::new();
        let (flusher, flush_task) = Flusher::spawn(store.clone()).map_err(StartError::Thread)?;
        let (outcomes, outcome_receiver) = outcome::channel();
        let shutdown = CancellationToken::new();
        let state = AppState::new(StateParts {
            config,
            store,
            flusher,
            endpoints: Registry::new(endpoints),
            rules: rules::RuleSet::new(rules),
            http,
            policy,
            shutdown: shutdown.clone(),
            ingest_tokens,
            ingest_addr,
            outcomes,
        });

        state.add_waiting(i64::try_from(waiting_at_start).unwrap_or(i64::MAX));
        state.ready.defer_from(started_at);
        let writer = state.clone();
        tasks.spawn(async move {
            // The writer ends when the scheduler stops it, after the last attempt.
            let written =
                tokio::task::spawn_blocking(move || outcome::run(writer, outcome_receiver)).await;
            if let Err(error) = written {
                tracing::error!(%error, "the outcome writer failed");
            }
        });
        tasks.spawn(schedule::run(state.clone()));
        tasks.spawn(retention::run(state.clone()));
        tasks.spawn(indexer::run(state.clone()));
        let ingest_app = ingest::router(state.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            serve::serve(ingest_listener, ingest_app, stop).await;
        });
        let control_app = control::router(state.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(control_listener, control_app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "control socket listener failed");
            }
        });
        tasks.spawn(async move {
            // The flush task ends once every flusher handle is dropped after shutdown.
            if let Err(error) = flush_task.await {
                tracing::error!(%error, "flush task failed");
            }
        });

        tracing::info!(
            ingest_addr = %ingest_addr,
            control_socket = %state.config.control_socket.display(),
            allow_networks = ?state.config.allow_networks,
            data_dir = %state.config.data_dir.display(),
            endpoints = state.endpoints.len(),
            waiting = state.waiting(),
            "belterd started"
        );
        Ok(Self { state, tasks })
    }

    /// The address the ingest API listens on, with the port actually bound.
    pub fn ingest_addr(&self) -> SocketAddr {
        self.state.ingest_addr
    }

    /// The control socket path.
    pub fn control_socket(&self) -> &std::path::Path {
        &self.state.config.control_socket
    }

    /// The ingest bearer token.
    pub fn ingest_token(&self) -> String {
        self.state.ingest_tokens.current()
    }

    /// A token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Waits until the daemon is stopped through its shutdown token, then stops it cleanly:
    /// listeners close, attempts in flight end or stay queued, the store is flushed, and the
    /// control socket is removed.
    pub async fn wait(self) {
        self.state.shutdown.cancelled().await;
        tracing::info!("belterd stopping");
        let Self { state, mut tasks } = self;
        let store = state.store.clone();
        let socket = state.config.control_socket.clone();
        let waiting = state.waiting_counter();
        let ready = std::sync::Arc::clone(&state.ready);
        // Dropping the last state handle lets the flush task end.
        drop(state);
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "daemon task failed");
            }
        }
        if let Err(error) = indexer::index_all(&ready, &store) {
            tracing::error!(%error, "cannot write the due entries of deliveries held in memory; the next start writes them");
        }
        // Written last, so the flush that makes it durable also covers every change it counts.
        let waiting =
            u64::try_from(waiting.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0);
        if let Err(error) = store.save_waiting(waiting) {
            tracing::error!(%error, "cannot keep the waiting count; the next start counts the queue");
        }
        // On a full disk sled's flush may never return, and a stop must still end.
        match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "final flush failed"),
            Err(_) => {
                tracing::error!(
                    timeout_secs = FINAL_FLUSH_TIMEOUT.as_secs(),
                    "final flush did not finish; is the disk full?"
                );
                // Dropping the last store handle flushes again and would block forever, so the
                // handle is leaked: what was not flushed is lost either way, and the process ends.
                std::mem::forget(store);
            }
        }
        if let Err(error) = std::fs::remove_file(&socket) {
            tracing::warn!(%error, path = %socket.display(), "cannot remove the control socket");
        }
        tracing::info!("belterd stopped");
    }

    /// Stops the daemon and waits until it has stopped.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        self.wait().await;
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    let daemon = Daemon::start(config).await?;
    let own = daemon.shutdown_token();
    tokio::select! {
        () = shutdown.cancelled() => own.cancel(),
        () = own.cancelled() => {}
    }
    daemon.wait().await;
    Ok(())
}
