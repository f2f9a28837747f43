//! Benchmark and demo for the Faktory Gateway: remote workers through the
//! gateway against direct `faktory`-crate workers, across emulated links.
//!
//! # Layout
//! - [`scenario`]: workloads, worker paths, push modes, the full and short plans.
//! - [`measure`]: latency histogram, `/proc` CPU/RSS and TCP connection counts.
//! - [`probe`]: the handler body every worker runs, and the job args.
//! - [`producer`]: the backlog feeder and the paced (stamped) producer.
//! - [`direct`]: direct workers built on the `faktory` crate's `Worker`.
//! - [`gateway_path`]: worker-SDK workers through the gateway.
//! - [`child`]: helper processes started from the bench binary.
//! - [`gateway_process`]: the gateway as a child process (CPU and RSS apart).
//! - [`target`]: the in-process test server or a real Faktory (`FAKTORY_URL`).
//! - [`faktory_stats`]: Faktory's processed count, reserved set and queue
//!   sizes, polled from `INFO`.
//! - [`run_queues`]: the run's own queue prefix, and emptying its queues at the end.
//! - [`load`]: one running scenario (feeder, gateway, link, workers).
//! - [`runner`]: measures a throughput scenario into a table row.
//! - [`push`]: direct `PUSHB` against the gateway's `Push`.
//! - [`cpu_cost`]: co-located direct throughput with and without a gateway beside it.
//! - [`progress`]: progress lines on stderr.
//! - [`link`]: the emulated link (delay proxy, or none at RTT 0).
//! - [`report`]: result rows, text table and JSON.
//! - [`targets`]: the project's performance targets evaluated against a run.
//! - [`error`]: the library's [`Error`].
//!
//! # Example
//! ```
//! use faktory_gateway_bench::scenario::Plan;
//! let plan = Plan::short();
//! assert!(!plan.scenarios.is_empty());
//! ```

pub mod child;
pub mod cpu_cost;
pub mod direct;
pub mod error;
pub mod faktory_stats;
pub mod gateway_path;
pub mod gateway_process;
pub mod link;
pub mod load;
pub mod measure;
pub mod probe;
pub mod producer;
pub mod progress;
pub mod push;
pub mod report;
pub mod run_queues;
pub mod runner;
pub mod scenario;
pub mod target;
pub mod targets;

pub use error::Error;
