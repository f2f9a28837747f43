//! Faktory Gateway: a gRPC gateway that runs beside a Faktory server and
//! speaks gRPC to everyone else. Producers submit jobs in batches with `Push`;
//! remote workers open one `Work` stream each and receive jobs in batches up
//! to a window they choose, while the gateway does Faktory's one-job-per-round
//! -trip FETCH/ACK dance locally, where round trips are cheap.
//!
//! # Layout
//! - [`server`]: [`serve`], the gRPC server (service, auth, health,
//!   reflection, TLS, limits, drain on shutdown) and the HTTP servers
//!   beside it.
//! - `http`: the HTTP/1.1 server: `GET /metrics`, and the HTTP/JSON API
//!   (`POST /v1/jobs`, `GET /v1/workers`) on `--http-listen`.
//! - `admin`: the `Admin` gRPC service (`ListWorkers`).
//! - [`workers`]: [`WorkerSnapshot`], one open session in the workers
//!   listing.
//! - [`config`]: [`Config`], every option (clap, env fallbacks).
//! - [`runtime`]: the tokio runtime the binary runs the gateway on (its
//!   threads, and the wake coalescing that handles replies arriving one at
//!   a time in one wakeup while the gateway is busy).
//! - [`delivery`]: the delivery path (sessions, windows, fetch engine,
//!   leases, redelivery, relays, Faktory presence, drain).
//! - [`submit`]: the submit path (validation, coalescing into PUSHB).
//! - [`job`]: proto `Job` <-> Faktory job JSON.
//! - [`faktory`]: the Faktory protocol layer (connections, commands, RESP).
//! - [`auth`]: bearer tokens for producers, workers and operators.
//! - [`tls`]: TLS on the gRPC port.
//! - [`metrics`]: Prometheus metrics (per-queue counters included).
//! - [`error`]: the crate's [`Error`] and its gRPC status.
//! - `fast_hash`: hash maps with foldhash's fast hasher for the per-job paths.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), faktory_gateway::Error> {
//! use clap::Parser;
//!
//! let config = faktory_gateway::Config::try_parse_from([
//!     "faktory-gateway",
//!     "--faktory-url",
//!     "tcp://localhost:7419",
//! ])
//! .expect("valid flags");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
//! faktory_gateway::serve(config, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

/// The delivery path: Faktory jobs to remote workers over `Work` streams.
pub mod delivery;

/// The crate's error type.
pub mod error;

/// The gRPC server.
pub mod server;

pub use config::Config;
pub use delivery::DeliveryPath;
pub use error::Error;
pub use server::{HttpListeners, serve, serve_with};
pub use workers::WorkerSnapshot;

/// Conversion between the wire `Job` and Faktory job JSON.
pub mod job;

/// The Faktory protocol layer (connections, commands, RESP parsing).
pub mod faktory;

/// Authentication of `Push` and `Work` calls by bearer token.
pub mod auth;

/// Every gateway option, parsed by clap.
pub mod config;

/// Prometheus metrics.
pub mod metrics;

/// The HTTP/1.1 server: metrics and the HTTP/JSON API.
mod http;

/// Hash maps with a fast hasher, for the per-job paths.
mod fast_hash;

/// The `Admin` gRPC service.
mod admin;

/// The workers listing.
pub mod workers;

/// The submit path: validation, coalescing and PUSHB.
pub mod submit;

/// TLS on the gRPC port.
pub mod tls;

/// The gateway's tokio runtime (threads, wake coalescing).
pub mod runtime;
