//! placeholder

/// The delivery path: Faktory jobs to remote workers over `Work` streams.
pub mod delivery;

/// Conversion between the wire `Job` and Faktory job JSON.
pub mod job;

/// The Faktory protocol layer (connections, commands, RESP parsing).
pub mod faktory;

/// Authentication of `Push` and `Work` calls by bearer token.
pub mod auth;

/// Every gateway option, parsed by clap.
pub mod config;

/// Prometheus metrics and their HTTP endpoint.
pub mod metrics;

/// The submit path: validation, coalescing and PUSHB.
pub mod submit;

/// TLS on the gRPC port.
pub mod tls;
