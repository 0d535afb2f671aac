//! The scenarios, one module each. Every scenario starts its own belterd on a fresh data
//! directory and its own receivers, and stops them when it ends.

pub mod backlog;
pub mod baseline;
pub mod fanout;
pub mod isolation;
pub mod latency;
pub mod throughput;
