//! placeholder

/// Conversion between the wire `Job` and Faktory job JSON.
pub mod job;
