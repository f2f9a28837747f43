//! Assignment: handing waiting jobs to sessions with room (see the rules in
//! the module docs of `dispatcher`).

use super::*;

enum Pick {
    Session(u64),
    Wait,
    TooLarge,
}

impl Dispatcher {
    /// Puts `jids` (jobs back from a session) at the front of the waiting
    /// line, in order, and assigns what sessions have room for.
    pub(super) fn wait_first(&mut self, jids: Vec<String>, now: Instant) {
        for jid in jids.into_iter().rev() {
            self.pending.push_front(jid);
        }
        self.fill(now);
        self.fetch_wake.notify_one();
        self.changed.notify_waiters();
    }

    /// Hands waiting jobs to sessions with room.
    pub(super) fn fill(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let mut open_total: usize = self.sessions.values().map(SessionSlot::open).sum();
        if open_total == 0 {
            return;
        }
        // Every waiting jid is looked at once, in order; those that keep
        // waiting go back at the end, so the queue keeps its order (and this
        // runs for every fetched job without allocating).
        let mut left = self.pending.len();
        while left > 0 {
            if open_total == 0 {
                // The unvisited ones were waiting before those put back.
                self.pending.rotate_left(left);
                break;
            }
            left -= 1;
            let Some(jid) = self.pending.pop_front() else {
                break;
            };
            let Some(lease) = self.leases.get_mut(&jid) else {
                continue;
            };
            if !matches!(lease.holder, Holder::Pending { .. }) {
                continue;
            }
            if lease.remaining(now) < self.rules.lease_margin {
                debug!(jid = %jid, "reservation too close to its end to deliver; releasing");
                self.avoid.remove(&jid);
                let release = release_of(lease);
                self.settles.hand_over(lease, release);
                continue;
            }
            match pick(&self.sessions, lease, self.avoid.get(&jid).copied()) {
                Pick::Session(id) => {
                    let slot = self.sessions.get_mut(&id).expect("picked session exists");
                    lease.holder = Holder::Session(id);
                    self.assignments += 1;
                    slot.last_assigned = self.assignments;
                    self.avoid.remove(&jid);
                    slot.outbox.push(jid.clone());
                    slot.unfinished.insert(jid);
                    slot.wake.notify_one();
                    open_total -= 1;
                }
                Pick::Wait => self.pending.push_back(jid),
                Pick::TooLarge => {
                    warn!(jid = %jid, bytes = lease.delivery_len, "job larger than any matching worker accepts; failing it");
                    let message = format!(
                        "job of {} bytes exceeds the max_message_bytes of every worker for queue {:?} and jobtype {:?}",
                        lease.delivery_len,
                        lease.job.queue(),
                        lease.job.jobtype()
                    );
                    let fail = Settle::gateway_fail(
                        jid.clone(),
                        lease.seq,
                        ERRTYPE_JOB_TOO_LARGE,
                        message,
                    );
                    self.avoid.remove(&jid);
                    self.settles.hand_over(lease, fail);
                }
            }
        }
    }
}

/// The session for `lease` (see the module docs for the rule): most open
/// window first, then least recently assigned, then lowest id. One pass over
/// the sessions.
fn pick(sessions: &Map<u64, SessionSlot>, lease: &Lease, avoid: Option<u64>) -> Pick {
    let (queue, jobtype) = (lease.job.queue(), lease.job.jobtype());
    let mut matched = false;
    let mut fits = false;
    // (open window, last assigned, id) of the best session so far.
    let mut best: Option<(usize, u64, u64)> = None;
    for (&id, slot) in sessions {
        if !slot.matches(queue, jobtype) {
            continue;
        }
        matched = true;
        if !fits_alone(lease.delivery_len, slot.spec.max_message_bytes) {
            continue;
        }
        fits = true;
        if avoid == Some(id) {
            continue;
        }
        let open = slot.open();
        let better = |&(o, last, i): &(usize, u64, u64)| {
            open.cmp(&o)
                .then(last.cmp(&slot.last_assigned))
                .then(i.cmp(&id))
                .is_gt()
        };
        if open > 0 && best.as_ref().is_none_or(better) {
            best = Some((open, slot.last_assigned, id));
        }
    }
    match best {
        Some((_, _, id)) => Pick::Session(id),
        None if matched && !fits => Pick::TooLarge,
        None => Pick::Wait,
    }
}
