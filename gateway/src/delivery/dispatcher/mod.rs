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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1::{Delivery, Drain, RejectedResult};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::batch::fits_alone;
use super::clock::unix_ms_after;
use super::hello::SessionSpec;
use super::lease::{Holder, Lease};
use super::session_stats::SessionStats;
use super::settle::{Answered, ERRTYPE_JOB_TOO_LARGE, ERRTYPE_NO_WORKER, Settle, SettleKind};
use super::window::Window;
use crate::fast_hash::{Map, Set};
use crate::job::{FetchedJob, JobError};
use fetch_demand::FetchDemand;
use settle_queue::SettleQueue;

mod assign;
mod fetch_demand;
mod fetching;
mod observe;
mod results;
mod sessions;
mod settle_queue;
mod settling;
mod waiting;

pub(crate) use sessions::drain_notice;

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
    /// Most FETCHes in flight over all fetch connections.
    pub(crate) max_fetches_in_flight: usize,
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
    /// Notified when the session has jobs or a drain notice to send.
    pub(crate) wake: Arc<Notify>,
    /// Notified when confirmations of results wait for the session (once
    /// per collection: they are not urgent, and ride along with jobs).
    pub(crate) confirm_wake: Arc<Notify>,
    /// The window in force.
    pub(crate) window: u32,
    /// The session's counters, shown in the workers listing.
    pub(crate) stats: Arc<SessionStats>,
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
    unfinished: Set<String>,
    /// Jids the worker listed in its hello that the gateway holds no lease
    /// of, until their results come: they count against the window.
    foreign: Set<String>,
    /// Results from this worker on their way to Faktory, not yet answered.
    awaiting: usize,
    /// Results Faktory answered, to be confirmed to the worker.
    settled: Vec<String>,
    refused: Vec<RejectedResult>,
    /// Assigned jobs not yet taken by the session task, in order.
    outbox: Vec<String>,
    wake: Arc<Notify>,
    confirm_wake: Arc<Notify>,
    draining: bool,
    drain: Option<Drain>,
    /// When the session was last assigned a job, as a value of the
    /// dispatcher's assignment counter; 0 = never.
    last_assigned: u64,
    /// Its counters, for the workers listing.
    stats: Arc<SessionStats>,
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

/// The delivery path's shared state. See the module docs for the rules.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    rules: Rules,
    sessions: Map<u64, SessionSlot>,
    next_session: u64,
    leases: Map<String, Lease>,
    next_seq: u64,
    /// Jids of leases held by nobody, oldest first; every entry's lease is
    /// `Holder::Pending`.
    pending: VecDeque<String>,
    /// Counts assignments; stamps `SessionSlot::last_assigned`.
    assignments: u64,
    /// Jobs the released-by session should not get back, by jid.
    avoid: Map<String, u64>,
    /// Jids of broken streams' jobs, by when the stream broke, oldest first;
    /// those still `Holder::Away` with that time are redelivered once the
    /// reconnect grace has passed.
    away: VecDeque<(Instant, Vec<String>)>,
    settles: SettleQueue,
    fetching: bool,
    accepting: bool,
    /// Set by the final release: jobs fetched later go straight back.
    closed: bool,
    drain_notice: Option<Drain>,
    /// FETCHes in flight and pipeline depth, by queue list.
    fetches: FetchDemand,
    fetch_wake: Arc<Notify>,
    changed: Arc<Notify>,
}

impl Dispatcher {
    /// An empty dispatcher: fetching on, accepting sessions.
    pub(crate) fn new(rules: Rules) -> Dispatcher {
        Dispatcher {
            rules,
            sessions: Map::default(),
            next_session: 1,
            leases: Map::default(),
            next_seq: 1,
            pending: VecDeque::new(),
            assignments: 0,
            avoid: Map::default(),
            away: VecDeque::new(),
            settles: SettleQueue::default(),
            fetching: true,
            accepting: true,
            closed: false,
            drain_notice: None,
            fetches: FetchDemand::default(),
            fetch_wake: Arc::new(Notify::new()),
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
        self.settles.wake()
    }

    /// Notified (all waiters) when jobs finish or sessions go away.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }
}

fn reject(jid: String, reason: &str) -> RejectedResult {
    RejectedResult {
        jid,
        reason: reason.to_owned(),
    }
}

/// Takes `jid` out of the unfinished jobs of the session `holder` names, if
/// it names one (a free function: callers hold a borrow of the lease).
fn leave_session(sessions: &mut Map<u64, SessionSlot>, holder: Holder, jid: &str) {
    if let Holder::Session(s) = holder
        && let Some(slot) = sessions.get_mut(&s)
    {
        slot.unfinished.remove(jid);
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

#[cfg(test)]
mod tests;
