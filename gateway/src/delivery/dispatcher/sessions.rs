//! Sessions: registering (and taking over the jobs a returning worker
//! holds), unregistering, windows, what each session should send, draining.

use super::*;

impl Dispatcher {
    /// Registers a session, or `None` when the gateway is shutting down.
    pub(crate) fn register(&mut self, spec: SessionSpec) -> Option<SessionTicket> {
        if !self.accepting {
            return None;
        }
        let id = self.next_session;
        self.next_session += 1;
        let window = Window::new(spec.window, self.rules.max_window);
        let wake = Arc::new(Notify::new());
        let confirm_wake = Arc::new(Notify::new());
        let drain = self.drain_notice.clone();
        if drain.is_some() {
            wake.notify_one();
        }
        let (unfinished, foreign) = self.claim(id, &spec.holding);
        let stats = Arc::new(SessionStats::new(crate::delivery::clock::unix_now_ms()));
        self.sessions.insert(
            id,
            SessionSlot {
                spec,
                window,
                unfinished,
                foreign,
                awaiting: 0,
                settled: Vec::new(),
                refused: Vec::new(),
                outbox: Vec::new(),
                wake: wake.clone(),
                confirm_wake: confirm_wake.clone(),
                draining: drain.is_some(),
                drain,
                last_assigned: 0,
                stats: stats.clone(),
            },
        );
        self.fill(Instant::now());
        self.fetch_wake.notify_one();
        Some(SessionTicket {
            id,
            wake,
            confirm_wake,
            window: window.size(),
            stats,
        })
    }

    /// Takes over, for new session `id`, the jobs its worker says it holds:
    /// leases of this gateway not already settling move to it (from a
    /// broken stream, the waiting queue or another session); jids without a
    /// lease are returned as foreign. Returns (unfinished, foreign).
    pub(super) fn claim(&mut self, id: u64, holding: &[String]) -> (Set<String>, Set<String>) {
        let mut unfinished = Set::default();
        let mut foreign = Set::default();
        let mut unqueue = Set::default();
        for jid in holding {
            let Some(lease) = self.leases.get_mut(jid) else {
                foreign.insert(jid.clone());
                continue;
            };
            match lease.holder {
                // Its result (or release) is on its way to Faktory.
                Holder::Settling => continue,
                Holder::Pending { .. } => {
                    unqueue.insert(jid.clone());
                }
                Holder::Session(_) | Holder::Away { .. } => {
                    leave_session(&mut self.sessions, lease.holder, jid);
                }
            }
            self.avoid.remove(jid);
            lease.holder = Holder::Session(id);
            unfinished.insert(jid.clone());
        }
        if !unqueue.is_empty() {
            self.pending.retain(|j| !unqueue.contains(j));
        }
        if !holding.is_empty() {
            debug!(
                session = id,
                kept = unfinished.len(),
                foreign = foreign.len(),
                "worker came back holding jobs"
            );
        }
        (unfinished, foreign)
    }

    /// Removes a session whose stream ended. Jobs assigned to it and not yet
    /// sent go to other sessions at once. Delivered ones do too when the
    /// worker closed the stream (attempt raised); when it broke, they wait
    /// the reconnect grace for the worker to come back for them.
    pub(crate) fn unregister(&mut self, id: u64, end: StreamEnd) {
        let Some(slot) = self.sessions.remove(&id) else {
            return;
        };
        let now = Instant::now();
        let keep = end == StreamEnd::Broken && !self.rules.reconnect_grace.is_zero();
        let unsent: Set<&String> = slot.outbox.iter().collect();
        let mut back = Vec::with_capacity(slot.unfinished.len());
        let mut away = Vec::new();
        // Unsent jobs first, in their order, then the delivered ones.
        for jid in slot
            .outbox
            .iter()
            .chain(slot.unfinished.iter().filter(|j| !unsent.contains(j)))
        {
            let Some(lease) = self.leases.get_mut(jid) else {
                continue;
            };
            if lease.holder != Holder::Session(id) {
                continue;
            }
            if unsent.contains(jid) {
                lease.holder = Holder::Pending { since: now };
                back.push(jid.clone());
            } else if keep {
                lease.holder = Holder::Away { since: now };
                away.push(jid.clone());
            } else {
                lease.attempt += 1;
                lease.holder = Holder::Pending { since: now };
                back.push(jid.clone());
            }
        }
        if !back.is_empty() || !away.is_empty() {
            debug!(
                session = id,
                redelivered = back.len(),
                kept_for_reconnect = away.len(),
                "jobs of a closed session"
            );
        }
        if !away.is_empty() {
            self.away.push_back((now, away));
        }
        self.wait_first(back, now);
    }

    /// Changes a session's window.
    pub(crate) fn set_window(&mut self, id: u64, requested: u32) -> u32 {
        let max = self.rules.max_window;
        let Some(slot) = self.sessions.get_mut(&id) else {
            return 0;
        };
        slot.window = Window::new(requested, max);
        let size = slot.window.size();
        self.fill(Instant::now());
        self.fetch_wake.notify_one();
        size
    }

    /// Takes what session `id` should send: its newly assigned jobs and any
    /// drain notice.
    pub(crate) fn take_outgoing(&mut self, id: u64) -> Outgoing {
        let Some(slot) = self.sessions.get_mut(&id) else {
            return Outgoing::default();
        };
        let deliveries = slot
            .outbox
            .drain(..)
            .filter_map(|jid| {
                let lease = self.leases.get(&jid)?;
                (lease.holder == Holder::Session(id))
                    .then(|| (lease.delivery(), lease.delivery_len))
            })
            .collect();
        let out = Outgoing {
            deliveries,
            settled: std::mem::take(&mut slot.settled),
            refused: std::mem::take(&mut slot.refused),
            drain: slot.drain.take(),
        };
        if !out.settled.is_empty() || !out.refused.is_empty() {
            // A drain may be waiting for these to be taken.
            self.changed.notify_waiters();
        }
        out
    }

    /// Whether any session still holds unfinished jobs (its own or
    /// foreign), or results its worker is owed a confirmation of: a drain
    /// waits for both, so that a worker learns that its last results are in
    /// Faktory before its stream ends.
    pub(crate) fn sessions_busy(&self) -> bool {
        self.sessions.values().any(|s| {
            !s.unfinished.is_empty()
                || !s.foreign.is_empty()
                || s.awaiting > 0
                || !s.settled.is_empty()
                || !s.refused.is_empty()
        })
    }

    /// Jobs fetched and not at any worker: waiting for a session, or assigned
    /// and not yet taken by its session task. A gateway crash leaves these
    /// to Faktory's reservation expiry.
    pub(crate) fn undelivered(&self) -> usize {
        self.pending.len()
            + self
                .sessions
                .values()
                .map(|s| s.outbox.len())
                .sum::<usize>()
    }

    /// Sum of the open window of all sessions.
    pub(crate) fn open_window(&self) -> usize {
        self.sessions.values().map(SessionSlot::open).sum()
    }

    /// Number of open sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sends `drain` to every session (and to sessions opened later) and
    /// stops delivering to them. With `refuse_new`, new sessions are refused.
    pub(crate) fn drain_sessions(&mut self, drain: Drain, refuse_new: bool) {
        if refuse_new {
            self.accepting = false;
        }
        for slot in self.sessions.values_mut() {
            slot.draining = true;
            slot.drain = Some(drain.clone());
            slot.wake.notify_one();
        }
        self.drain_notice = Some(drain);
        self.fetch_wake.notify_one();
    }
}

/// A drain notice for `reason` whose deadline is `within` from now.
pub(crate) fn drain_notice(reason: &str, within: Duration) -> Drain {
    Drain {
        deadline_unix_ms: unix_ms_after(within),
        reason: reason.to_owned(),
    }
}
