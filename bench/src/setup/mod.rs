//! What a run stands on: the Faktory under test, the emulated link, child
//! processes (the gateway among them) and the run's own queues.

pub mod child;
pub mod gateway_process;
pub mod link;
pub mod run_queues;
pub mod target;
