//! The crate's error type.

use std::path::PathBuf;

/// Why a worker or client could not be built, a worker had to stop for good,
/// a job could not be made, or a push call failed as a whole.
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
    /// A file named by a setting could not be read.
    #[error("cannot read {path:?} (from {name})")]
    SettingFile {
        /// The builder method or environment variable.
        name: &'static str,
        /// The path as given.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// A job for [`Client::push`](crate::Client::push) could not be made:
    /// its args are not a JSON array, or a value does not serialize.
    #[error("invalid job {field}: {reason}")]
    InvalidJob {
        /// The job's field (`args`, `custom`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
        /// The serializer's complaint, if it had one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A `Push` call failed as a whole (no per-job results): the gateway
    /// could not be reached, refused the token, or the call broke. Jobs of
    /// the call may or may not be in Faktory; pushing them again with the
    /// same jids never loses one (it may then run twice).
    #[error("push call failed ({code:?})", code = status.code())]
    Push {
        /// The call's status.
        #[source]
        status: tonic::Status,
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
