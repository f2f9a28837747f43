//! Read-only views for operators: the workers listing (one
//! [`WorkerSnapshot`] per open session) and the queues of the jobs a
//! worker's results name, for the per-queue metrics.

use super::*;
use crate::workers::WorkerSnapshot;

impl Dispatcher {
    /// Every open session, oldest first. `wid` names sessions the way their
    /// welcome does (`<wid>-<id>`).
    pub(crate) fn workers(&self, wid: &str) -> Vec<WorkerSnapshot> {
        let mut ids: Vec<&u64> = self.sessions.keys().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let slot = &self.sessions[id];
                let spec = &slot.spec;
                let mut jobtypes: Vec<String> = spec.jobtypes.iter().cloned().collect();
                jobtypes.sort_unstable();
                let stats = &slot.stats;
                WorkerSnapshot {
                    session_id: format!("{wid}-{id}"),
                    worker_id: spec.worker_id.clone(),
                    hostname: spec.hostname.clone(),
                    labels: spec.labels.clone(),
                    queues: spec.queues.clone(),
                    jobtypes,
                    window: slot.window.size(),
                    in_flight: u32::try_from(slot.unfinished.len() + slot.foreign.len())
                        .unwrap_or(u32::MAX),
                    jobs_done: stats.done(),
                    jobs_failed: stats.failed(),
                    jobs_per_second: stats.per_second(),
                    heartbeat_rtt_us: stats
                        .rtt()
                        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                    connected_unix_ms: stats.connected_unix_ms,
                    draining: slot.draining,
                }
            })
            .collect()
    }

    /// The queue of each job in `jids` that the gateway holds a lease of
    /// and is not settling yet, in order (jobs of other gateways, or
    /// already settling, are left out).
    pub(crate) fn queues_of<'a>(
        &'a self,
        jids: impl IntoIterator<Item = &'a str>,
    ) -> impl Iterator<Item = &'a str> {
        jids.into_iter().filter_map(|jid| {
            self.leases
                .get(jid)
                .filter(|lease| lease.holder != Holder::Settling)
                .map(|lease| lease.job.queue())
        })
    }
}
