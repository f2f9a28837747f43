//! The delivery path: Faktory jobs to remote workers over `Work` streams.
//!
//! # Layout
//! - [`dispatcher`]: the shared state and its rules (routing, windows, fetch
//!   demand, waiting-time limits, settlements queue).
//! - [`hello`]: validation of a worker's `Hello`.
//! - [`window`]: a worker's window.
//! - [`lease`]: one job reserved at Faktory for the gateway.
//! - [`settle`]: what the gateway must still tell Faktory about a job.
//! - [`batch`]: cutting deliveries into messages by count and bytes.

pub(crate) mod batch;
pub(crate) mod dispatcher;
pub(crate) mod hello;
pub(crate) mod lease;
pub(crate) mod settle;
pub(crate) mod window;
