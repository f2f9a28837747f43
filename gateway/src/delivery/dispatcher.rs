//! The dispatcher: the delivery path's one piece of shared state and the
//! rules that act on it. It knows every session (queues, jobtypes, window,
//! unfinished jobs), every lease (jobs reserved at Faktory for the gateway),
//! the jobs waiting for a session, the settlements waiting for a relay
//! connection, and how much to fetch for which queue list.
//!
//! It does no I/O and never waits: session, fetcher and relay tasks call it
//! under a short `parking_lot` lock and are woken through `Notify`s. That
//! keeps every rule here testable with plain function calls.
//!
//! Rules, in one place:
//! - A job goes to a non-draining session that serves its queue, runs its
//!   jobtype (empty jobtypes = any), accepts its size, and has open window;
//!   among those, the one with the most open window, and among equals the
//!   one that was assigned a job least recently (a new session first). That
//!   spreads work over all sessions when jobs arrive more slowly than the
//!   workers' total window, instead of the same sessions winning every tie.
//! - A job is never handed to a worker with less than the lease margin left
//!   on its reservation; it is released back to Faktory instead.
//! - A job waiting in the gateway is released (PUSH copy + ACK, no retry used)
//!   after the redelivery grace, unless workers serve its queue but none runs
//!   its jobtype: then it is FAILed with `NoWorkerForJobtype` after the
//!   unknown-jobtype grace. FAIL (visible in Faktory's retry set, with a
//!   backoff) is chosen over releasing because a release brings the job back a
//!   second later to wait again, pinning fetch capacity forever when no such
//!   worker ever comes; the retry's backoff gives a new worker time to appear.
//! - A job larger than every matching worker accepts is FAILed at once with
//!   `JobTooLarge`.
//! - Fetch demand for a queue list is the open window of the sessions with
//!   exactly that list, minus jobs already waiting for those queues, minus
//!   FETCHes already in flight for it.
//! - A worker's ack or fail goes to Faktory with the lease it settles, or by
//!   jid when the gateway holds none (the job was delivered by another
//!   gateway beside the same Faktory, or before a restart); the worker's
//!   session is told once Faktory answered (`Settled`, or `ResultRejected`
//!   with Faktory's words).
//! - When a stream breaks, the jobs delivered on it stay assigned to their
//!   worker (`Holder::Away`) for the reconnect grace; a new session whose
//!   hello lists them takes them over, and jids it lists that the gateway
//!   holds no lease of count against its window until their results come.
//!   After the grace, the rest are redelivered. A stream the worker closes
//!   itself frees its jobs at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1::{Delivery, Drain, RejectedResult};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::batch::fits_alone;
use super::hello::SessionSpec;
use super::lease::{Holder, Lease};
use super::settle::{Answered, ERRTYPE_JOB_TOO_LARGE, ERRTYPE_NO_WORKER, Settle, SettleKind};
use super::window::Window;
use crate::job::{FetchedJob, JobError};

/// Reason sent back for a release naming a jid the gateway does not hold.
pub(crate) const REASON_UNKNOWN_JID: &str = "unknown jid";
/// Reason sent back for a release of a job the worker listed in its hello
/// but this gateway did not deliver.
pub(crate) const REASON_NOT_DELIVERED_HERE: &str = "not delivered by this gateway, which cannot release it: run it, or it stays reserved at Faktory until its reservation ends";
/// Reason sent back for a failure without errtype.
pub(crate) const REASON_ERRTYPE_REQUIRED: &str = "errtype is required";

/// Time limits the dispatcher applies.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// How long a job may wait in the gateway for a session before it is
    /// released back to Faktory.
    pub(crate) redelivery_grace: Duration,
    /// How long a job whose jobtype no connected worker runs may wait before
    /// it is failed with `NoWorkerForJobtype`.
    pub(crate) unknown_jobtype_grace: Duration,
    /// Least reservation time a job must have left to be delivered.
    pub(crate) lease_margin: Duration,
    /// How long the jobs of a broken stream wait for their worker to
    /// reconnect and claim them before they are redelivered.
    pub(crate) reconnect_grace: Duration,
    /// Largest window a session gets.
    pub(crate) max_window: u32,
    /// Deepest FETCH pipeline on one connection.
    pub(crate) max_fetch_depth: usize,
    /// Settlements (queued, or sent and not yet answered by Faktory) at
    /// which fetching pauses: jobs workers finished stay reserved at Faktory
    /// until their ACK is answered, and fetching faster than Faktory takes
    /// results would only grow that set (and what a gateway crash strands).
    pub(crate) max_settle_backlog: usize,
}

/// What a session task needs to know about its registration.
#[derive(Debug, Clone)]
pub(crate) struct SessionTicket {
    /// The session's id.
    pub(crate) id: u64,
    /// Notified when the session has something to send.
    pub(crate) wake: Arc<Notify>,
    /// The window in force.
    pub(crate) window: u32,
}

/// What a session should send next.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Jobs to deliver, with their encoded sizes.
    pub(crate) deliveries: Vec<(Delivery, usize)>,
    /// Jids whose results Faktory has taken.
    pub(crate) settled: Vec<String>,
    /// Results Faktory refused, with its words.
    pub(crate) refused: Vec<RejectedResult>,
    /// A drain notice, when one is due.
    pub(crate) drain: Option<Drain>,
}

/// How a session's stream ended, for what becomes of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The worker closed its side: its unfinished jobs are free at once.
    Closed,
    /// The stream broke or went quiet: its delivered jobs wait the reconnect
    /// grace for the worker to come back for them.
    Broken,
}

/// A fetch a fetcher task may perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchClaim {
    /// The queue list, in priority order.
    pub(crate) queues: Vec<String>,
    /// How many FETCHes to pipeline.
    pub(crate) depth: usize,
    /// Whether more could be fetched after this claim (the fetch pool grows
    /// on it).
    pub(crate) more: bool,
}

#[derive(Debug)]
struct SessionSlot {
    spec: SessionSpec,
    window: Window,
    /// Jobs assigned to this session and not yet finished (sent or not).
    unfinished: HashSet<String>,
    /// Jids the worker listed in its hello that the gateway holds no lease
    /// of, until their results come: they count against the window.
    foreign: HashSet<String>,
    /// Results Faktory answered, to be confirmed to the worker.
    settled: Vec<String>,
    refused: Vec<RejectedResult>,
    /// Assigned jobs not yet taken by the session task, in order.
    outbox: Vec<String>,
    wake: Arc<Notify>,
    draining: bool,
    drain: Option<Drain>,
    /// When the session was last assigned a job, as a value of the
    /// dispatcher's assignment counter; 0 = never.
    last_assigned: u64,
}

impl SessionSlot {
    fn open(&self) -> usize {
        if self.draining {
            0
        } else {
            self.window.open(self.unfinished.len() + self.foreign.len())
        }
    }

    fn matches(&self, queue: &str, jobtype: &str) -> bool {
        !self.draining && self.spec.serves_queue(queue) && self.spec.runs(jobtype)
    }
}

enum Pick {
    Session(u64),
    Wait,
    TooLarge,
}

/// The delivery path's shared state. See the module docs for the rules.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    rules: Rules,
    sessions: HashMap<u64, SessionSlot>,
    next_session: u64,
    leases: HashMap<String, Lease>,
    next_seq: u64,
    /// Jids of leases held by nobody, oldest first; every entry's lease is
    /// `Holder::Pending`.
    pending: VecDeque<String>,
    /// Counts assignments; stamps `SessionSlot::last_assigned`.
    assignments: u64,
    /// Jobs the released-by session should not get back, by jid.
    avoid: HashMap<String, u64>,
    /// Jids of broken streams' jobs, by when the stream broke, oldest first;
    /// those still `Holder::Away` with that time are redelivered once the
    /// reconnect grace has passed.
    away: VecDeque<(Instant, Vec<String>)>,
    settles: VecDeque<Settle>,
    /// Settlements taken by relays and not yet reported back.
    settles_in_flight: usize,
    fetching: bool,
    accepting: bool,
    /// Set by the final release: jobs fetched later go straight back.
    closed: bool,
    drain_notice: Option<Drain>,
    in_flight: HashMap<Vec<String>, usize>,
    depth: HashMap<Vec<String>, usize>,
    fetch_wake: Arc<Notify>,
    settle_wake: Arc<Notify>,
    changed: Arc<Notify>,
}

impl Dispatcher {
    /// An empty dispatcher: fetching on, accepting sessions.
    pub(crate) fn new(rules: Rules) -> Dispatcher {
        Dispatcher {
            rules,
            sessions: HashMap::new(),
            next_session: 1,
            leases: HashMap::new(),
            next_seq: 1,
            pending: VecDeque::new(),
            assignments: 0,
            avoid: HashMap::new(),
            away: VecDeque::new(),
            settles: VecDeque::new(),
            settles_in_flight: 0,
            fetching: true,
            accepting: true,
            closed: false,
            drain_notice: None,
            in_flight: HashMap::new(),
            depth: HashMap::new(),
            fetch_wake: Arc::new(Notify::new()),
            settle_wake: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Notified (one waiter: pool tasks pass the wake on while work is left,
    /// see `pool.rs`) when fetch demand may have grown.
    pub(crate) fn fetch_wake(&self) -> Arc<Notify> {
        self.fetch_wake.clone()
    }

    /// Notified (one waiter, as [`Dispatcher::fetch_wake`]) when settlements
    /// are queued.
    pub(crate) fn settle_wake(&self) -> Arc<Notify> {
        self.settle_wake.clone()
    }

    /// Notified (all waiters) when jobs finish or sessions go away.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    // ----- sessions -------------------------------------------------------

    /// Registers a session, or `None` when the gateway is shutting down.
    pub(crate) fn register(&mut self, spec: SessionSpec) -> Option<SessionTicket> {
        if !self.accepting {
            return None;
        }
        let id = self.next_session;
        self.next_session += 1;
        let window = Window::new(spec.window, self.rules.max_window);
        let wake = Arc::new(Notify::new());
        let drain = self.drain_notice.clone();
        if drain.is_some() {
            wake.notify_one();
        }
        let (unfinished, foreign) = self.claim(id, &spec.holding);
        self.sessions.insert(
            id,
            SessionSlot {
                spec,
                window,
                unfinished,
                foreign,
                settled: Vec::new(),
                refused: Vec::new(),
                outbox: Vec::new(),
                wake: wake.clone(),
                draining: drain.is_some(),
                drain,
                last_assigned: 0,
            },
        );
        self.fill(Instant::now());
        self.fetch_wake.notify_one();
        Some(SessionTicket {
            id,
            wake,
            window: window.size(),
        })
    }

    /// Takes over, for new session `id`, the jobs its worker says it holds:
    /// leases of this gateway not already settling move to it (from a
    /// broken stream, the waiting queue or another session); jids without a
    /// lease are returned as foreign. Returns (unfinished, foreign).
    fn claim(&mut self, id: u64, holding: &[String]) -> (HashSet<String>, HashSet<String>) {
        let mut unfinished = HashSet::new();
        let mut foreign = HashSet::new();
        let mut unqueue = HashSet::new();
        for jid in holding {
            let Some(lease) = self.leases.get_mut(jid) else {
                foreign.insert(jid.clone());
                continue;
            };
            match lease.holder {
                // Its result (or release) is on its way to Faktory.
                Holder::Settling => continue,
                Holder::Session(s) => {
                    if let Some(slot) = self.sessions.get_mut(&s) {
                        slot.unfinished.remove(jid);
                    }
                }
                Holder::Pending { .. } => {
                    unqueue.insert(jid.clone());
                }
                Holder::Away { .. } => {}
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
        let unsent: HashSet<&String> = slot.outbox.iter().collect();
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
        for jid in back.into_iter().rev() {
            self.pending.push_front(jid);
        }
        self.fill(now);
        self.fetch_wake.notify_one();
        self.changed.notify_waiters();
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
        Outgoing {
            deliveries,
            settled: std::mem::take(&mut slot.settled),
            refused: std::mem::take(&mut slot.refused),
            drain: slot.drain.take(),
        }
    }

    /// Whether any session still holds unfinished jobs (its own or foreign).
    pub(crate) fn sessions_hold_jobs(&self) -> bool {
        self.sessions
            .values()
            .any(|s| !s.unfinished.is_empty() || !s.foreign.is_empty())
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

    // ----- results from workers -------------------------------------------

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
    fn queue_result(&mut self, from: u64, jid: String, kind: SettleKind) {
        let lease = self.detach(&jid);
        if let Some(slot) = self.sessions.get_mut(&from) {
            slot.foreign.remove(&jid);
        }
        self.settles.push_back(Settle {
            jid,
            lease,
            reply_to: Some(from),
            kind,
        });
    }

    /// Jobs a worker gives back unstarted: they go to another session (not
    /// `from`), attempt raised, or back to Faktory after the redelivery grace.
    pub(crate) fn release(&mut self, from: u64, jids: Vec<String>) -> Vec<RejectedResult> {
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
                    if let Holder::Session(s) = lease.holder
                        && let Some(slot) = self.sessions.get_mut(&s)
                    {
                        slot.unfinished.remove(&jid);
                    }
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
        for jid in back.into_iter().rev() {
            self.pending.push_front(jid);
        }
        self.fill(now);
        self.fetch_wake.notify_one();
        self.changed.notify_waiters();
        rejected
    }

    /// Takes a lease away from whoever holds it, for settling. `None` when
    /// the jid is unknown or already settling.
    fn detach(&mut self, jid: &str) -> Option<u64> {
        let lease = self.leases.get_mut(jid)?;
        match lease.holder {
            Holder::Settling => return None,
            Holder::Session(s) => {
                if let Some(slot) = self.sessions.get_mut(&s) {
                    slot.unfinished.remove(jid);
                }
            }
            Holder::Pending { .. } => {
                self.pending.retain(|j| j != jid);
                self.avoid.remove(jid);
            }
            Holder::Away { .. } => {}
        }
        lease.holder = Holder::Settling;
        Some(lease.seq)
    }

    fn after_results(&mut self) {
        self.fill(Instant::now());
        self.fetch_wake.notify_one();
        self.settle_wake.notify_one();
        self.changed.notify_waiters();
    }

    // ----- fetching ---------------------------------------------------------

    /// Claims a fetch against open window, or `None` when nothing should be
    /// fetched now. The caller must report back with [`Dispatcher::fetched_job`] for each job
    /// and then [`Dispatcher::fetch_done`] or [`Dispatcher::fetch_failed`].
    pub(crate) fn claim_fetch(&mut self) -> Option<FetchClaim> {
        if !self.fetching || self.settle_backlog() >= self.rules.max_settle_backlog {
            return None;
        }
        let mut open: HashMap<&Vec<String>, usize> = HashMap::new();
        for slot in self.sessions.values() {
            let o = slot.open();
            if o > 0 {
                *open.entry(&slot.spec.queues).or_default() += o;
            }
        }
        let mut best: Option<(&Vec<String>, usize)> = None;
        let mut lists_with_demand = 0;
        for (queues, open) in open {
            let waiting = self
                .pending
                .iter()
                .filter_map(|jid| self.leases.get(jid))
                .filter(|l| queues.iter().any(|q| q == l.job.queue()))
                .count();
            let in_flight = self.in_flight.get(queues).copied().unwrap_or(0);
            let demand = open.saturating_sub(waiting + in_flight);
            lists_with_demand += usize::from(demand > 0);
            if demand > 0 && best.is_none_or(|(q, d)| demand > d || (demand == d && queues < q)) {
                best = Some((queues, demand));
            }
        }
        let (queues, demand) = best?;
        let queues = queues.clone();
        let depth = self
            .depth
            .get(&queues)
            .copied()
            .unwrap_or(1)
            .min(demand)
            .min(self.rules.max_fetch_depth)
            .max(1);
        *self.in_flight.entry(queues.clone()).or_default() += depth;
        let more = demand > depth || lists_with_demand > 1;
        Some(FetchClaim {
            queues,
            depth,
            more,
        })
    }

    fn end_claim(&mut self, queues: &[String], n: usize) {
        if let Some(left) = self.in_flight.get_mut(queues) {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.in_flight.remove(queues);
                // The shutdown waits for the last FETCH in flight.
                self.changed.notify_waiters();
            }
        }
    }

    /// Whether any claimed FETCH has not been answered yet.
    pub(crate) fn fetches_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Records the jobs a claimed fetch returned, all at once (see
    /// [`Dispatcher::fetched_job`] and [`Dispatcher::fetch_done`]).
    #[cfg(test)]
    pub(crate) fn fetched(
        &mut self,
        claim: &FetchClaim,
        raws: Vec<bytes::Bytes>,
        fetched_at: Instant,
        fetched_unix_ms: i64,
    ) {
        let got = raws.len();
        for raw in raws {
            let job = crate::job::from_faktory_json(raw);
            self.fetched_job(claim, job, fetched_at, fetched_unix_ms);
        }
        self.fetch_done(claim, got);
    }

    /// Records one job of a claimed fetch whose FETCHes were sent at
    /// `fetched_at` (`fetched_unix_ms` on the wall clock), as soon as it
    /// arrives, and hands it to a session if one has room. The fetcher
    /// parses the job before taking the dispatcher's lock, so the JSON work
    /// does not hold up sessions and relays.
    pub(crate) fn fetched_job(
        &mut self,
        claim: &FetchClaim,
        job: Result<FetchedJob, JobError>,
        fetched_at: Instant,
        fetched_unix_ms: i64,
    ) {
        self.end_claim(&claim.queues, 1);
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                // Without a jid nothing can be done with it; Faktory's
                // reservation expiry will retry it.
                warn!(error = %e, "fetched job is not valid job JSON; left to Faktory's reservation expiry");
                return;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let jid = job.jid().to_owned();
        let mut lease = Lease::new(job, seq, fetched_at, fetched_unix_ms);
        if self.closed || !self.fetching {
            // Arrived from a FETCH still in flight when fetching stopped
            // (shutdown or Faktory's quiet: every session drains, none will
            // take it) or after the final release: straight back to Faktory
            // while the relays still run.
            lease.holder = Holder::Settling;
            self.settles.push_back(release_of(&lease));
            self.settle_wake.notify_one();
        }
        let waiting = lease.holder != Holder::Settling;
        if let Some(old) = self.leases.insert(jid.clone(), lease) {
            // Faktory handed out the same jid again (its reservation of the
            // old one expired, or a release copy came back): the new
            // reservation is the one that counts.
            warn!(jid = %jid, "fetched a job the gateway already held; replacing its lease");
            match old.holder {
                Holder::Session(s) => {
                    if let Some(slot) = self.sessions.get_mut(&s) {
                        slot.unfinished.remove(&jid);
                    }
                }
                Holder::Pending { .. } => self.pending.retain(|j| *j != jid),
                Holder::Away { .. } | Holder::Settling => {}
            }
        }
        if waiting {
            self.pending.push_back(jid);
            self.fill(Instant::now());
        }
        self.changed.notify_waiters();
    }

    /// Ends a claimed fetch that handed over `got` jobs, and adapts the
    /// pipeline depth: deeper when every FETCH returned a job, down to what
    /// came back (at least 1) otherwise.
    pub(crate) fn fetch_done(&mut self, claim: &FetchClaim, got: usize) {
        self.end_claim(&claim.queues, claim.depth.saturating_sub(got));
        let depth = self.depth.entry(claim.queues.clone()).or_insert(1);
        *depth = if got >= claim.depth {
            (*depth)
                .max(claim.depth * 2)
                .min(self.rules.max_fetch_depth)
        } else {
            got.max(1)
        };
        self.fetch_wake.notify_one();
    }

    /// Ends a claimed fetch that failed after handing over `got` jobs.
    pub(crate) fn fetch_failed(&mut self, claim: &FetchClaim, got: usize) {
        self.end_claim(&claim.queues, claim.depth.saturating_sub(got));
        self.depth.insert(claim.queues.clone(), 1);
        self.fetch_wake.notify_one();
    }

    /// Stops all fetching (Faktory said quiet, or shutdown): no more claims,
    /// and jobs still arriving from FETCHes in flight are released at once.
    pub(crate) fn stop_fetching(&mut self) {
        self.fetching = false;
        self.fetch_wake.notify_one();
    }

    /// Whether fetching is on (see [`Dispatcher::stop_fetching`]).
    pub(crate) fn is_fetching(&self) -> bool {
        self.fetching
    }

    // ----- assignment ------------------------------------------------------

    /// Hands waiting jobs to sessions with room.
    fn fill(&mut self, now: Instant) {
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
                lease.holder = Holder::Settling;
                self.settles.push_back(release_of(lease));
                self.avoid.remove(&jid);
                self.settle_wake.notify_one();
                continue;
            }
            match pick(&self.sessions, lease, self.avoid.get(&jid).copied()) {
                Pick::Session(id) => {
                    let slot = self.sessions.get_mut(&id).expect("picked session exists");
                    lease.holder = Holder::Session(id);
                    self.assignments += 1;
                    slot.last_assigned = self.assignments;
                    slot.unfinished.insert(jid.clone());
                    slot.outbox.push(jid.clone());
                    slot.wake.notify_one();
                    self.avoid.remove(&jid);
                    open_total -= 1;
                }
                Pick::Wait => self.pending.push_back(jid),
                Pick::TooLarge => {
                    warn!(jid = %jid, bytes = lease.delivery_len, "job larger than any matching worker accepts; failing it");
                    lease.holder = Holder::Settling;
                    let message = format!(
                        "job of {} bytes exceeds the max_message_bytes of every worker for queue {:?} and jobtype {:?}",
                        lease.delivery_len,
                        lease.job.queue(),
                        lease.job.jobtype()
                    );
                    self.settles.push_back(Settle::gateway_fail(
                        jid.clone(),
                        lease.seq,
                        ERRTYPE_JOB_TOO_LARGE,
                        message,
                    ));
                    self.avoid.remove(&jid);
                    self.settle_wake.notify_one();
                }
            }
        }
    }

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
                    lease.holder = Holder::Settling;
                    self.avoid.remove(&jid);
                    self.settles.push_back(settle);
                    queued = true;
                }
                None => keep.push_back(jid),
            }
        }
        self.pending = keep;
        if queued {
            self.settle_wake.notify_one();
            self.fetch_wake.notify_one();
        }
    }

    /// Redelivers the jobs of broken streams whose worker did not come back
    /// for them within the reconnect grace.
    fn end_reconnect_graces(&mut self, now: Instant) {
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
        for jid in back.into_iter().rev() {
            self.pending.push_front(jid);
        }
        self.fill(now);
        self.fetch_wake.notify_one();
    }

    // ----- settling ---------------------------------------------------------

    /// Takes up to `max` settlements for a relay connection. The relay must
    /// report each of them back once: [`Dispatcher::settled`] or
    /// [`Dispatcher::requeue`].
    pub(crate) fn take_settlements(&mut self, max: usize) -> Vec<Settle> {
        let n = max.min(self.settles.len());
        self.settles_in_flight += n;
        self.settles.drain(..n).collect()
    }

    /// Puts settlements a relay could not send back at the front, in order.
    pub(crate) fn requeue(&mut self, settles: Vec<Settle>) {
        self.settles_in_flight = self.settles_in_flight.saturating_sub(settles.len());
        for s in settles.into_iter().rev() {
            self.settles.push_front(s);
        }
        self.settle_wake.notify_one();
    }

    /// Records Faktory's answers: forgets the leases settled, and queues
    /// each worker result's confirmation (or Faktory's refusal) for the
    /// session it came on, if that is still open.
    pub(crate) fn settled(&mut self, done: Vec<Answered>) {
        let mut woken = HashSet::new();
        for answer in done {
            self.settles_in_flight = self.settles_in_flight.saturating_sub(1);
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
            match answer.refused {
                None => slot.settled.push(answer.jid),
                Some(words) => slot.refused.push(reject(answer.jid, &words)),
            }
            if woken.insert(answer.reply_to) {
                slot.wake.notify_one();
            }
        }
        self.changed.notify_waiters();
        self.fetch_wake.notify_one();
    }

    /// Settlements queued or sent and not yet answered: jobs whose outcome
    /// Faktory has not confirmed yet (mostly jobs workers finished, which
    /// stay reserved at Faktory until then).
    pub(crate) fn settle_backlog(&self) -> usize {
        self.settles.len() + self.settles_in_flight
    }

    /// Number of leases not yet settled at Faktory.
    pub(crate) fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// Whether settlements are waiting for a relay.
    pub(crate) fn has_settlements(&self) -> bool {
        !self.settles.is_empty()
    }

    // ----- draining ---------------------------------------------------------

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

    /// Releases every job not already settling back to Faktory: the jobs
    /// waiting in the gateway and those still at workers (whose results, if
    /// they come later, are answered as unknown).
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
                lease.holder = Holder::Settling;
                self.settles.push_back(release_of(lease));
                n += 1;
            }
        }
        if n > 0 {
            debug!(jobs = n, "releasing held jobs back to Faktory");
        }
        self.settle_wake.notify_one();
        self.changed.notify_waiters();
    }
}

fn reject(jid: String, reason: &str) -> RejectedResult {
    RejectedResult {
        jid,
        reason: reason.to_owned(),
    }
}

fn release_of(lease: &Lease) -> Settle {
    Settle {
        jid: lease.jid().to_owned(),
        lease: Some(lease.seq),
        reply_to: None,
        kind: SettleKind::Release {
            raw: lease.job.raw.clone(),
        },
    }
}

/// The session for `lease` (see the module docs for the rule): most open
/// window first, then least recently assigned, then lowest id. One pass over
/// the sessions.
fn pick(sessions: &HashMap<u64, SessionSlot>, lease: &Lease, avoid: Option<u64>) -> Pick {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use faktory_gateway_proto::v1::JobFailure;

    fn rules() -> Rules {
        Rules {
            redelivery_grace: Duration::from_secs(5),
            unknown_jobtype_grace: Duration::from_secs(30),
            lease_margin: Duration::from_secs(10),
            reconnect_grace: Duration::from_secs(3),
            max_window: 1000,
            max_fetch_depth: 16,
            max_settle_backlog: 500,
        }
    }

    fn spec(queues: &[&str], jobtypes: &[&str], window: u32) -> SessionSpec {
        SessionSpec {
            worker_id: "w".into(),
            hostname: String::new(),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            jobtypes: jobtypes.iter().map(|t| (*t).to_owned()).collect(),
            window,
            max_message_bytes: 4 << 20,
            holding: Vec::new(),
        }
    }

    /// Faktory took every one of `settles`.
    fn answered(settles: Vec<Settle>) -> Vec<Answered> {
        settles.into_iter().map(|s| Answered::to(s, None)).collect()
    }

    fn raw(jid: &str, queue: &str, jobtype: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"jid":"{jid}","jobtype":"{jobtype}","queue":"{queue}","args":[]}}"#
        ))
    }

    fn jids(out: &Outgoing) -> Vec<String> {
        out.deliveries
            .iter()
            .map(|(d, _)| d.job.as_ref().unwrap().jid.clone())
            .collect()
    }

    /// Claims a fetch for `queues` and feeds it `jobs`.
    fn feed(d: &mut Dispatcher, jobs: Vec<Bytes>) {
        let claim = d.claim_fetch().expect("demand");
        d.fetched(&claim, jobs, Instant::now(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn fetch_demand_follows_open_window() {
        let mut d = Dispatcher::new(rules());
        assert_eq!(d.claim_fetch(), None, "no sessions, no fetch");
        let s = d.register(spec(&["a", "b"], &[], 3)).unwrap();
        let c1 = d.claim_fetch().unwrap();
        assert_eq!(
            c1,
            FetchClaim {
                queues: vec!["a".into(), "b".into()],
                depth: 1,
                more: true,
            }
        );
        // Full return deepens the pipeline, bounded by demand.
        d.fetched(&c1, vec![raw("j1", "a", "t")], Instant::now(), 0);
        let c2 = d.claim_fetch().unwrap();
        assert_eq!(c2.depth, 2);
        assert_eq!(d.claim_fetch(), None, "window of 3 is covered");
        d.fetched(&c2, vec![], Instant::now(), 0);
        // Empty return: back to depth 1.
        assert_eq!(d.claim_fetch().unwrap().depth, 1);
        assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_jobs_keep_their_fetch_order_when_some_are_passed_over() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &["t"], 1)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t")]);
        assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1"]);
        let claim = FetchClaim {
            queues: vec!["q".into()],
            depth: 4,
            more: false,
        };
        d.fetched(
            &claim,
            vec![
                raw("x1", "q", "u"),
                raw("j2", "q", "t"),
                raw("x2", "q", "u"),
                raw("j3", "q", "t"),
            ],
            Instant::now(),
            0,
        );
        // One slot opens: x1 is passed over (a runs only t), j2 taken, and
        // the window is full again before x2 and j3 are looked at.
        d.ack(a.id, vec!["j1".into()]);
        assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j2"]);
        let b = d.register(spec(&["q"], &[], 3)).unwrap();
        assert_eq!(jids(&d.take_outgoing(b.id)), vec!["x1", "x2", "j3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn fetching_pauses_while_faktory_lags_behind_results() {
        let mut d = Dispatcher::new(rules());
        d.register(spec(&["q"], &[], 1000)).unwrap();
        let claim = d.claim_fetch().unwrap();
        d.fetch_done(&claim, 0);
        for i in 0..rules().max_settle_backlog {
            d.settles.push_back(Settle {
                jid: format!("j{i}"),
                lease: None,
                reply_to: None,
                kind: SettleKind::Ack,
            });
        }
        assert_eq!(d.claim_fetch(), None);
        // Sent but not yet answered still counts: those jobs are still
        // reserved at Faktory.
        let mut sent = d.take_settlements(usize::MAX);
        assert_eq!(d.settle_backlog(), rules().max_settle_backlog);
        assert_eq!(d.claim_fetch(), None);
        let unsent = sent.split_off(1);
        d.requeue(unsent);
        assert_eq!(d.claim_fetch(), None, "requeued ones count again");
        d.settled(answered(sent));
        assert!(d.claim_fetch().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn distinct_queue_lists_fetch_separately() {
        let mut d = Dispatcher::new(rules());
        d.register(spec(&["a"], &[], 1)).unwrap();
        d.register(spec(&["b"], &[], 2)).unwrap();
        let first = d.claim_fetch().unwrap();
        let second = d.claim_fetch().unwrap();
        let mut lists = vec![first.queues, second.queues];
        lists.sort();
        assert_eq!(lists, vec![vec!["a".to_owned()], vec!["b".to_owned()]]);
        // b had 2 open: one more claim for it.
        assert_eq!(d.claim_fetch().unwrap().queues, vec!["b".to_owned()]);
        assert_eq!(d.claim_fetch(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn routes_by_queue_jobtype_and_most_open_window() {
        let mut d = Dispatcher::new(rules());
        let x = d.register(spec(&["q"], &["x"], 5)).unwrap();
        let any_small = d.register(spec(&["q"], &[], 1)).unwrap();
        let any_big = d.register(spec(&["q"], &[], 4)).unwrap();
        feed(
            &mut d,
            vec![
                raw("j1", "q", "y"),
                raw("j2", "q", "x"),
                raw("j3", "q", "y"),
            ],
        );
        assert_eq!(jids(&d.take_outgoing(x.id)), vec!["j2"]);
        assert_eq!(jids(&d.take_outgoing(any_big.id)), vec!["j1", "j3"]);
        assert!(d.take_outgoing(any_small.id).deliveries.is_empty());
    }

    /// Jobs arriving one at a time, each acked before the next: every
    /// session has the same open window each time, and the job goes to the
    /// least recently assigned one (a new session first), not always to the
    /// same one.
    #[tokio::test(start_paused = true)]
    async fn ties_go_to_the_least_recently_assigned_session() {
        let mut d = Dispatcher::new(rules());
        let ids: Vec<u64> = (0..3)
            .map(|_| d.register(spec(&["q"], &[], 4)).unwrap().id)
            .collect();
        let one_by_one = |d: &mut Dispatcher, jid: &str| -> u64 {
            feed(d, vec![raw(jid, "q", "t")]);
            let all: Vec<u64> = d.sessions.keys().copied().collect();
            let got: Vec<u64> = all
                .into_iter()
                .filter(|&id| !d.take_outgoing(id).deliveries.is_empty())
                .collect();
            assert_eq!(got.len(), 1, "{jid} delivered once");
            d.ack(got[0], vec![jid.to_owned()]);
            got[0]
        };
        let first: Vec<u64> = (0..6)
            .map(|i| one_by_one(&mut d, &format!("j{i}")))
            .collect();
        assert_eq!(
            first,
            vec![ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]],
            "round robin over equal sessions"
        );
        let late = d.register(spec(&["q"], &[], 4)).unwrap().id;
        assert_eq!(one_by_one(&mut d, "j6"), late, "a new session goes first");
        assert_eq!(one_by_one(&mut d, "j7"), ids[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_window_and_results_reopen_it() {
        let mut d = Dispatcher::new(rules());
        let s = d.register(spec(&["q"], &[], 2)).unwrap();
        let claim = d.claim_fetch().unwrap();
        let jobs = (0..4).map(|i| raw(&format!("j{i}"), "q", "t")).collect();
        d.fetched(&claim, jobs, Instant::now(), 0);
        assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j0", "j1"]);
        assert_eq!(d.claim_fetch(), None);
        d.ack(s.id, vec!["j0".into()]);
        assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j2"]);
        let rejected = d.fail(
            s.id,
            vec![JobFailure {
                jid: "j1".into(),
                ..JobFailure::default()
            }],
        );
        assert_eq!(rejected[0].reason, REASON_ERRTYPE_REQUIRED);
        assert!(
            d.take_outgoing(s.id).deliveries.is_empty(),
            "j1 still unfinished"
        );
        let rejected = d.fail(
            s.id,
            vec![JobFailure {
                jid: "j1".into(),
                errtype: "E".into(),
                ..JobFailure::default()
            }],
        );
        assert!(rejected.is_empty());
        assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j3"]);
        // Window lowered below what is held: nothing more until results come.
        d.set_window(s.id, 1);
        assert!(jids(&d.take_outgoing(s.id)).is_empty());
        let settles = d.take_settlements(10);
        let kinds: Vec<_> = settles.iter().map(|s| (s.jid.as_str(), &s.kind)).collect();
        assert_eq!(kinds[0], ("j0", &SettleKind::Ack));
        assert_eq!(kinds[1].0, "j1");
        assert!(matches!(kinds[1].1, SettleKind::Fail { errtype, .. } if errtype == "E"));
        d.settled(answered(settles));
        assert_eq!(d.lease_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_session_jobs_go_to_another_with_attempt_raised() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &[], 2)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t"), raw("j2", "q", "t")]);
        assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1", "j2"]);
        d.unregister(a.id, StreamEnd::Closed);
        // Nobody there: they wait.
        assert!(!d.has_settlements());
        let b = d.register(spec(&["q"], &[], 5)).unwrap();
        let out = d.take_outgoing(b.id);
        assert_eq!(out.deliveries.len(), 2);
        assert!(out.deliveries.iter().all(|(del, _)| del.attempt == 2));
        // A reconnected worker's late ack for a redelivered job settles it.
        d.ack(b.id, vec!["j1".into()]);
        let settles = d.take_settlements(10);
        assert_eq!(settles[0].lease, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn results_are_confirmed_once_faktory_answered() {
        let mut d = Dispatcher::new(rules());
        let s = d.register(spec(&["q"], &[], 5)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t"), raw("j2", "q", "t")]);
        d.take_outgoing(s.id);
        d.ack(s.id, vec!["j1".into(), "elsewhere".into()]);
        d.fail(
            s.id,
            vec![JobFailure {
                jid: "j2".into(),
                errtype: "E".into(),
                ..JobFailure::default()
            }],
        );
        let out = d.take_outgoing(s.id);
        assert!(out.settled.is_empty(), "nothing before Faktory answers");
        let settles = d.take_settlements(10);
        let routes: Vec<_> = settles
            .iter()
            .map(|s| (s.jid.as_str(), s.lease, s.reply_to))
            .collect();
        assert_eq!(
            routes,
            vec![
                ("j1", Some(1), Some(s.id)),
                // Not fetched here: to Faktory by jid.
                ("elsewhere", None, Some(s.id)),
                ("j2", Some(2), Some(s.id)),
            ]
        );
        let mut answers = answered(settles);
        answers[2].refused = Some("NotFound Job not found".into());
        d.settled(answers);
        let out = d.take_outgoing(s.id);
        assert_eq!(out.settled, vec!["j1", "elsewhere"]);
        assert_eq!(out.refused.len(), 1);
        assert_eq!(out.refused[0].jid, "j2");
        assert_eq!(out.refused[0].reason, "NotFound Job not found");
        assert_eq!(d.lease_count(), 0);
        // An answer for a session that has gone is dropped.
        d.ack(s.id, vec!["late".into()]);
        let settles = d.take_settlements(10);
        d.unregister(s.id, StreamEnd::Closed);
        d.settled(answered(settles));
        assert_eq!(d.settle_backlog(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_streams_jobs_wait_for_their_worker() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &[], 3)).unwrap();
        feed(
            &mut d,
            vec![
                raw("j1", "q", "t"),
                raw("j2", "q", "t"),
                raw("j3", "q", "t"),
            ],
        );
        assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1", "j2", "j3"]);
        d.unregister(a.id, StreamEnd::Broken);
        // Another worker does not get them while the grace runs.
        let other = d.register(spec(&["q"], &[], 5)).unwrap();
        assert!(jids(&d.take_outgoing(other.id)).is_empty());
        // The worker comes back holding j1, j2 (running, buffered) and a job
        // another gateway delivered.
        let back = d
            .register(SessionSpec {
                holding: vec!["j1".into(), "j2".into(), "foreign".into()],
                ..spec(&["q"], &[], 4)
            })
            .unwrap();
        assert!(
            jids(&d.take_outgoing(back.id)).is_empty(),
            "nothing delivered twice"
        );
        assert_eq!(d.open_window(), 5 + 1, "j1, j2 and foreign count");
        assert_eq!(
            d.release(back.id, vec!["foreign".into()])[0].reason,
            REASON_NOT_DELIVERED_HERE
        );
        assert_eq!(d.open_window(), 5 + 2);
        // j3 was not claimed: redelivered once the grace is over (to the
        // session with the most open window).
        tokio::time::advance(rules().reconnect_grace).await;
        d.sweep(Instant::now());
        let out = d.take_outgoing(other.id);
        let got: Vec<_> = out
            .deliveries
            .iter()
            .map(|(del, _)| (del.job.as_ref().unwrap().jid.as_str(), del.attempt))
            .collect();
        assert_eq!(got, vec![("j3", 2)]);
        // The kept jobs settle through the new session.
        d.ack(back.id, vec!["j1".into(), "j2".into()]);
        let leases: Vec<_> = d.take_settlements(10).iter().map(|s| s.lease).collect();
        assert_eq!(leases, vec![Some(1), Some(2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_of_a_broken_stream_nobody_claims_are_redelivered_after_the_grace() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &[], 1)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t")]);
        d.take_outgoing(a.id);
        d.unregister(a.id, StreamEnd::Broken);
        let b = d.register(spec(&["q"], &[], 1)).unwrap();
        tokio::time::advance(rules().reconnect_grace / 2).await;
        d.sweep(Instant::now());
        assert!(jids(&d.take_outgoing(b.id)).is_empty());
        tokio::time::advance(rules().reconnect_grace / 2).await;
        d.sweep(Instant::now());
        assert_eq!(jids(&d.take_outgoing(b.id)), vec!["j1"]);
        assert_eq!(d.undelivered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_jobs_are_released_after_the_grace() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &[], 1)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t")]);
        d.take_outgoing(a.id);
        d.unregister(a.id, StreamEnd::Closed);
        d.sweep(Instant::now() + Duration::from_secs(4));
        assert!(!d.has_settlements());
        d.sweep(Instant::now() + Duration::from_secs(5));
        let settles = d.take_settlements(10);
        assert_eq!(settles.len(), 1);
        assert!(matches!(settles[0].kind, SettleKind::Release { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn released_jobs_go_to_another_session() {
        let mut d = Dispatcher::new(rules());
        let a = d.register(spec(&["q"], &[], 5)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t")]);
        d.take_outgoing(a.id);
        assert!(d.release(a.id, vec!["j1".into()]).is_empty());
        assert!(
            d.take_outgoing(a.id).deliveries.is_empty(),
            "not back to the releaser"
        );
        let b = d.register(spec(&["q"], &[], 1)).unwrap();
        let out = d.take_outgoing(b.id);
        assert_eq!(out.deliveries[0].0.attempt, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_jobtype_fails_after_its_grace() {
        let mut d = Dispatcher::new(rules());
        d.register(spec(&["q"], &["x"], 5)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "y")]);
        d.sweep(Instant::now() + Duration::from_secs(29));
        assert!(!d.has_settlements(), "redelivery grace does not apply");
        d.sweep(Instant::now() + Duration::from_secs(30));
        let settles = d.take_settlements(10);
        assert!(
            matches!(&settles[0].kind, SettleKind::Fail { errtype, .. } if errtype == ERRTYPE_NO_WORKER)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn oversize_jobs_fail_at_once() {
        let mut d = Dispatcher::new(rules());
        let mut small = spec(&["q"], &[], 5);
        small.max_message_bytes = 1024;
        d.register(small).unwrap();
        let big = format!(
            r#"{{"jid":"big","jobtype":"t","queue":"q","args":["{}"]}}"#,
            "x".repeat(2000)
        );
        feed(&mut d, vec![Bytes::from(big)]);
        let settles = d.take_settlements(10);
        assert!(
            matches!(&settles[0].kind, SettleKind::Fail { errtype, .. } if errtype == ERRTYPE_JOB_TOO_LARGE)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_near_their_deadline_are_released_not_delivered() {
        let mut d = Dispatcher::new(rules());
        let s = d.register(spec(&["q"], &[], 5)).unwrap();
        let claim = d.claim_fetch().unwrap();
        let fetched_long_ago = Instant::now();
        tokio::time::advance(Duration::from_secs(55)).await;
        let short =
            Bytes::from_static(br#"{"jid":"j1","jobtype":"t","queue":"q","reserve_for":60}"#);
        d.fetched(&claim, vec![short], fetched_long_ago, 0);
        assert!(d.take_outgoing(s.id).deliveries.is_empty());
        assert!(matches!(
            d.take_settlements(1)[0].kind,
            SettleKind::Release { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_fetched_after_fetching_stopped_go_straight_back() {
        let mut d = Dispatcher::new(rules());
        let s = d.register(spec(&["q"], &[], 5)).unwrap();
        let claim = d.claim_fetch().expect("open window");
        d.stop_fetching();
        assert!(!d.is_fetching());
        assert!(d.fetches_in_flight());
        // The FETCH was on the wire before fetching stopped; its job comes
        // back now.
        d.fetched(&claim, vec![raw("late", "q", "t")], Instant::now(), 0);
        assert!(jids(&d.take_outgoing(s.id)).is_empty(), "not delivered");
        let settles = d.take_settlements(10);
        assert_eq!(settles.len(), 1, "released at once");
        assert_eq!(settles[0].jid, "late");
        assert_eq!(d.claim_fetch(), None);
        assert!(!d.fetches_in_flight(), "the claim was answered");
        d.settled(answered(settles));
        assert_eq!(d.lease_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_then_release_everything() {
        let mut d = Dispatcher::new(rules());
        let s = d.register(spec(&["q"], &[], 5)).unwrap();
        feed(&mut d, vec![raw("j1", "q", "t")]);
        let drain = Drain {
            deadline_unix_ms: 5,
            reason: "shutdown".into(),
        };
        d.stop_fetching();
        d.drain_sessions(drain.clone(), true);
        assert_eq!(d.claim_fetch(), None);
        let out = d.take_outgoing(s.id);
        assert_eq!(out.drain, Some(drain));
        assert!(d.register(spec(&["q"], &[], 1)).is_none());
        assert!(d.sessions_hold_jobs());
        d.release_everything();
        assert!(!d.sessions_hold_jobs());
        let settles = d.take_settlements(10);
        assert_eq!(settles.len(), 1);
        d.requeue(settles);
        let settles = d.take_settlements(10);
        d.settled(answered(settles));
        assert_eq!(d.lease_count(), 0);
        // A late result goes to Faktory by jid.
        d.ack(s.id, vec!["j1".into()]);
        assert_eq!(d.take_settlements(10)[0].lease, None);
    }
}
