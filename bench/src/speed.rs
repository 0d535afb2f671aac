//! A probe of the machine's compute speed during a run. A thread times the same piece of work,
//! an HMAC-SHA256 over 256 KiB, every 200 ms, in the CPU time of its own thread, so that waiting
//! for a core does not count. Each phase reports the probe's median beside its rates, so that a
//! slower machine can be distinguished from a slower program.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use belter_common::signing;

/// Pause between two timings.
const INTERVAL: Duration = Duration::from_millis(200);

/// Bytes signed per timing: about 0.2 ms of work on a core with SHA instructions.
const WORK_BYTES: usize = 256 * 1024;

/// The probe of this run, once [`start`] ran.
static PROBE: OnceLock<Probe> = OnceLock::new();

struct Probe {
    /// When each timing ended, and its CPU time in µs.
    samples: Arc<Mutex<Vec<(Instant, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Starts the probe's thread, once per process.
pub fn start() {
    PROBE.get_or_init(|| {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let samples = Arc::clone(&samples);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("speed-probe".to_owned())
                .spawn(move || run(&samples, &stop))
                .ok()
        };
        Probe {
            samples,
            stop,
            thread: Mutex::new(thread),
        }
    });
}

/// Stops the probe's thread and waits for it.
pub fn stop() {
    if let Some(probe) = PROBE.get() {
        probe.stop.store(true, Ordering::Relaxed);
        let thread = probe
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Returns the median CPU time of the probe's work in µs, over the timings that ended between
/// `from` and `to`. Returns `None` when the probe did not run or took no timing in that span.
pub fn median_us(from: Instant, to: Instant) -> Option<f64> {
    let probe = PROBE.get()?;
    let mut times: Vec<f64> = probe
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(at, _)| (from..=to).contains(at))
        .map(|(_, micros)| *micros)
        .collect();
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied()
}

fn run(samples: &Mutex<Vec<(Instant, f64)>>, stop: &AtomicBool) {
    let work = vec![0x5a_u8; WORK_BYTES];
    while !stop.load(Ordering::Relaxed) {
        let before = thread_cpu_ns();
        let signature = signing::sign("speed-probe", &work);
        std::hint::black_box(signature);
        let after = thread_cpu_ns();
        if let (Some(before), Some(after)) = (before, after) {
            let micros = after.saturating_sub(before) as f64 / 1_000.0;
            samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Instant::now(), micros));
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Reads the CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> Option<u64> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(seconds * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = thread_cpu_ns().unwrap();
        let work = vec![1_u8; WORK_BYTES];
        for _ in 0..20 {
            std::hint::black_box(signing::sign("probe-test", &work));
        }
        let after = thread_cpu_ns().unwrap();
        assert!(after > before, "{before} then {after}");
    }

    #[test]
    fn probe_times_its_work() {
        start();
        let from = Instant::now();
        std::thread::sleep(INTERVAL * 3);
        let median = median_us(from, Instant::now());
        stop();
        assert!(median.is_some_and(|micros| micros > 0.0), "{median:?}");
    }
}
