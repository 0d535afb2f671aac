//! Facts read from `/proc` and the file system: a process's resident memory, a directory's size
//! on disk, and the machine the run is on.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

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
    fn machine_has_cpus() {
        assert!(Machine::current().cpus > 0);
    }
}
