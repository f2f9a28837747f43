//! [`PushReceipt`] and [`PushOutcome`]: what became of one pushed job, read
//! from the contract's `PushResult`.

use faktory_gateway_proto::v1::{self, PushStatus};

/// The answer for one job of a push, in the order the jobs were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReceipt {
    /// The job's id.
    pub jid: String,
    /// What happened to it.
    pub outcome: PushOutcome,
}

impl PushReceipt {
    /// Whether Faktory holds the job.
    pub fn is_accepted(&self) -> bool {
        self.outcome == PushOutcome::Accepted
    }
}

/// What happened to one pushed job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Faktory holds the job.
    Accepted,
    /// Faktory refused the job because one with the same uniqueness key is
    /// already there (Faktory's `NOTUNIQUE`, with unique jobs enabled).
    Duplicate {
        /// Faktory's words.
        reason: String,
    },
    /// Faktory refused the job for another reason; not retryable as is.
    Rejected {
        /// Faktory's words.
        reason: String,
    },
    /// The gateway found the job invalid and did not send it; sending it
    /// again fails the same way.
    Invalid {
        /// The offending field of the contract's `Job` (e.g. `queue`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Faktory could not be reached or did not answer in time: the job is
    /// probably not in Faktory, but may be (the answer was lost). Pushing the
    /// same job again (same jid) never loses it and may run it twice.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Faktory's error code for a job refused by a uniqueness constraint.
const NOT_UNIQUE: &str = "NOTUNIQUE";

impl From<v1::PushResult> for PushReceipt {
    fn from(result: v1::PushResult) -> PushReceipt {
        let status = result.status();
        let reason = result.reason;
        let outcome = match status {
            PushStatus::Accepted => PushOutcome::Accepted,
            PushStatus::Invalid => PushOutcome::Invalid {
                field: result.field,
                reason,
            },
            PushStatus::Rejected if reason.starts_with(NOT_UNIQUE) => {
                PushOutcome::Duplicate { reason }
            }
            PushStatus::Rejected => PushOutcome::Rejected { reason },
            // UNSPECIFIED is never sent; a status this SDK does not know
            // (a newer gateway) promises nothing either.
            PushStatus::Unavailable | PushStatus::Unspecified => {
                PushOutcome::Unavailable { reason }
            }
        };
        PushReceipt {
            jid: result.jid,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: PushStatus, field: &str, reason: &str) -> v1::PushResult {
        v1::PushResult {
            jid: "j".into(),
            status: status.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn every_status_has_its_outcome() {
        let cases = [
            (result(PushStatus::Accepted, "", ""), PushOutcome::Accepted),
            (
                result(PushStatus::Invalid, "queue", "bad name"),
                PushOutcome::Invalid {
                    field: "queue".into(),
                    reason: "bad name".into(),
                },
            ),
            (
                result(PushStatus::Rejected, "", "NOTUNIQUE Job not unique"),
                PushOutcome::Duplicate {
                    reason: "NOTUNIQUE Job not unique".into(),
                },
            ),
            (
                result(PushStatus::Rejected, "", "ERR no"),
                PushOutcome::Rejected {
                    reason: "ERR no".into(),
                },
            ),
            (
                result(PushStatus::Unavailable, "", "timeout"),
                PushOutcome::Unavailable {
                    reason: "timeout".into(),
                },
            ),
        ];
        for (result, outcome) in cases {
            let receipt = PushReceipt::from(result);
            assert_eq!(receipt.jid, "j");
            assert_eq!(receipt.outcome, outcome);
        }
        let unknown = v1::PushResult {
            status: 99,
            ..result(PushStatus::Accepted, "", "?")
        };
        assert!(matches!(
            PushReceipt::from(unknown).outcome,
            PushOutcome::Unavailable { .. }
        ));
    }
}
