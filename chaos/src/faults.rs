//! The faults the run injects, how they are chosen (a seeded RNG and
//! weights; abrupt kills are planned by the run instead) and how many of each
//! happened.

use std::fmt;

use rand::Rng;
use rand::rngs::StdRng;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Fault {
    /// An SDK worker's task is aborted (no graceful shutdown) and replaced.
    AbortWorker,
    /// Every worker stream is cut at the link emulator.
    CutWorkerStreams,
    /// The gateway is stopped gracefully (drain) and started on the same port.
    RestartGateway,
    /// The gateway's runtime is shut down mid-flight and a new gateway
    /// started on the same port.
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
            Fault::KillGateway => "gateway killed (abrupt)",
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

/// Picks the next fault among `enabled` by weight; `None` when `enabled`
/// is empty.
pub(crate) fn pick(rng: &mut StdRng, enabled: &[Fault]) -> Option<Fault> {
    let allowed = enabled;
    if allowed.is_empty() {
        return None;
    }
    let total: u32 = allowed.iter().map(|f| f.weight()).sum();
    let mut roll = rng.random_range(0..total);
    for &fault in allowed {
        if roll < fault.weight() {
            return Some(fault);
        }
        roll -= fault.weight();
    }
    unreachable!("the roll is below the total weight")
}
