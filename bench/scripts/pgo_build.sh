#!/usr/bin/env bash
# Builds belterd with profile-guided optimization (PGO). An instrumented belterd runs the
# bench's throughput and latency scenarios on 127.0.0.1, and rustc then optimizes belterd for the
# branches and calls that ran most. The result is target/pgo/optimized/release/belterd, and a
# plain `cargo build --release` is unchanged. The profile comes from the bench's workload, one
# endpoint that responds 200, so paths such as retries and fan-out may gain less.
#
# Needs the llvm-profdata of the same toolchain: `rustup component add llvm-tools`. The three
# builds and the training take about 11 minutes on 2 cores, because each set of compiler flags
# rebuilds every dependency in a target directory of its own.
#
# usage: bench/scripts/pgo_build.sh [--duration D]   (D: each training phase, default 4s)

set -euo pipefail

duration=4s
if [[ $# -gt 0 ]]; then
    if [[ $1 == --duration && $# -eq 2 ]]; then
        duration=$2
    else
        echo "usage: $0 [--duration D], such as --duration 4s" >&2
        exit 2
    fi
fi

cd "$(dirname "$0")/../.."
root=$PWD
work=$root/target/pgo

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [[ ! -x $profdata ]]; then
    echo "llvm-profdata is missing from this toolchain ($profdata): install it with" \
        "\`rustup component add llvm-tools\`, then run this script again" >&2
    exit 1
fi

echo "[pgo] building an instrumented belterd" >&2
RUSTFLAGS="-Cprofile-generate=$work/profiles" \
    cargo build --release -p belter-daemon --target-dir "$work/instrumented"
cargo build --release -p belter-bench

# Build scripts and proc macros of the instrumented build write profiles too, so the training
# starts from an empty directory.
rm -rf "$work/profiles"
mkdir -p "$work/profiles"
echo "[pgo] training: throughput and latency scenarios, $duration phases" >&2
"$root/target/release/belter-bench" \
    --belterd "$work/instrumented/release/belterd" \
    --scenario throughput --scenario latency --batch 100 --duration "$duration" \
    --json "$work/training.json"

"$profdata" merge -o "$work/belterd.profdata" "$work/profiles"

echo "[pgo] building the optimized belterd" >&2
RUSTFLAGS="-Cprofile-use=$work/belterd.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
    cargo build --release -p belter-daemon --target-dir "$work/optimized"
echo "[pgo] built $work/optimized/release/belterd" >&2
