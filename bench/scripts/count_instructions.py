#!/usr/bin/env python3
"""Counts the instructions belterd executes per delivered event, under callgrind.

CPU time on a shared VM can move by half within an hour, and instruction counts do not. This
script runs belterd under `valgrind --tool=callgrind` twice on a fresh data directory, with one
endpoint whose receiver, an HTTP server on 127.0.0.1 in this process, responds with 200. Each run posts
`csat.received` samples in batches of 100 and stops belterd with SIGTERM once every delivery
arrived. The difference of the two runs' counts over the difference of their events is the count
per event, so the start and the stop cancel out.

Modes: `steady` waits for each batch's deliveries before posting the next, so deliveries go from
memory; `burst` posts every batch at once.

Valgrind's virtual CPU lacks the SHA extensions, so sha2 runs its portable code there; its count
is shown on a line of its own. sled's lazy statics spin while another thread sets them up, and
valgrind runs one thread at a time, so that spinning is left out of the total.

usage: bench/scripts/count_instructions.py [--belterd PATH] [--belter PATH] [--events 500,1500]
       [--mode steady|burst] [--out DIR]
"""

import argparse
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BATCH = 100
SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "common", "samples", "csat.received.json")
SPIN = "Lazy<T,F> as core::ops::deref::Deref>::deref"
ROWS = [
    ("ingest store writes", "belter_daemon::store::events::<impl belter_daemon::store::Store>::write_job"),
    ("outcome records", "belter_daemon::store::queue::<impl belter_daemon::store::Store>::record_outcome"),
    ("outcome group writes", "belter_daemon::store::delivery_groups::<impl belter_daemon::store::Store>::write_records_in_groups"),
    ("due index reads", "belter_daemon::store::queue::<impl belter_daemon::store::Store>::load_due"),
    ("indexer sweeps", "belter_daemon::indexer::sweep_once"),
    ("attempts", "belter_daemon::schedule::run_attempt::{{closure}}"),
    ("sha256 blocks", "sha2::sha256::compress256"),
    ("sled inserts", "sled::tree::Tree::insert"),
    ("sled removals", "sled::tree::Tree::remove"),
]


class Receiver(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    count = 0
    lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(description, check, seconds):
    deadline = time.time() + seconds
    while not check():
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {description}")
        time.sleep(0.05)


def run(args, events, out):
    """Runs belterd under callgrind for `events` events and returns the profile's path."""
    receiver = Receiver(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data = tempfile.mkdtemp(prefix="belter-callgrind-")
    control = os.path.join(data, "control.sock")
    ingest = f"127.0.0.1:{free_port()}"
    profile = os.path.join(out, f"callgrind.{args.mode}.{events}")
    with open(profile + ".log", "w") as log:
        daemon = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--fair-sched=yes",
             f"--callgrind-out-file={profile}", args.belterd,
             "--data-dir", data, "--ingest-addr", ingest, "--control-socket", control,
             "--allow-network", "127.0.0.1/32"],
            stdout=subprocess.DEVNULL, stderr=log)
    try:
        token_file = os.path.join(data, "ingest.token")
        wait_for("belterd to start", lambda: os.path.exists(token_file) and os.path.exists(control), 120)
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        for _ in range(100):
            added = subprocess.run([args.belter, "--socket", control, "endpoints", "add", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if added.returncode == 0:
                break
            time.sleep(0.2)
        else:
            sys.exit("cannot add the endpoint")
        with open(token_file) as file:
            token = file.read().strip()
        with open(SAMPLE) as file:
            sample = json.load(file)
        body = json.dumps({"events": [sample] * BATCH}).encode()
        delivered = lambda target: lambda: receiver.count >= target
        for batch in range(events // BATCH):
            request = urllib.request.Request(
                f"http://{ingest}/v1/events/batch", data=body, method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                if response.status != 202:
                    sys.exit(f"ingest answered {response.status}")
            if args.mode == "steady":
                wait_for("the batch's deliveries", delivered((batch + 1) * BATCH), 600)
        wait_for("every delivery", delivered(events // BATCH * BATCH), 600)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=300)
        receiver.shutdown()
    return profile


def inclusive_counts(profile):
    """Reads each function's inclusive instruction count from a callgrind profile."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", profile],
                          capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)", line)
        if not match:
            continue
        name = re.sub(r" \[.*\]$", "", match.group(2))
        name = name.split(":", 1)[1] if ":" in name else name
        name = re.sub(r" \([\d,]+x\)$", "", name)
        key = "spin" if SPIN in name else name
        # A function in a call cycle is listed more than once; the largest count covers it.
        counts[key] = max(counts.get(key, 0), int(match.group(1).replace(",", "")))
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--belterd", default="target/release/belterd")
    parser.add_argument("--belter", default="target/release/belter")
    parser.add_argument("--events", default="500,1500", help="the two runs' event counts")
    parser.add_argument("--mode", choices=["steady", "burst"], default="steady")
    parser.add_argument("--out", default=None, help="directory for the profiles")
    args = parser.parse_args()
    small, large = (int(part) for part in args.events.split(","))
    if large <= small:
        sys.exit("--events needs two counts, the second larger, such as 500,1500")
    out = args.out or tempfile.mkdtemp(prefix="belter-callgrind-")
    os.makedirs(out, exist_ok=True)
    profiles = [run(args, events, out) for events in (small, large)]
    first, second = (inclusive_counts(profile) for profile in profiles)
    per_event = lambda key: (second.get(key, 0) - first.get(key, 0)) / (large - small)
    total = per_event("PROGRAM TOTALS") - per_event("spin")
    print(f"instructions per delivered event, {args.mode}, {small} and {large} events ({out})")
    print(f"{'total, without spinning':<26}{total:>12,.0f}")
    for label, key in ROWS:
        print(f"{label:<26}{per_event(key):>12,.0f}")


if __name__ == "__main__":
    main()
