//! Fixtures for end-to-end tests of `belterd`, `belter` and `belter-tui`: a real daemon process
//! on a temporary directory, a recording webhook receiver on `127.0.0.1`, a plain HTTP client for
//! the ingest API, an independent signature check, and bounded waits.

pub mod binaries;
pub mod daemon;
pub mod endpoint;
pub mod faults;
pub mod http;
pub mod queue;
pub mod raw;
pub mod receiver;
pub mod signature;
pub mod wait;

pub use daemon::{DaemonOptions, DaemonProcess, StderrMode};
pub use receiver::{ReceivedRequest, Receiver, Reply};
