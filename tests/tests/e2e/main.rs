//! End-to-end tests: the real `belterd` binary on a temporary directory, driven through its
//! ingest port and control socket, delivering to real receivers on 127.0.0.1.

mod cli;
mod crash;
mod delivery;
mod endpoints;
mod faults;
mod files;
mod hostile;
mod ingest;
mod limits;
mod replay;
mod restart;
mod retention;
mod retry;
mod rules;
mod stats;
mod stream;
mod tls;
