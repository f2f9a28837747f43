//! The Faktory protocol layer: everything the gateway says to Faktory goes through here.
//!
//! # Layout
//! - `url.rs`: [`FaktoryUrl`], parsed from `FAKTORY_URL`.
//! - `resp.rs`: the incremental RESP reply parser ([`ReplyParser`], [`Reply`], [`ParseError`]).
//! - `error.rs`: [`Error`], [`ServerError`], [`TlsError`].
//! - `command.rs`: encoding command lines into a reused write buffer; [`FailCommand`].
//! - `handshake.rs`: `HI`/`HELLO`, password hashing, [`Identity`].
//! - `transport.rs`: the TCP or TLS byte stream under a connection.
//! - `connection.rs`: [`Connection`] (one authenticated connection with pipelined batch
//!   commands), [`ConnectOptions`], [`BeatState`].
//! - `endpoint.rs`: [`Endpoint`], a server and how to connect to it.
//! - `backoff.rs`: [`connect_with_retry`]; [`Backoff`], re-exported from the crate
//!   `faktory-gateway-backoff` (shared with the worker SDK).
//!
//! Jobs are raw JSON bytes in both directions; the gateway parses what it needs itself.
//! A [`Connection`] is owned by one task; run one per concurrent pipeline.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), faktory_gateway::faktory::Error> {
//! use faktory_gateway::faktory::{Connection, FaktoryUrl};
//!
//! let url = FaktoryUrl::from_env()?; // FAKTORY_URL, default tcp://localhost:7419
//! let mut conn = Connection::connect(&url, None).await?;
//! let failed = conn
//!     .push_bulk(br#"[{"jid":"a1b2c3d4e5f6","jobtype":"email","args":[1]}]"#)
//!     .await?;
//! assert!(failed.is_empty());
//! let jobs = conn.fetch(&["default".to_owned()], 10).await?; // 10 FETCHes, one round trip
//! let jids: Vec<String> = jobs
//!     .iter()
//!     .filter_map(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
//!     .filter_map(|job| job["jid"].as_str().map(str::to_owned))
//!     .collect();
//! for result in conn.ack_many(&jids).await? {
//!     result.expect("faktory accepted the ack");
//! }
//! conn.end().await
//! # }
//! ```

mod backoff;
mod command;
mod connection;
mod endpoint;
mod error;
mod handshake;
mod resp;
mod transport;
mod url;

pub use backoff::{Backoff, connect_with_retry, connect_with_retry_using};
pub use command::FailCommand;
pub use connection::{BeatState, ConnectOptions, Connection};
pub use endpoint::Endpoint;
pub use error::{Error, ServerError, TlsError};
pub use handshake::Identity;
pub use resp::{DEFAULT_MAX_REPLY, ParseError, Reply, ReplyParser};
pub use url::{DEFAULT_PORT, DEFAULT_URL, FaktoryUrl, URL_ENV_VAR};
