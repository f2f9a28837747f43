//! Write [Faktory](https://contribsys.com/faktory/) workers that run anywhere:
//! one gRPC stream to a Faktory Gateway instead of one Faktory connection per
//! handler slot.
//!
//! The worker opens a single `Work` stream, receives jobs in batches, runs
//! them on up to `concurrency` handlers at once and sends acks and fails back
//! in batches. Latency is hidden by prefetch, not by slots: the window the
//! worker asks for is `concurrency + prefetch`, where prefetch follows the
//! measured bandwidth-delay product (completion rate × round-trip time, with
//! headroom, capped by [`WorkerBuilder::max_prefetch`]) and shrinks when
//! handlers are slow; buffered jobs that then wait too long are given back to
//! the gateway for idle workers. Unstarted prefetched jobs are released on
//! shutdown, so the buffer costs neither jobs nor Faktory retries.
//!
//! The worker survives real networks: heartbeats on the stream, a quiet stream
//! is torn down, reconnects back off exponentially with jitter, and results
//! not confirmed by the gateway (it confirms each once Faktory has it) are
//! sent again on the next stream. Jobs the worker holds when a stream breaks
//! stay with it: the next stream's hello lists them, and it runs and settles
//! them there. Given several gateways ([`WorkerBuilder::gateways`], a
//! comma-separated `GATEWAY_URL`, or a host name with several addresses) it
//! spreads over them and fails over from one to the next.
//!
//! Handlers get context on their [`Job`]: a cancellation signal
//! ([`Job::cancelled`], [`Job::is_cancelled`]) that fires when shutdown
//! begins and ahead of the reservation deadline, the job's W3C trace context
//! ([`Job::traceparent`], recorded on the handler's span), and the worker's
//! producer [`Client`] ([`Job::client`]) for follow-up jobs. Middleware
//! ([`WorkerBuilder::middleware`]) wraps every handler; hooks
//! ([`WorkerBuilder::on_start`], `on_quiet`, `on_stop`) mark the worker's
//! life. Producers push with [`Client`] and [`NewJob`].
//!
//! What a builder does not set comes from the environment: `GATEWAY_URL`,
//! `GATEWAY_WORKER_TOKEN`, `GATEWAY_PRODUCER_TOKEN`, `GATEWAY_TLS_CA`,
//! `GATEWAY_TLS_DOMAIN`, `WORKER_CONCURRENCY`, `WORKER_QUEUES`,
//! `WORKER_LABELS`, `WORKER_MAX_PREFETCH`, `WORKER_ID` (the crate README has
//! the table).
//!
//! # Example
//! ```no_run
//! use faktory_gateway_worker::{Job, JobError, NewJob, Next, Worker};
//!
//! #[derive(serde::Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let worker = Worker::builder()
//!         .gateway("http://127.0.0.1:7421") // default: GATEWAY_URL
//!         .queues(["critical", "default"])
//!         .concurrency(20) // default: WORKER_CONCURRENCY, else 10
//!         .middleware(|job: Job, next: Next| async move {
//!             let result = next.run(job).await; // outermost: registered first
//!             if let Err(error) = &result {
//!                 eprintln!("job failed: {error}");
//!             }
//!             result
//!         })
//!         .register("add", |job: Job| async move {
//!             let (Add { a, b },) = job.args()?;
//!             let Some(sum) = a.checked_add(b) else {
//!                 return Err(JobError::new("Overflow", format!("{a} + {b} overflows")));
//!             };
//!             // A follow-up job over the worker's own connection, continuing
//!             // this job's trace.
//!             let report = NewJob::new("report", (sum,))?;
//!             job.client().push(report).await?;
//!             Ok(())
//!         })
//!         .register_blocking("resize", |job: Job| {
//!             let (path,): (String,) = job.args()?;
//!             std::fs::metadata(&path)?; // CPU or blocking work runs on the blocking pool
//!             Ok(())
//!         })
//!         .with_graceful_shutdown(async {
//!             let _ = tokio::signal::ctrl_c().await;
//!         })
//!         .build()?;
//!     let stats = worker.stats();
//!     let reason = worker.run().await?;
//!     println!("stopped: {reason:?}, {:?}", stats.snapshot());
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//! - [`builder`](WorkerBuilder): options and handler registration (`builder.rs`).
//! - [`Worker`] and [`StopReason`]: the reconnect loop (`worker.rs`).
//!   Several gateways: [`WorkerBuilder::gateways`].
//! - [`Job`]: what a handler receives, with its context (`job.rs`);
//!   [`CancelReason`] and the cancellation signal (`cancel.rs`); W3C trace
//!   context and the handler span (`trace.rs`).
//! - [`Next`]: middleware around handlers (`middleware.rs`); start, quiet
//!   and stop hooks (`hooks.rs`).
//! - [`Client`] / [`ClientBuilder`]: the producer client (`client.rs`);
//!   [`NewJob`]: a job to push (`new_job.rs`); [`PushReceipt`] /
//!   [`PushOutcome`]: one answer per pushed job (`push.rs`).
//! - [`JobError`]: how failures and panics are reported (`failure.rs`).
//! - [`StatsHandle`] / [`Stats`]: counters (`stats.rs`).
//! - [`Error`]: build and fatal errors (`error.rs`).
//! - Internal: `session.rs` (one stream: deliveries, results, heartbeats,
//!   drain), `state.rs` (what outlives a stream: running handlers,
//!   buffered jobs, unconfirmed results), `flow.rs` (adaptive window), `results.rs` (result
//!   batching and confirmation), `handler.rs` (async/blocking handlers, panic
//!   capture), `gateways.rs` (which gateway next: several URLs, host names
//!   resolved to each address, spread by worker id, fail-over, stickiness),
//!   `connect.rs` (endpoint for one gateway, token, TLS, handshake),
//!   `settings.rs` (defaults and environment variables); the reconnect
//!   backoff is the crate `faktory-gateway-backoff`, shared with the gateway.

mod builder;
mod cancel;
mod client;
mod connect;
mod error;
mod failure;
mod flow;
mod gateways;
mod handler;
mod hooks;
mod job;
mod middleware;
mod new_job;
mod push;
mod results;
mod session;
mod settings;
mod state;
mod stats;
mod trace;
mod worker;

pub use builder::WorkerBuilder;
pub use cancel::CancelReason;
pub use client::{Client, ClientBuilder};
pub use error::Error;
pub use failure::JobError;
pub use job::{ArgsError, Job};
pub use middleware::Next;
pub use new_job::NewJob;
pub use push::{PushOutcome, PushReceipt};
pub use stats::{Stats, StatsHandle};
pub use worker::{StopReason, Worker};

/// The contract's generated types, for callers who push jobs or inspect
/// deliveries (`faktory_gateway_proto::v1`).
pub use faktory_gateway_proto::v1 as proto;
