//! Benchmark and demo for the Faktory Gateway: remote workers through the
//! gateway against direct `faktory`-crate workers, across emulated links.
//!
//! # Layout
//! - [`scenario`]: workloads, worker paths, push modes, the full and short plans.
//! - [`measure`]: latency histogram, `/proc` CPU/RSS and TCP connection counts.
//! - [`probe`]: the handler body every worker runs, and the job args.
//! - [`producer`]: the backlog feeder and the paced (stamped) producer.
//! - [`direct`]: direct workers built on the `faktory` crate's `Worker`.
//! - [`error`]: the library's [`Error`].
//!
//! # Example
//! ```
//! use faktory_gateway_bench::scenario::Plan;
//! let plan = Plan::short();
//! assert!(!plan.scenarios.is_empty());
//! ```

pub mod direct;
pub mod error;
pub mod measure;
pub mod probe;
pub mod producer;
pub mod scenario;

pub use error::Error;
