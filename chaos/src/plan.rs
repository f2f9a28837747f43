//! What each job is and what must become of it: jids, the deterministic
//! failure injection (by a hash of the jid), and each class's expected end.

use bytes::Bytes;
use faktory_gateway_proto::v1::Job;

/// The errtype of injected handler failures.
pub(crate) const INJECTED: &str = "ChaosInjected";
/// The only queue and jobtype of the run.
pub(crate) const QUEUE: &str = "chaos";
/// See [`QUEUE`].
pub(crate) const JOBTYPE: &str = "chaos";
/// Reservation length of every job: long enough that moving Faktory's clock
/// forward to bring retries back never expires a job a live gateway holds.
pub(crate) const RESERVE_FOR_SECS: i64 = 3600;

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

/// The jid of job `index` in the run with `seed`.
pub(crate) fn jid(seed: u64, index: usize) -> String {
    format!("chaos-{seed}-{index:07}")
}

/// Job `index` of the run with `seed`, ready to push.
pub(crate) fn job(seed: u64, index: usize) -> Job {
    let jid = jid(seed, index);
    let retry = match class_of(&jid) {
        Class::FailToDead => -1,
        Class::Plain | Class::FailOnce => 25,
    };
    Job {
        jid,
        jobtype: JOBTYPE.into(),
        queue: QUEUE.into(),
        args: Bytes::from(format!("[{index}]")),
        retry: Some(retry),
        reserve_for: RESERVE_FOR_SECS,
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_five_percent_fail() {
        let n = 100_000;
        let failing = (0..n)
            .filter(|&i| class_of(&jid(1, i)) != Class::Plain)
            .count();
        let dead = (0..n)
            .filter(|&i| class_of(&jid(1, i)) == Class::FailToDead)
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
