//! Waiting-time rules: jobs no session took, and broken streams' jobs whose
//! worker did not come back within the reconnect grace.

use super::*;

impl Dispatcher {
    /// Applies the waiting-time rules to jobs no session took: releases or
    /// fails those past their grace or too close to their reservation's end.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.end_reconnect_graces(now);
        let mut keep = VecDeque::with_capacity(self.pending.len());
        let mut queued = false;
        while let Some(jid) = self.pending.pop_front() {
            let Some(lease) = self.leases.get_mut(&jid) else {
                continue;
            };
            let Holder::Pending { since } = lease.holder else {
                continue;
            };
            let queue = lease.job.queue();
            let jobtype = lease.job.jobtype();
            let served = self
                .sessions
                .values()
                .any(|s| !s.draining && s.spec.serves_queue(queue));
            let runnable = self.sessions.values().any(|s| s.matches(queue, jobtype));
            let waited = now.saturating_duration_since(since);
            let settle = if lease.remaining(now) < self.rules.lease_margin {
                Some(release_of(lease))
            } else if served && !runnable {
                (waited >= self.rules.unknown_jobtype_grace).then(|| {
                    warn!(jid = %jid, jobtype, queue, "no connected worker runs this jobtype; failing the job");
                    Settle::gateway_fail(
                        jid.clone(),
                        lease.seq,
                        ERRTYPE_NO_WORKER,
                        format!(
                            "no worker connected to the gateway runs jobtype {jobtype:?} on queue {queue:?} (waited {} s)",
                            waited.as_secs()
                        ),
                    )
                })
            } else {
                (waited >= self.rules.redelivery_grace).then(|| release_of(lease))
            };
            match settle {
                Some(settle) => {
                    self.avoid.remove(&jid);
                    self.settles.hand_over(lease, settle);
                    queued = true;
                }
                None => keep.push_back(jid),
            }
        }
        self.pending = keep;
        if queued {
            self.fetch_wake.notify_one();
        }
    }

    /// Redelivers the jobs of broken streams whose worker did not come back
    /// for them within the reconnect grace.
    pub(super) fn end_reconnect_graces(&mut self, now: Instant) {
        let mut back = Vec::new();
        while let Some((broke, _)) = self.away.front() {
            if now.saturating_duration_since(*broke) < self.rules.reconnect_grace {
                break;
            }
            let (broke, jids) = self.away.pop_front().expect("front exists");
            for jid in jids {
                let Some(lease) = self.leases.get_mut(&jid) else {
                    continue;
                };
                if lease.holder == (Holder::Away { since: broke }) {
                    lease.attempt += 1;
                    lease.holder = Holder::Pending { since: now };
                    back.push(jid);
                }
            }
        }
        if back.is_empty() {
            return;
        }
        debug!(
            jobs = back.len(),
            "workers did not come back for their jobs; redelivering"
        );
        self.wait_first(back, now);
    }
}
