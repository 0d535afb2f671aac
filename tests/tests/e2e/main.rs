//! End-to-end tests: the real `belterd` binary on a temporary directory, driven through its
//! ingest port and control socket, delivering to real receivers on 127.0.0.1.

mod batch;
mod cli;
mod config_file;
mod crash;
mod delivery;
mod early_response;
mod endpoints;
mod faults;
mod files;
mod formats;
mod fuzz;
mod hostile;
mod ingest;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod packaging;
mod replay;
mod restart;
mod retention;
mod retry;
mod rules;
mod secrets;
mod soak;
mod ssrf;
mod stats;
mod stream;
mod tls;
