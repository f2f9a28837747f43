//! A Faktory protocol test server: an in-process stand-in for real Faktory 1.10 in tests and
//! benchmarks, faithful to what a client can observe (replies, error texts, job encoding,
//! retry/backoff/dead rules, reservation expiry, worker heartbeats, FETCH blocking), with a
//! virtual clock so time-dependent behaviour can be tested in milliseconds. With a
//! [`CostModel`] ([`ServerConfig::cost`]) it also answers at a real Faktory's pace; without
//! one (the default for tests) it answers as fast as memory allows.
//!
//! # Layout
//! - `config.rs`: [`ServerConfig`], [`TlsIdentity`].
//! - `cost.rs`: [`CostModel`]: Faktory's service times, waking costs and server-wide capacity.
//! - `cost_fit.rs`: [`cost_fit::fit`]: the model constants that reproduce a real server's
//!   rates at the calibration points.
//! - `pacer.rs`: one connection's service timeline under a cost model.
//! - `server.rs`: [`TestServer`]: binding, accept loop, periodic ticker, stop/restart listener.
//! - `handle.rs`: [`ServerHandle`]: inspection and control for tests (`advance_clock`, quiet...).
//! - `connection.rs`: one task per connection: handshake, read/execute/write loop (paced when
//!   a cost model is set), FETCH waits.
//! - `auth.rs`: `HI` greeting, `HELLO` parsing, password hash.
//! - `command.rs`: parsing a command line.
//! - `execute.rs`: what each command does and replies.
//! - `resp.rs`: RESP reply encoding.
//! - `job.rs`: the job record, normalised like Faktory's Go struct.
//! - `store.rs`: queues, reservations, scheduled/retry/dead sets, failure handling.
//! - `waiters.rs`: blocked FETCHes, served first come first served like `BRPOP`.
//! - `workers.rs`: worker processes, BEAT, quiet/terminate, heartbeat reaping.
//! - `clock.rs`: the virtual clock and Faktory's timestamp format.
//! - `shared.rs`: state shared by connections, ticker and handle; periodic tasks; INFO.
//! - `counters.rs`: [`Counters`].
//! - `tls.rs`: rustls acceptor.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use faktory_test_server::TestServer;
//!
//! let server = TestServer::start().await?;
//! let url = server.url(); // "tcp://127.0.0.1:PORT": hand this to the code under test
//! # let _ = url;
//! let handle = server.handle();
//! handle.advance_clock(Duration::from_secs(60)); // retries, expiries, heartbeats: at once
//! assert_eq!(handle.queue_len("default"), 0);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Checking it against a real Faktory
//! `tests/conformance.rs` runs one set of checks against this server and, when `FAKTORY_URL`
//! is set, the same checks against a real server:
//! `FAKTORY_URL=tcp://host:7419 cargo test -p faktory-test-server --test conformance`.
//!
//! # Where it knowingly differs from Faktory
//! - Storage is in memory; there is no Redis, no persistence, no web UI.
//! - `MUTATE` is not implemented (it answers `-ERR unknown command MUTATE`).
//! - Numbers in `args`/`custom` keep their exact JSON form; Go would round-trip them through
//!   float64.
//! - Worker state (quiet/terminate) applies to every connection of a wid.
//! - Command lines longer than [`ServerConfig::max_line`] are refused and the connection closed.
//! - Inputs that crash a real Faktory connection (`ACK` with no argument, `QUEUE PAUSE` with no
//!   queue) get an `-ERR` instead.
//! - Without a cost model it is 10-100x faster than Faktory (no Redis round trips): benchmarks
//!   against it measure the client, not the server. With [`CostModel::faktory_1_10`] (the
//!   binary's default) throughput tracks a real Faktory 1.10.0 within the bounds in
//!   `docs/test-server-model.md`; single replies may leave up to 1 ms early (tokio's timer
//!   granularity), and latency spikes, GC pauses and Redis persistence are not modelled.

mod auth;
mod clock;
mod command;
mod config;
mod connection;
mod cost;
pub mod cost_fit;
mod counters;
mod execute;
mod handle;
mod job;
mod pacer;
mod resp;
mod server;
mod shared;
mod store;
mod tls;
mod waiters;
mod workers;

pub use auth::password_hash;
pub use config::{ServerConfig, TlsIdentity};
pub use cost::CostModel;
pub use counters::Counters;
pub use handle::ServerHandle;
pub use server::TestServer;
pub use tls::TlsError;
pub use workers::{ProcessState, WorkerInfo};
