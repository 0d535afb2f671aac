//! Finds the workspace's binaries (`belterd`, `belter`) and builds them once per test run.
//!
//! Cargo builds binaries only for integration tests of their own package, so `cargo test` would
//! otherwise run a stale `belterd`, or none. The first lookup therefore runs `cargo build
//! --workspace --bin belterd --bin belter` into the target directory of the running test, which
//! Cargo allows because it releases its build lock before it runs test executables. Selecting the
//! whole workspace resolves dependency features as `cargo test --workspace` does, so after that
//! command the build only links the two binaries instead of compiling a second copy of their
//! dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable naming a directory with prebuilt binaries; when set, nothing is built.
pub const BIN_DIR_ENV: &str = "BELTER_BIN_DIR";

/// Returns the path of the `belterd` binary, building it on first use.
pub fn belterd_path() -> PathBuf {
    binary_path("belterd")
}

/// Returns the path of the `belter` CLI binary, building it on first use.
pub fn belter_path() -> PathBuf {
    binary_path("belter")
}

fn binary_path(name: &str) -> PathBuf {
    let dir = binary_dir();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} does not exist; build it with `cargo build --workspace --bins`, or set {BIN_DIR_ENV} to the directory that contains it",
        path.display()
    );
    path
}

/// Returns the directory of the binaries: `$BELTER_BIN_DIR`, or the profile directory of the running
/// test executable (`target/debug` for `target/debug/deps/e2e-…`) after building into it.
fn binary_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
            return PathBuf::from(dir);
        }
        let executable = std::env::current_exe().expect("locate the running test executable");
        let profile_dir = executable
            .parent()
            .and_then(Path::parent)
            .expect("test executable lies in <target>/<profile>/deps")
            .to_owned();
        build_daemon_binaries(&profile_dir);
        profile_dir
    })
    .clone()
}

/// Builds `belterd` and `belter` for the profile whose directory is `profile_dir`.
///
/// # Panics
///
/// Panics with Cargo's output when the build fails.
fn build_daemon_binaries(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&workspace_manifest)
        .args(["--workspace", "--bin", "belterd", "--bin", "belter"])
        .args(["--profile", profile]);
    // A target directory contains CACHEDIR.TAG at its root. Without it the profile directory sits
    // under a target triple, where Cargo's default layout applies anyway.
    if let Some(target_dir) = profile_dir.parent() {
        if target_dir.join("CACHEDIR.TAG").is_file() {
            command.arg("--target-dir").arg(target_dir);
        }
    }
    let output = command
        .output()
        .expect("run cargo to build belterd; set BELTER_BIN_DIR to use prebuilt binaries");
    assert!(
        output.status.success(),
        "cargo build --workspace --bin belterd --bin belter failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
