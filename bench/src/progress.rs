//! Progress lines on standard error while a long scenario runs, so standard output keeps only
//! the result table.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Interval between progress lines of a running phase.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Prints one progress line with the scenario's name.
pub fn note(scenario: &str, message: &str) {
    eprintln!("[{scenario}] {message}");
}

/// Prints a line from `describe` every [`PROGRESS_INTERVAL`] until dropped.
#[derive(Debug)]
pub struct Ticker {
    task: JoinHandle<()>,
}

impl Ticker {
    /// Starts printing; `describe` gets the time since the start.
    pub fn start(
        scenario: &'static str,
        describe: impl Fn(Duration) -> String + Send + 'static,
    ) -> Self {
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
            interval.tick().await;
            loop {
                interval.tick().await;
                note(scenario, &describe(started.elapsed()));
            }
        });
        Self { task }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
