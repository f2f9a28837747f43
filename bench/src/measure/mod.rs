//! Measurement: of the processes on this machine, and of Faktory itself.

pub mod faktory_stats;
pub mod process_stats;
