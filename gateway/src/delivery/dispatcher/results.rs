//! Results from workers: acks and fails (with the lease they settle, or by
//! jid), and jobs a worker gives back unstarted (the wire's `Releases`),
//! which the gateway takes back to deliver again: "release" alone means
//! giving a job back to Faktory (`SettleKind::Release`).

use super::*;

impl Dispatcher {
    /// Acks from session `from`'s worker (for any jid: one this gateway
    /// holds no lease of goes to Faktory by jid). Each is confirmed to the
    /// session once Faktory answered.
    pub(crate) fn ack(&mut self, from: u64, jids: Vec<String>) {
        for jid in jids {
            self.queue_result(from, jid, SettleKind::Ack);
        }
        self.after_results();
    }

    /// Failures from session `from`'s worker, as [`Dispatcher::ack`]. A
    /// failure without errtype is refused and its job stays unfinished.
    pub(crate) fn fail(
        &mut self,
        from: u64,
        failures: Vec<faktory_gateway_proto::v1::JobFailure>,
    ) -> Vec<RejectedResult> {
        let mut rejected = Vec::new();
        for f in failures {
            if f.errtype.is_empty() {
                rejected.push(reject(f.jid, REASON_ERRTYPE_REQUIRED));
                continue;
            }
            let kind = SettleKind::Fail {
                errtype: f.errtype,
                message: f.message,
                backtrace: f.backtrace,
            };
            self.queue_result(from, f.jid, kind);
        }
        self.after_results();
        rejected
    }

    /// Queues a worker's result: with the lease it settles, or by jid when
    /// the gateway holds none not already settling.
    pub(super) fn queue_result(&mut self, from: u64, jid: String, kind: SettleKind) {
        let lease = self.detach(&jid);
        if let Some(slot) = self.sessions.get_mut(&from) {
            slot.foreign.remove(&jid);
            slot.awaiting += 1;
        }
        self.settles.push(Settle {
            jid,
            lease,
            reply_to: Some(from),
            kind,
        });
    }

    /// Jobs a worker gives back unstarted: they go to another session (not
    /// `from`), attempt raised, or back to Faktory after the redelivery grace.
    pub(crate) fn take_back(&mut self, from: u64, jids: Vec<String>) -> Vec<RejectedResult> {
        let now = Instant::now();
        let mut rejected = Vec::new();
        let mut back = Vec::new();
        for jid in jids {
            let Some(lease) = self.leases.get_mut(&jid) else {
                let foreign = self
                    .sessions
                    .get_mut(&from)
                    .is_some_and(|slot| slot.foreign.remove(&jid));
                let reason = if foreign {
                    REASON_NOT_DELIVERED_HERE
                } else {
                    REASON_UNKNOWN_JID
                };
                rejected.push(reject(jid, reason));
                continue;
            };
            match lease.holder {
                Holder::Session(_) | Holder::Away { .. } => {
                    leave_session(&mut self.sessions, lease.holder, &jid);
                    lease.attempt += 1;
                    lease.holder = Holder::Pending { since: now };
                    self.avoid.insert(jid.clone(), from);
                    back.push(jid);
                }
                // Already waiting for a session: nothing to do.
                Holder::Pending { .. } => {}
                Holder::Settling => rejected.push(reject(jid, REASON_UNKNOWN_JID)),
            }
        }
        self.wait_first(back, now);
        rejected
    }

    /// Takes a lease away from whoever holds it, for settling. `None` when
    /// the jid is unknown or already settling.
    pub(super) fn detach(&mut self, jid: &str) -> Option<u64> {
        let lease = self.leases.get_mut(jid)?;
        match lease.holder {
            Holder::Settling => return None,
            Holder::Pending { .. } => {
                self.pending.retain(|j| j != jid);
                self.avoid.remove(jid);
            }
            Holder::Session(_) | Holder::Away { .. } => {
                leave_session(&mut self.sessions, lease.holder, jid);
            }
        }
        lease.holder = Holder::Settling;
        Some(lease.seq)
    }

    pub(super) fn after_results(&mut self) {
        self.fill(Instant::now());
        self.fetch_wake.notify_one();
        self.settles.notify();
        self.changed.notify_waiters();
    }
}
