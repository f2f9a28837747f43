//! [`Options`]: what one chaos run does (jobs, workers, gateways, producers,
//! faults, time budget), set from the command line in `main.rs`, run by
//! `run.rs` and named in the summary's header by `verify.rs`.

use std::time::Duration;

use crate::faults::Fault;
use crate::plan::Plan;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The jobs: queue, seed (also the fault schedule's), reservation.
    pub(crate) plan: Plan,
    /// Jobs to push.
    pub(crate) jobs: usize,
    /// SDK workers, spread round-robin over the gateways.
    pub(crate) workers: usize,
    /// Gateways.
    pub(crate) gateways: usize,
    /// Concurrent producers, spread round-robin over the gateways.
    pub(crate) producers: usize,
    /// Time budget for the whole run.
    pub(crate) budget: Duration,
    /// Pause between faults: uniformly random in this range (ms).
    pub(crate) fault_gap_ms: (u64, u64),
    /// Most abrupt gateway kills.
    pub(crate) max_kills: u64,
    /// The fault kinds to inject.
    pub(crate) faults: Vec<Fault>,
}
