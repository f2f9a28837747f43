//! A settlement: what the gateway must still tell Faktory about one leased
//! job (ACK it, FAIL it, or release it with a PUSHed copy and an ACK).
//! Settlements wait in the dispatcher's queue until a relay connection sends
//! them; one that could not be sent is queued again, never dropped.

use bytes::Bytes;

/// What to tell Faktory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SettleKind {
    /// The job is done: `ACK`.
    Ack,
    /// The job failed: `FAIL` with these details (Faktory applies its retry
    /// policy).
    Fail {
        /// Error class.
        errtype: String,
        /// Human-readable message.
        message: String,
        /// Backtrace lines.
        backtrace: Vec<String>,
    },
    /// Give the job back without using a retry: `PUSH` a copy of `raw`
    /// scheduled a second ahead, then `ACK` the reservation.
    Release {
        /// The job exactly as fetched.
        raw: Bytes,
    },
}

/// One settlement of one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settle {
    /// The job id.
    pub(crate) jid: String,
    /// The lease's sequence number (see `Lease::seq`).
    pub(crate) seq: u64,
    /// What to do.
    pub(crate) kind: SettleKind,
}

impl Settle {
    /// A FAIL the gateway itself decided on, with an errtype saying why.
    pub(crate) fn gateway_fail(jid: String, seq: u64, errtype: &str, message: String) -> Settle {
        Settle {
            jid,
            seq,
            kind: SettleKind::Fail {
                errtype: errtype.to_owned(),
                message,
                backtrace: Vec::new(),
            },
        }
    }
}

/// Errtype of a job larger than any matching worker accepts.
pub(crate) const ERRTYPE_JOB_TOO_LARGE: &str = "JobTooLarge";
/// Errtype of a job no connected worker handles after the grace period.
pub(crate) const ERRTYPE_NO_WORKER: &str = "NoWorkerForJobtype";
/// Errtype of a job the gateway could not release back to Faktory.
pub(crate) const ERRTYPE_RELEASE_FAILED: &str = "GatewayReleaseFailed";
