//! Settling: relays take settlements from the `SettleQueue`
//! (`settle_queue.rs`) and put back what they could not send; Faktory's
//! answers forget leases and confirm results to sessions; the final release
//! hands everything held back to Faktory.

use super::*;

impl Dispatcher {
    /// Takes up to `max` settlements for a relay connection. The relay must
    /// report each of them back once: [`Dispatcher::settled`] or
    /// [`Dispatcher::requeue`].
    pub(crate) fn take_settlements(&mut self, max: usize) -> Vec<Settle> {
        self.settles.take(max)
    }

    /// Puts settlements a relay could not send back at the front, in order.
    pub(crate) fn requeue(&mut self, settles: Vec<Settle>) {
        self.settles.put_back(settles);
    }

    /// Records Faktory's answers: forgets the leases settled, and queues
    /// each worker result's confirmation (or Faktory's refusal) for the
    /// session it came on, if that is still open.
    pub(crate) fn settled(&mut self, done: Vec<Answered>) {
        for answer in done {
            self.settles.answered();
            if let Some(seq) = answer.lease
                && self
                    .leases
                    .get(&answer.jid)
                    .is_some_and(|l| l.seq == seq && l.holder == Holder::Settling)
            {
                self.leases.remove(&answer.jid);
            }
            let Some(slot) = answer.reply_to.and_then(|s| self.sessions.get_mut(&s)) else {
                continue;
            };
            slot.awaiting = slot.awaiting.saturating_sub(1);
            if slot.settled.is_empty() && slot.refused.is_empty() {
                slot.confirm_wake.notify_one();
            }
            match answer.refused {
                None => slot.settled.push(answer.jid),
                Some(words) => slot.refused.push(reject(answer.jid, &words)),
            }
        }
        self.changed.notify_waiters();
        self.fetch_wake.notify_one();
    }

    /// Settlements queued or sent and not yet answered: jobs whose outcome
    /// Faktory has not confirmed yet (mostly jobs workers finished, which
    /// stay reserved at Faktory until then).
    pub(crate) fn settle_backlog(&self) -> usize {
        self.settles.backlog()
    }

    /// Number of leases not yet settled at Faktory.
    pub(crate) fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// Whether settlements are waiting for a relay.
    pub(crate) fn has_settlements(&self) -> bool {
        self.settles.is_waiting()
    }

    pub(crate) fn release_everything(&mut self) {
        self.closed = true;
        self.pending.clear();
        self.avoid.clear();
        self.away.clear();
        for slot in self.sessions.values_mut() {
            slot.unfinished.clear();
            slot.outbox.clear();
        }
        let mut n = 0;
        for lease in self.leases.values_mut() {
            if lease.holder != Holder::Settling {
                let release = release_of(lease);
                self.settles.hand_over(lease, release);
                n += 1;
            }
        }
        if n > 0 {
            debug!(jobs = n, "releasing held jobs back to Faktory");
        }
        self.changed.notify_waiters();
    }
}
