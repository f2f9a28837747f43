//! The faults the run injects, how they are chosen (a seeded RNG and
//! weights; abrupt kills are planned by the run instead), how many of each
//! happened, and when ([`FaultLog`], to attribute what went wrong to the
//! fault that most likely caused it).

use std::fmt;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum Fault {
    /// An SDK worker's task is aborted (no graceful shutdown) and replaced.
    AbortWorker,
    /// Every worker stream is cut at the link emulator.
    CutWorkerStreams,
    /// One gateway is stopped gracefully (drain) and started on the same
    /// port.
    RestartGateway,
    /// One gateway process is killed with SIGKILL mid-flight and a new
    /// one started on its port.
    KillGateway,
    /// Every gateway -> Faktory connection is cut at the link emulator.
    CutFaktoryConnections,
    /// The Faktory test server closes its listener and every connection,
    /// then listens again a moment later.
    RestartFaktoryListener,
}

impl Fault {
    /// Every kind, in report order.
    pub(crate) const ALL: [Fault; 6] = [
        Fault::AbortWorker,
        Fault::CutWorkerStreams,
        Fault::RestartGateway,
        Fault::KillGateway,
        Fault::CutFaktoryConnections,
        Fault::RestartFaktoryListener,
    ];

    /// Relative frequency.
    fn weight(self) -> u32 {
        match self {
            Fault::AbortWorker => 4,
            Fault::CutWorkerStreams | Fault::CutFaktoryConnections => 2,
            Fault::RestartGateway | Fault::KillGateway | Fault::RestartFaktoryListener => 1,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::AbortWorker => "worker aborted",
            Fault::CutWorkerStreams => "worker streams cut (link)",
            Fault::RestartGateway => "gateway restarted (graceful)",
            Fault::KillGateway => "gateway killed (SIGKILL)",
            Fault::CutFaktoryConnections => "faktory connections cut (link)",
            Fault::RestartFaktoryListener => "faktory listener restarted",
        })
    }
}

/// How many faults of each kind happened.
#[derive(Debug, Default, Clone)]
pub(crate) struct FaultCounts {
    counts: [u64; Fault::ALL.len()],
}

impl FaultCounts {
    /// Counts one `fault`.
    pub(crate) fn add(&mut self, fault: Fault) {
        self.counts[Self::index(fault)] += 1;
    }

    /// How many `fault`s happened.
    pub(crate) fn get(&self, fault: Fault) -> u64 {
        self.counts[Self::index(fault)]
    }

    /// All faults.
    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn index(fault: Fault) -> usize {
        Fault::ALL
            .iter()
            .position(|f| *f == fault)
            .expect("every fault is listed")
    }
}

/// When each fault struck, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct FaultLog {
    events: Vec<(Instant, Fault)>,
}

impl FaultLog {
    /// Notes that `fault` struck at `at` (later than every earlier one).
    pub(crate) fn push(&mut self, at: Instant, fault: Fault) {
        self.events.push((at, fault));
    }

    /// The first fault after `from` and no later than `until` (`None`: to
    /// the end): the likeliest cause of something that was fine at `from`
    /// and had gone wrong by `until`.
    pub(crate) fn first_between(&self, from: Instant, until: Option<Instant>) -> Option<Fault> {
        let start = self.events.partition_point(|(at, _)| *at <= from);
        self.events[start..]
            .first()
            .filter(|(at, _)| until.is_none_or(|until| *at <= until))
            .map(|(_, fault)| *fault)
    }
}

impl FaultLog {
    /// The last fault at or before `at`.
    pub(crate) fn last_before(&self, at: Instant) -> Option<Fault> {
        let end = self.events.partition_point(|(when, _)| *when <= at);
        self.events[..end].last().map(|(_, fault)| *fault)
    }

    /// The first fault among `kinds` after `from`, and when it struck.
    pub(crate) fn first_of_after(
        &self,
        kinds: &[Fault],
        from: Instant,
    ) -> Option<(Instant, Fault)> {
        let start = self.events.partition_point(|(at, _)| *at <= from);
        self.events[start..]
            .iter()
            .copied()
            .find(|(_, fault)| kinds.contains(fault))
    }

    /// The faults that struck after `from` and no later than `until`.
    pub(crate) fn between(&self, from: Instant, until: Instant) -> &[(Instant, Fault)] {
        let start = self.events.partition_point(|(at, _)| *at <= from);
        let end = self.events.partition_point(|(at, _)| *at <= until);
        &self.events[start..end.max(start)]
    }
}

/// Picks the next fault among `enabled` by weight; `None` when `enabled`
/// is empty.
pub(crate) fn pick(rng: &mut StdRng, enabled: &[Fault]) -> Option<Fault> {
    if enabled.is_empty() {
        return None;
    }
    let total: u32 = enabled.iter().map(|f| f.weight()).sum();
    let mut roll = rng.random_range(0..total);
    for &fault in enabled {
        if roll < fault.weight() {
            return Some(fault);
        }
        roll -= fault.weight();
    }
    unreachable!("the roll is below the total weight")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn attributes_to_the_first_fault_in_the_window() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut log = FaultLog::default();
        log.push(at(10), Fault::AbortWorker);
        log.push(at(20), Fault::KillGateway);
        assert_eq!(log.first_between(at(0), None), Some(Fault::AbortWorker));
        assert_eq!(log.first_between(at(10), None), Some(Fault::KillGateway));
        assert_eq!(log.first_between(at(11), Some(at(19))), None);
        assert_eq!(
            log.first_between(at(11), Some(at(20))),
            Some(Fault::KillGateway)
        );
        assert_eq!(log.first_between(at(20), None), None);
        assert_eq!(
            log.first_of_after(&[Fault::KillGateway], at(0)),
            Some((at(20), Fault::KillGateway))
        );
        assert_eq!(log.between(at(5), at(20)).len(), 2);
        assert_eq!(log.between(at(10), at(19)).len(), 0);
        assert_eq!(log.first_of_after(&[Fault::RestartGateway], at(0)), None);
        assert_eq!(log.last_before(at(5)), None);
        assert_eq!(log.last_before(at(15)), Some(Fault::AbortWorker));
        assert_eq!(log.last_before(at(20)), Some(Fault::KillGateway));
    }
}
