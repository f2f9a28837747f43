//! placeholder

/// Conversion between the wire `Job` and Faktory job JSON.
pub mod job;

/// The Faktory protocol layer (connections, commands, RESP parsing).
pub mod faktory;
