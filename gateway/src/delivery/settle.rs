//! A settlement: what the gateway must still tell Faktory about one job
//! (ACK it, FAIL it, or release it with a PUSHed copy and an ACK), and what
//! Faktory answered. Settlements wait in the dispatcher's queue until a relay
//! connection sends them; one that could not be sent is queued again, never
//! dropped.

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

/// One settlement of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settle {
    /// The job id.
    pub(crate) jid: String,
    /// The sequence number of the lease it settles (see `Lease::seq`);
    /// `None` for a worker's result for a job this gateway holds no lease of
    /// (delivered by another gateway, or before a restart), which goes to
    /// Faktory by jid.
    pub(crate) lease: Option<u64>,
    /// The session whose worker sent the result, to be told once Faktory
    /// has answered; `None` for the gateway's own settlements.
    pub(crate) reply_to: Option<u64>,
    /// What to do.
    pub(crate) kind: SettleKind,
}

impl SettleKind {
    /// A FAIL the gateway itself decided on, with an errtype saying why.
    fn gateway_fail(errtype: &str, message: String) -> SettleKind {
        SettleKind::Fail {
            errtype: errtype.to_owned(),
            message,
            backtrace: Vec::new(),
        }
    }
}

impl Settle {
    /// A FAIL the gateway itself decided on for lease `seq`, with an errtype
    /// saying why.
    pub(crate) fn gateway_fail(jid: String, seq: u64, errtype: &str, message: String) -> Settle {
        Settle {
            jid,
            lease: Some(seq),
            reply_to: None,
            kind: SettleKind::gateway_fail(errtype, message),
        }
    }

    /// What settles the same lease instead of this settlement: an ACK once a
    /// release copy is pushed, or a gateway FAIL when it could not be.
    pub(crate) fn instead(&self, kind: SettleKind) -> Settle {
        Settle {
            jid: self.jid.clone(),
            lease: self.lease,
            reply_to: self.reply_to,
            kind,
        }
    }

    /// A gateway FAIL in place of this settlement (a release that could not
    /// be made), settling the same lease.
    pub(crate) fn failed_instead(&self, errtype: &str, message: String) -> Settle {
        self.instead(SettleKind::gateway_fail(errtype, message))
    }
}

/// What Faktory answered to one settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answered {
    /// The job id.
    pub(crate) jid: String,
    /// As [`Settle::lease`].
    pub(crate) lease: Option<u64>,
    /// As [`Settle::reply_to`].
    pub(crate) reply_to: Option<u64>,
    /// `None` when Faktory took it, else Faktory's refusal.
    pub(crate) refused: Option<String>,
}

impl Answered {
    /// The answer `refused` (none: taken) to `settle`.
    pub(crate) fn to(settle: Settle, refused: Option<String>) -> Answered {
        Answered {
            jid: settle.jid,
            lease: settle.lease,
            reply_to: settle.reply_to,
            refused,
        }
    }
}

/// Errtype of a job larger than any matching worker accepts.
pub(crate) const ERRTYPE_JOB_TOO_LARGE: &str = "JobTooLarge";
/// Errtype of a job no connected worker handles after the grace period.
pub(crate) const ERRTYPE_NO_WORKER: &str = "NoWorkerForJobtype";
/// Errtype of a job the gateway could not release back to Faktory.
pub(crate) const ERRTYPE_RELEASE_FAILED: &str = "GatewayReleaseFailed";
