//! The protocol layer's error type: [`Error`] for anything a Faktory operation can fail with,
//! [`ServerError`] for Faktory's own `-KIND message` replies and [`TlsError`] for TLS set-up.
//!
//! No message here ever contains the Faktory password.

use std::{fmt, io, path::PathBuf, time::Duration};

use super::resp::ParseError;

/// Everything that can go wrong talking to Faktory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `FAKTORY_URL` could not be understood; `reason` says which part is wrong.
    #[error("invalid faktory url: {reason}")]
    InvalidUrl {
        /// What is wrong with the URL (never contains the password).
        reason: String,
    },
    /// A socket read or write failed.
    #[error("i/o error talking to faktory")]
    Io(#[source] io::Error),
    /// TLS could not be set up or the TLS handshake failed.
    #[error("tls error talking to faktory")]
    Tls(#[source] TlsError),
    /// Faktory sent bytes that are not a valid RESP reply.
    #[error("malformed reply from faktory")]
    Protocol(#[source] ParseError),
    /// Faktory sent a well-formed reply that makes no sense for the command.
    #[error("unexpected reply to {command} from faktory: {reply}")]
    UnexpectedReply {
        /// The command that got the reply.
        command: &'static str,
        /// A printable, shortened rendering of the reply.
        reply: String,
    },
    /// Faktory answered the command with an error reply (`-ERR ...`).
    #[error("faktory returned an error")]
    Server(#[source] ServerError),
    /// Faktory refused the password (or asked for one and the URL has none).
    #[error("faktory authentication failed: {reason}")]
    Auth {
        /// Why, in Faktory's words or ours (never contains the password).
        reason: String,
    },
    /// Faktory closed the connection.
    #[error("faktory closed the connection")]
    Closed,
    /// An earlier operation on this connection failed or was cancelled half-way, so the
    /// request/reply stream is out of step; reconnect.
    #[error("connection is unusable after an earlier failure")]
    Broken,
    /// An operation took longer than its deadline.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The caller's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The caller passed something that cannot be sent (for example a queue name with spaces).
    #[error("invalid argument: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Whether a fresh connection might succeed where this one failed: network, TLS handshake,
    /// protocol and timeout failures are retryable; bad URLs, bad passwords, bad arguments,
    /// Faktory's own per-command errors and cancellation are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io(_)
            | Error::Protocol(_)
            | Error::UnexpectedReply { .. }
            | Error::Closed
            | Error::Broken
            | Error::Timeout { .. } => true,
            // InvalidData is rustls refusing the certificate: retrying will not change that.
            Error::Tls(TlsError::Handshake(e)) => e.kind() != io::ErrorKind::InvalidData,
            Error::Tls(_) => false,
            Error::InvalidUrl { .. }
            | Error::Server(_)
            | Error::Auth { .. }
            | Error::Cancelled
            | Error::InvalidInput { .. } => false,
        }
    }

    /// Whether the connection this error came from must be dropped. Only Faktory's per-command
    /// error replies and argument errors leave the connection usable.
    pub fn breaks_connection(&self) -> bool {
        !matches!(self, Error::Server(_) | Error::InvalidInput { .. })
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Protocol(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// An error reply from Faktory, such as `-ERR Job not found`: `kind` is the first word
/// (`ERR`, `NOTUNIQUE`, ...), `message` the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error kind, the first word of the reply (e.g. `ERR`).
    pub kind: String,
    /// The human-readable rest of the reply.
    pub message: String,
}

impl ServerError {
    /// Splits an error line (without the leading `-`) into kind and message.
    pub fn from_line(line: &[u8]) -> ServerError {
        let text = String::from_utf8_lossy(line);
        match text.split_once(' ') {
            Some((kind, message)) => ServerError {
                kind: kind.to_owned(),
                message: message.to_owned(),
            },
            None => ServerError {
                kind: text.into_owned(),
                message: String::new(),
            },
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{} {}", self.kind, self.message)
        }
    }
}

impl std::error::Error for ServerError {}

/// Why TLS to Faktory could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The extra CA file could not be read.
    #[error("cannot read ca file {path}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The extra CA file holds no PEM certificate.
    #[error("no pem certificate in ca file {path}")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls rejected a certificate or its configuration.
    #[error("invalid tls configuration")]
    Config(#[source] rustls::Error),
    /// The URL's host is not a valid TLS server name.
    #[error("{host:?} is not a valid tls server name")]
    ServerName {
        /// The host from the URL.
        host: String,
    },
    /// The TLS handshake failed (bad certificate, wrong name, not a TLS server, ...).
    #[error("tls handshake failed")]
    Handshake(#[source] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_splits_kind_and_message() {
        let e = ServerError::from_line(b"ERR Job not found");
        assert_eq!(e.kind, "ERR");
        assert_eq!(e.message, "Job not found");
        assert_eq!(e.to_string(), "ERR Job not found");
        let bare = ServerError::from_line(b"SHUTDOWN");
        assert_eq!(bare.kind, "SHUTDOWN");
        assert_eq!(bare.message, "");
        assert_eq!(bare.to_string(), "SHUTDOWN");
    }

    #[test]
    fn retryable_classification() {
        assert!(Error::Closed.is_retryable());
        assert!(!Error::Auth { reason: "x".into() }.is_retryable());
        let server = Error::Server(ServerError::from_line(b"ERR Job not found"));
        assert!(!server.is_retryable());
        assert!(!server.breaks_connection());
        assert!(Error::Closed.breaks_connection());
    }
}
