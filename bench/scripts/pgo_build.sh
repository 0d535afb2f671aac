#!/usr/bin/env bash
# Builds belterd with profile-guided optimization (PGO). An instrumented belterd runs the
# bench's throughput and latency scenarios on 127.0.0.1, and rustc then optimizes belterd for the
# branches and calls that ran most. The result is target/pgo/optimized/release/belterd, under
# CARGO_TARGET_DIR when it is set, and a plain `cargo build --release` is unchanged. The profile
# comes from the bench's workload, one endpoint that responds 200, so paths such as retries and
# fan-out may gain less.
#
# Needs the llvm-profdata of the same toolchain: `rustup component add llvm-tools`. The three
# builds and the training take about 11 minutes on 2 cores, because each set of compiler flags
# rebuilds every dependency in a target directory of its own.
#
# usage: bench/scripts/pgo_build.sh [--duration D]   (D: each training phase, default 4s)

set -euo pipefail

usage="usage: $0 [--duration D], such as --duration 4s"
duration=4s
if [[ $# -eq 1 && ( $1 == --help || $1 == -h ) ]]; then
    echo "$usage"
    exit 0
elif [[ $# -eq 2 && $1 == --duration ]]; then
    duration=$2
elif [[ $# -ne 0 ]]; then
    echo "$usage" >&2
    exit 2
fi

cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
# rustc runs in each crate's directory, so the profile paths must be absolute.
[[ $target == /* ]] || target=$root/$target
work=$target/pgo

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [[ ! -x $profdata ]]; then
    echo "llvm-profdata is missing from this toolchain ($profdata): install it with" \
        "\`rustup component add llvm-tools\`, then run this script again" >&2
    exit 1
fi

# The flags go in CARGO_ENCODED_RUSTFLAGS, which takes precedence over RUSTFLAGS and keeps a
# path with spaces in one flag. Any RUSTFLAGS of the caller do not apply to these builds.
echo "[pgo] building an instrumented belterd" >&2
CARGO_ENCODED_RUSTFLAGS="-Cprofile-generate=$work/profiles" \
    cargo build --release -p belter-daemon --target-dir "$work/instrumented"
cargo build --release -p belter-bench --target-dir "$target"

# Build scripts and proc macros of the instrumented build write profiles too, so the training
# starts from an empty directory.
rm -rf "$work/profiles"
mkdir -p "$work/profiles"
echo "[pgo] training: throughput and latency scenarios, $duration phases" >&2
"$target/release/belter-bench" \
    --belterd "$work/instrumented/release/belterd" \
    --scenario throughput --scenario latency --batch 100 --duration "$duration" \
    --json "$work/training.json"

"$profdata" merge -o "$work/belterd.profdata" "$work/profiles"

echo "[pgo] building the optimized belterd" >&2
CARGO_ENCODED_RUSTFLAGS="-Cprofile-use=$work/belterd.profdata"$'\x1f'"-Cllvm-args=-pgo-warn-missing-function=false" \
    cargo build --release -p belter-daemon --target-dir "$work/optimized"
echo "[pgo] built $work/optimized/release/belterd" >&2
