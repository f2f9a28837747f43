//! placeholder

/// The delivery path: Faktory jobs to remote workers over `Work` streams.
pub mod delivery;

/// Conversion between the wire `Job` and Faktory job JSON.
pub mod job;

/// The Faktory protocol layer (connections, commands, RESP parsing).
pub mod faktory;
