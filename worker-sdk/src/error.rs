//! The crate's error type.

/// Why a worker could not be built or had to stop for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `build` was called without any registered handler.
    #[error("no job handlers registered")]
    NoHandlers,
    /// A setting (or its environment variable) has an unusable value.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The builder method or environment variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The gateway URL or TLS settings were rejected.
    #[error("invalid gateway endpoint {url:?}")]
    Endpoint {
        /// The URL as given.
        url: String,
        /// The transport's complaint.
        #[source]
        source: tonic::transport::Error,
    },
    /// The gateway refused the worker in a way retrying cannot fix (bad token,
    /// invalid hello, unknown service).
    #[error("gateway refused the worker ({code:?})", code = status.code())]
    Refused {
        /// The gateway's answer.
        #[source]
        status: tonic::Status,
    },
}
