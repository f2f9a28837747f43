//! The crate's [`Error`]: why the gateway could not start or keep serving,
//! and its translation to a gRPC [`Status`](tonic::Status) at the edge (details go to logs,
//! not to clients); [`chain`], an error with its causes as one line.

use std::net::SocketAddr;

use tonic::Status;

use crate::tls::TlsConfigError;

/// Why [`serve`](crate::serve) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gRPC TLS certificate or key could not be used.
    #[error("cannot use the tls certificate or key")]
    Tls(#[source] TlsConfigError),
    /// The gRPC server could not be set up or failed while serving.
    #[error("grpc server failed")]
    Transport(#[source] tonic::transport::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("cannot build the grpc reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The metrics listener could not be bound.
    #[error("cannot listen for metrics on {addr}")]
    MetricsListen {
        /// The configured address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP API listener could not be bound.
    #[error("cannot listen for the http api on {addr}")]
    HttpListen {
        /// The configured address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// A Faktory operation failed.
    #[error("faktory operation failed")]
    Faktory(#[source] crate::faktory::Error),
    /// The gRPC server task ended by itself (panicked or was aborted).
    #[error("the grpc server task ended unexpectedly")]
    ServerTask(#[source] tokio::task::JoinError),
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Faktory(_) => Status::unavailable("faktory is unavailable"),
            _ => Status::internal("internal gateway error"),
        }
    }
}

/// `error` followed by its causes, `": "`-separated: the text for logs and
/// for reasons sent to clients (the Faktory protocol layer never puts the
/// password in an error).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_hide_details() {
        let status = Status::from(Error::Faktory(crate::faktory::Error::Closed));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(!status.message().contains("closed"));
    }
}
