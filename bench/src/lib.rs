//! Benchmark and demo for the Faktory Gateway: remote workers through the
//! gateway against direct `faktory`-crate workers, across emulated links.
//!
//! # Layout
//! Grouped by role; a scenario's parts are found by following
//! [`runs::load`], which starts them.
//! - [`setup`]: what a run stands on. [`setup::target`] (the in-process
//!   test server or a real Faktory, `FAKTORY_URL`), [`setup::link`] (the
//!   emulated link: delay proxy, or none at RTT 0), [`setup::child`] (helper
//!   processes started from the bench binary), [`setup::gateway_process`]
//!   (the gateway as a child process, CPU and RSS apart),
//!   [`setup::run_queues`] (the run's own queue prefix, emptied at the end).
//! - [`workers`]: what produces and consumes jobs. [`workers::direct`]
//!   (direct workers on the `faktory` crate's `Worker`),
//!   [`workers::gateway_path`] (worker-SDK workers through the gateway),
//!   [`workers::producer`] (the backlog feeder and the paced, stamped
//!   producer), [`workers::probe`] (the handler body every worker runs, and
//!   the job args).
//! - [`runs`]: what the benchmark runs. [`runs::scenario`] (workloads,
//!   worker paths, push modes, the full and short plans), [`runs::load`]
//!   (one running scenario: feeder, gateway, link, workers),
//!   [`runs::runner`] (a throughput scenario measured into a row),
//!   [`runs::rounds`] (the rounds of `--rounds N` combined into one row per
//!   scenario),
//!   [`runs::push`] (direct `PUSHB` against the gateway's `Push`),
//!   [`runs::cpu_cost`] (co-located direct throughput with and without a
//!   gateway beside it).
//! - [`measure`]: [`measure::process_stats`] (latency histogram, `/proc`
//!   CPU/RSS, TCP connection counts) and [`measure::faktory_stats`]
//!   (Faktory's processed count, reserved set and queue sizes from `INFO`).
//! - [`output`]: [`output::report`] (result rows, text table and JSON),
//!   [`output::goals`] (the project's performance goals evaluated against a
//!   run), [`output::progress`] (progress lines on stderr).
//! - [`error`]: the library's [`Error`].
//!
//! # Example
//! ```
//! use faktory_gateway_bench::runs::scenario::Plan;
//! let plan = Plan::short();
//! assert!(!plan.scenarios.is_empty());
//! ```

pub mod error;
pub mod measure;
pub mod output;
pub mod runs;
pub mod setup;
pub mod workers;

pub use error::Error;
