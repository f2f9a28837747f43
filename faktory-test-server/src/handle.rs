//! [`ServerHandle`]: the test-only view of a running server's state, and its controls.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::counters::Counters;
use crate::shared::Shared;
use crate::workers::{ProcessState, WorkerInfo};

/// Inspects and steers a running [`TestServer`](crate::TestServer). Cheap to clone; every
/// method is synchronous and takes the server lock only briefly.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    /// Jobs waiting in `queue`.
    pub fn queue_len(&self, queue: &str) -> usize {
        self.shared.state.lock().store.queue_len(queue)
    }

    /// Jobs waiting in all queues.
    pub fn total_queued(&self) -> usize {
        self.shared
            .state
            .lock()
            .store
            .queue_sizes()
            .map(|(_, n)| n)
            .sum()
    }

    /// Jids of reserved (fetched, not yet ACKed or FAILed) jobs, sorted.
    pub fn reserved_jids(&self) -> Vec<String> {
        self.shared.state.lock().store.reserved_jids()
    }

    /// Jobs in the scheduled set.
    pub fn scheduled_len(&self) -> usize {
        self.shared.state.lock().store.scheduled.len()
    }

    /// Jobs in the retry set, earliest retry first, as Faktory would encode them.
    pub fn retries(&self) -> Vec<Value> {
        let state = self.shared.state.lock();
        state.store.retries.jobs().map(|j| j.to_value()).collect()
    }

    /// Jobs in the dead set, oldest first.
    pub fn dead(&self) -> Vec<Value> {
        let state = self.shared.state.lock();
        state.store.dead.jobs().map(|j| j.to_value()).collect()
    }

    /// A job wherever it is (reserved, queued, scheduled, retrying, dead).
    pub fn job(&self, jid: &str) -> Option<Value> {
        let state = self.shared.state.lock();
        state.store.find(jid).map(|j| j.to_value())
    }

    /// The virtual time at which `jid`'s reservation expires, if it is reserved.
    pub fn reservation_deadline(&self, jid: &str) -> Option<SystemTime> {
        let nanos = self.shared.state.lock().store.reservation_deadline(jid)?;
        Some(UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
    }

    /// The server's virtual now.
    pub fn now(&self) -> SystemTime {
        let nanos = self.shared.clock.now();
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }

    /// Cumulative counters.
    pub fn counters(&self) -> Counters {
        let mut counters = self.shared.state.lock().store.counters;
        counters.commands = self.shared.commands.load(Ordering::Relaxed);
        counters.connections_accepted = self.shared.accepted.load(Ordering::Relaxed);
        counters
    }

    /// Tells worker `wid` to go quiet (its BEATs answer `{"state":"quiet"}`, its FETCHes
    /// return nothing). Returns `false` if no such wid is connected (Faktory can only signal
    /// known workers).
    pub fn set_quiet(&self, wid: &str) -> bool {
        self.shared
            .state
            .lock()
            .workers
            .signal(wid, ProcessState::Quiet)
    }

    /// Tells worker `wid` to terminate. Returns `false` if no such wid is connected.
    pub fn set_terminate(&self, wid: &str) -> bool {
        self.shared
            .state
            .lock()
            .workers
            .signal(wid, ProcessState::Terminate)
    }

    /// Registered worker processes, sorted by wid.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.shared.state.lock();
        state.workers.list(|wid| state.store.busy_count(wid))
    }

    /// Moves virtual time forward and runs every periodic task at once: due scheduled and
    /// retry jobs are queued, expired reservations fail with `ReservationExpired`, workers
    /// silent for 60 s are disconnected.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
        self.shared.run_periodic(true);
    }

    /// FETCHes currently blocked on empty queues (lets a test wait until a FETCH is parked
    /// instead of sleeping).
    pub fn blocked_fetches(&self) -> usize {
        self.shared.state.lock().store.waiters.len()
    }

    /// Open client sockets (including ones still in the handshake).
    pub fn connection_count(&self) -> usize {
        self.shared.open_sockets.load(Ordering::Relaxed)
    }

    /// The INFO document the server would send.
    pub fn info(&self) -> Value {
        self.shared.info()
    }
}
