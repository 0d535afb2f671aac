//! Sampling a process's resident memory in the background, to catch its peak.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::system::{resident_bytes, MIB};

/// Interval between two samples.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The largest `VmRSS` seen since the sampler started. Sampling stops when it is dropped.
#[derive(Debug)]
pub struct PeakMemory {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl PeakMemory {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(resident_bytes(pid).unwrap_or(0)));
        let sampled = Arc::clone(&peak);
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                interval.tick().await;
                // The process is gone once this fails, and nothing more can be sampled.
                let Some(bytes) = resident_bytes(pid) else {
                    break;
                };
                sampled.fetch_max(bytes, Ordering::Relaxed);
            }
        });
        Self { peak, task }
    }

    /// Returns the peak so far, in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / MIB
    }
}

impl Drop for PeakMemory {
    fn drop(&mut self) {
        self.task.abort();
    }
}
