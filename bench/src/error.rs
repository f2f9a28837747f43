//! The benchmark library's error type.

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `faktory` crate client failed (connect, push, fetch, ack).
    #[error("faktory client")]
    Faktory(#[source] faktory::Error),
    /// The gateway's Faktory protocol layer failed (producers).
    #[error("faktory protocol: {0}")]
    Protocol(String),
    /// A local I/O operation failed (sockets, child processes, files).
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A gRPC call to the gateway failed.
    #[error("gateway call")]
    Grpc(#[source] tonic::Status),
    /// Connecting to the gateway failed.
    #[error("gateway connection")]
    Transport(#[source] tonic::transport::Error),
    /// The worker SDK failed.
    #[error("worker sdk: {0}")]
    Sdk(String),
    /// A scenario could not be set up or did not finish as expected.
    #[error("{0}")]
    Setup(String),
}

impl From<faktory::Error> for Error {
    fn from(e: faktory::Error) -> Self {
        Error::Faktory(e)
    }
}

impl From<tonic::Status> for Error {
    fn from(e: tonic::Status) -> Self {
        Error::Grpc(e)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(e)
    }
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
