//! The Faktory protocol layer: everything the gateway says to Faktory goes through here.
//!
//! Layout:
//! - [`url`]: [`FaktoryUrl`], parsed from `FAKTORY_URL`.
//! - [`resp`]: the incremental RESP reply parser ([`ReplyParser`], [`Reply`]).
//! - [`error`]: [`Error`], [`ServerError`], [`TlsError`].
//! - [`command`]: encoding of the command lines into a reused write buffer, [`FailCommand`].
//! - [`handshake`]: `HI`/`HELLO`, password hashing, [`Identity`].
//! - `transport`: the TCP or TLS byte stream under a connection.
//! - [`connection`]: [`Connection`], one authenticated connection with pipelined commands.
//! - [`backoff`]: [`Backoff`] and [`connect_with_retry`].
//!
//! Jobs are raw JSON bytes in both directions; the gateway parses what it needs itself.

pub mod backoff;
pub mod command;
pub mod connection;
pub mod error;
pub mod handshake;
pub mod resp;
mod transport;
pub mod url;

pub use backoff::{Backoff, connect_with_retry, connect_with_retry_using};
pub use command::FailCommand;
pub use connection::{BeatState, ConnectOptions, Connection};
pub use error::{Error, ServerError, TlsError};
pub use handshake::Identity;
pub use resp::{ParseError, Reply, ReplyParser};
pub use url::FaktoryUrl;
