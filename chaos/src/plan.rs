//! What each job is and what must become of it: the run's queue and jids,
//! the deterministic failure injection (by a hash of the jid), and each
//! class's expected end.

use bytes::Bytes;
use faktory_gateway_proto::v1::Job;

/// The errtype of injected handler failures.
pub(crate) const INJECTED: &str = "ChaosInjected";
/// Faktory's errtype for an expired reservation (the job comes back as a
/// retry, one retry used).
pub(crate) const RESERVATION_EXPIRED: &str = "ReservationExpired";
/// The only jobtype of the run.
pub(crate) const JOBTYPE: &str = "chaos";
/// Reservation length of every chaos job: long enough that moving Faktory's
/// clock forward to bring retries back never expires a job a live gateway
/// holds.
pub(crate) const RESERVE_FOR_SECS: i64 = 3600;

/// One run's jobs: their queue, which is unique to the run (so a run
/// against a shared Faktory touches nobody else's jobs) and also starts
/// every jid, the seed, and the reservation length.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The run's only queue, e.g. `chaos-1f2e3d`.
    pub(crate) queue: String,
    /// Part of every jid.
    pub(crate) seed: u64,
    /// `reserve_for` of every job (0: Faktory's default, 1800 s).
    pub(crate) reserve_for: i64,
}

/// What the chaos harness does to a job and what must become of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Runs once, succeeds: ends acked.
    Plain,
    /// 4% of jobs: the handler fails it while its failure record does not
    /// say [`INJECTED`] (so once), `retry` 25: Faktory retries it and the
    /// second run succeeds; ends acked after exactly two runs.
    FailOnce,
    /// 1% of jobs: the handler fails it, `retry` -1: it goes straight to
    /// Faktory's dead set with errtype [`INJECTED`] after one run.
    FailToDead,
}

impl Class {
    /// How many handler runs the class needs when nothing goes wrong.
    pub(crate) fn expected_runs(self) -> u32 {
        match self {
            Class::Plain | Class::FailToDead => 1,
            Class::FailOnce => 2,
        }
    }

    /// Whether the handler fails this job (given its failure record's
    /// errtype, if any).
    pub(crate) fn injects(self, failure_errtype: Option<&str>) -> bool {
        self != Class::Plain && failure_errtype != Some(INJECTED)
    }
}

/// FNV-1a: a stable hash, the same on every run and platform.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The class of `jid`: 5% of jids fail (one in five of those to the dead set).
pub(crate) fn class_of(jid: &str) -> Class {
    match fnv1a(jid.as_bytes()) % 100 {
        0 => Class::FailToDead,
        1..=4 => Class::FailOnce,
        _ => Class::Plain,
    }
}

impl Plan {
    /// The jid of job `index`.
    pub(crate) fn jid(&self, index: usize) -> String {
        format!("{}-{}-{index:07}", self.queue, self.seed)
    }

    /// Job `index`, ready to push.
    pub(crate) fn job(&self, index: usize) -> Job {
        let jid = self.jid(index);
        let retry = match class_of(&jid) {
            Class::FailToDead => -1,
            Class::Plain | Class::FailOnce => 25,
        };
        Job {
            jid,
            jobtype: JOBTYPE.into(),
            queue: self.queue.clone(),
            args: Bytes::from(format!("[{index}]")),
            retry: Some(retry),
            reserve_for: self.reserve_for,
            ..Job::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_five_percent_fail() {
        let plan = Plan {
            queue: "chaos-abc123".to_owned(),
            seed: 1,
            reserve_for: RESERVE_FOR_SECS,
        };
        let n = 100_000;
        let failing = (0..n)
            .filter(|&i| class_of(&plan.jid(i)) != Class::Plain)
            .count();
        let dead = (0..n)
            .filter(|&i| class_of(&plan.jid(i)) == Class::FailToDead)
            .count();
        assert!((4_500..5_500).contains(&failing), "{failing}");
        assert!((800..1_200).contains(&dead), "{dead}");
    }

    #[test]
    fn injection_stops_once_faktory_remembers_it() {
        assert!(Class::FailOnce.injects(None));
        assert!(!Class::FailOnce.injects(Some(INJECTED)));
        assert!(Class::FailOnce.injects(Some("ReservationExpired")));
        assert!(!Class::Plain.injects(None));
    }
}
