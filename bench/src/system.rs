//! Facts read from `/proc` and the file system: a process's resident memory, a directory's size
//! on disk, and the machine the run is on. Also the pause between scenarios that lets the disk
//! settle.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Writes the page cache's dirty pages to disk before the next scenario, so the writeback of
/// the previous scenario's store does not slow the next one down. Measured in a full run: the
/// latency scenario's p99 from 202 to receiver was 4.9 ms right after the throughput scenario,
/// and 0.2 ms on its own.
pub async fn settle() {
    let synced = tokio::process::Command::new("sync")
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    if !matches!(&synced, Ok(status) if status.success()) {
        crate::progress::note(
            "bench",
            "`sync` failed, so the next scenario may share the disk with the last one's writeback",
        );
    }
}

/// The machine a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`, in MiB.
    pub memory_mib: f64,
    /// `uname -r`-style kernel release from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
}

impl Machine {
    /// Reads the facts of this machine; a fact that cannot be read is left empty or zero.
    pub fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = status_field_kib(&meminfo, "MemTotal:").unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_mib: memory_kib as f64 * 1024.0 / MIB,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// Reads the resident memory (`VmRSS`) of process `pid`, in bytes.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// Clock ticks per second of the CPU times in `/proc/PID/stat`: `USER_HZ`, which Linux fixes
/// at 100 on every architecture it exports these times for.
const USER_HZ: f64 = 100.0;

/// Reads the CPU time, user plus system, that process `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

/// Sums `utime` and `stime`, fields 14 and 15 of a `/proc/PID/stat` line. The command name in
/// brackets may hold spaces, so the fields are counted from its closing bracket.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

/// CPU time used by belterd and by this process over one phase.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    daemon_pid: Option<u32>,
    daemon_start: f64,
    own_start: f64,
}

/// CPU used over a phase, in cores: CPU seconds per second of wall time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    /// belterd's, or 0 when no daemon ran.
    pub daemon_cores: f64,
    /// belter-bench's own: its posters, clients and receivers.
    pub bench_cores: f64,
}

impl CpuMeter {
    /// Starts measuring the daemon `daemon_pid`, if any, and this process.
    pub fn start(daemon_pid: Option<u32>) -> Self {
        Self {
            daemon_pid,
            daemon_start: daemon_pid.and_then(cpu_seconds).unwrap_or(0.0),
            own_start: cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    /// Returns the CPU used since the start, over `elapsed` wall time.
    pub fn read(&self, elapsed: std::time::Duration) -> CpuUse {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return CpuUse::default();
        }
        let daemon = self
            .daemon_pid
            .and_then(cpu_seconds)
            .map_or(0.0, |now| now - self.daemon_start);
        let own = cpu_seconds(std::process::id()).map_or(0.0, |now| now - self.own_start);
        CpuUse {
            daemon_cores: daemon / seconds,
            bench_cores: own / seconds,
        }
    }
}

/// The machine's wake-up counters as read at the start of a phase: context switches (`ctxt` of
/// `/proc/stat`) and function-call interrupts between CPUs (the `CAL` row of `/proc/interrupts`
/// on x86). Waking a thread on another CPU can send such an interrupt, which in a VM usually
/// costs an exit to the host.
#[derive(Debug, Clone, Copy)]
pub struct WakeupMeter {
    context_switches: Option<u64>,
    call_interrupts: Option<u64>,
}

/// Wake-ups per request or per delivered event over a phase, machine-wide.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Wakeups {
    /// Context switches, or none when `/proc/stat` cannot be read or nothing was counted.
    pub context_switches: Option<f64>,
    /// Function-call interrupts between CPUs, or none when `/proc/interrupts` has no `CAL` row
    /// or nothing was counted.
    pub call_interrupts: Option<f64>,
}

impl WakeupMeter {
    /// Reads the counts now.
    pub fn start() -> Self {
        Self {
            context_switches: read_counter("/proc/stat", parse_context_switches),
            call_interrupts: read_counter("/proc/interrupts", parse_call_interrupts),
        }
    }

    /// Returns the wake-ups since the start over `count` requests or deliveries, none for a
    /// count of 0.
    pub fn per(&self, count: u64) -> Wakeups {
        let now = Self::start();
        let per = |start: Option<u64>, end: Option<u64>| match (start, end) {
            (Some(start), Some(end)) if count > 0 => {
                Some(end.saturating_sub(start) as f64 / count as f64)
            }
            _ => None,
        };
        Wakeups {
            context_switches: per(self.context_switches, now.context_switches),
            call_interrupts: per(self.call_interrupts, now.call_interrupts),
        }
    }
}

fn read_counter(path: &str, parse: fn(&str) -> Option<u64>) -> Option<u64> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// Reads the `ctxt` line of `/proc/stat`.
fn parse_context_switches(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("ctxt "))
        .and_then(|count| count.trim().parse().ok())
}

/// Sums the per-CPU counts of the `CAL:` row of `/proc/interrupts`. The words after the counts
/// name the interrupt.
fn parse_call_interrupts(interrupts: &str) -> Option<u64> {
    let row = interrupts
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("CAL:"))?;
    let counts = row
        .split_whitespace()
        .map_while(|field| field.parse::<u64>().ok());
    Some(counts.sum())
}

/// Parses the value of a `Name:   1234 kB` line.
fn status_field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// The space the files under `dir` take on disk, as `du` counts it: allocated blocks, not
/// lengths, so sparse files count only what they use.
pub fn disk_usage_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                // st_blocks counts 512-byte units whatever the file system's block size.
                total += metadata.blocks() * 512;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_resident_memory_is_read() {
        let bytes = resident_bytes(std::process::id()).unwrap();
        assert!(bytes > 0);
    }

    #[test]
    fn status_field_parses_kib() {
        let text = "Name:\tx\nVmRSS:\t  1234 kB\n";
        assert_eq!(status_field_kib(text, "VmRSS:"), Some(1234));
        assert_eq!(status_field_kib(text, "VmHWM:"), None);
    }

    #[test]
    fn disk_usage_counts_written_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), vec![1u8; 64 * 1024]).unwrap();
        let bytes = disk_usage_bytes(dir.path()).unwrap();
        assert!(bytes >= 64 * 1024, "{bytes}");
    }

    #[test]
    fn stat_line_gives_cpu_seconds() {
        let line = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_seconds(line), Some(3.0));
        assert_eq!(parse_cpu_seconds("42 (x) S 1"), None);
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn wakeup_counters_parse() {
        let stat = "cpu  1 2 3 4\nintr 99 1 2\nctxt 123456\nbtime 1\n";
        assert_eq!(parse_context_switches(stat), Some(123_456));
        assert_eq!(parse_context_switches("cpu 1 2\n"), None);
        let interrupts = "           CPU0       CPU1\n  RES:     11809975     300   Rescheduling interrupts\n  CAL:   19443328   1000   Function call interrupts\n";
        assert_eq!(parse_call_interrupts(interrupts), Some(19_444_328));
        assert_eq!(parse_call_interrupts("  RES: 1 2 Rescheduling\n"), None);
    }

    #[test]
    fn wakeups_are_counted_per_request() {
        let meter = WakeupMeter {
            context_switches: Some(0),
            call_interrupts: None,
        };
        let wakeups = meter.per(1_000);
        // This machine has switched contexts since it booted, so the count from zero is positive.
        assert!(wakeups.context_switches.unwrap() > 0.0);
        assert_eq!(wakeups.call_interrupts, None);
        assert_eq!(meter.per(0).context_switches, None);
    }

    #[test]
    fn machine_has_cpus() {
        assert!(Machine::current().cpus > 0);
    }
}
