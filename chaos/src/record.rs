//! [`Record`]: what the handlers saw, per jid: runs (and when each
//! started, and on which worker), successes (and when the first one finished), injected
//! failures, and failure records left by anything other than the injection
//! (a retry consumed by a gateway- or network-side event); and when each
//! aborted worker was aborted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::plan::{Class, INJECTED, RESERVATION_EXPIRED, class_of};

/// One jid's history as seen by handlers.
#[derive(Debug, Default, Clone)]
pub(crate) struct JidRecord {
    /// Handler runs started.
    pub(crate) runs: u32,
    /// Runs that succeeded.
    pub(crate) successes: u32,
    /// Runs failed by injection.
    pub(crate) injected: u32,
    /// Errtypes other than [`INJECTED`] found in the job's failure record.
    pub(crate) foreign_errtypes: Vec<String>,
    /// When each run started, in order.
    pub(crate) run_starts: Vec<Instant>,
    /// Which worker (see [`Record::worker_aborted`]) made each run, in order.
    pub(crate) run_workers: Vec<u64>,
    /// When the job was finished: its first successful run ended, or (for
    /// a job bound for the dead set) its injected failure was returned. Any
    /// run starting later is a re-run of a finished job.
    pub(crate) finished_at: Option<Instant>,
    /// The worker that finished it.
    pub(crate) finished_by: Option<u64>,
    /// When a run first found `ReservationExpired` in the job's failure
    /// record (the job had been left to the expiry before that run).
    pub(crate) expiry_seen_at: Option<Instant>,
}

impl JidRecord {
    /// Whether the job was finished before Faktory's reservation expiry
    /// brought it back (always, if it never came back that way).
    pub(crate) fn finished_before_expiry(&self) -> bool {
        self.finished_at
            .is_some_and(|finished| self.expiry_seen_at.is_none_or(|seen| finished < seen))
    }

    /// Starts of the runs that began after the job had finished.
    pub(crate) fn reruns_after_finish(&self) -> impl Iterator<Item = Instant> + '_ {
        let finished = self.finished_at;
        self.run_starts
            .iter()
            .copied()
            .filter(move |start| finished.is_some_and(|at| *start > at))
    }
}

/// Shared by every handler of every worker.
#[derive(Debug, Default)]
pub(crate) struct Record {
    jids: Mutex<HashMap<String, JidRecord>>,
    /// Jids whose expected outcome the handlers have produced (a success,
    /// or the injected failure of a dead-bound job), counted once each.
    resolved: AtomicU64,
    /// Handler runs in total.
    runs: AtomicU64,
    /// Jids with at least one successful run.
    finished: AtomicU64,
    /// When each aborted worker was aborted, by worker number.
    pub(crate) aborted: Mutex<HashMap<u64, Instant>>,
    /// Handler runs that ended after their worker was aborted (neither a
    /// success nor an injected failure: the result died with the worker).
    after_abort: AtomicU64,
}

impl Record {
    /// A handler of `worker` (a number unique to one worker of the run)
    /// starts `jid`; `errtype` is the job's failure record's. Returns whether
    /// to fail it by injection.
    pub(crate) fn start(&self, jid: &str, errtype: Option<&str>, worker: u64) -> bool {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut jids = self.jids.lock();
        let entry = jids.entry(jid.to_owned()).or_default();
        entry.runs += 1;
        let now = Instant::now();
        entry.run_starts.push(now);
        entry.run_workers.push(worker);
        if errtype == Some(RESERVATION_EXPIRED) {
            entry.expiry_seen_at.get_or_insert(now);
        }
        if let Some(errtype) = errtype.filter(|e| *e != INJECTED)
            && !entry.foreign_errtypes.iter().any(|e| e == errtype)
        {
            entry.foreign_errtypes.push(errtype.to_owned());
        }
        class_of(jid).injects(errtype)
    }

    /// The moment a handler of `worker` ends, or `None` when `worker` was
    /// aborted already: then the handler ended after its worker (the SDK's
    /// handler tasks outlive an aborted `Worker::run`, where a crashed
    /// process would take them along) and its result cannot reach Faktory.
    /// Read under the lock [`Record::worker_aborted`] takes, so a result
    /// either counts and ends before the abort, or does not count.
    fn ended(&self, worker: u64) -> Option<Instant> {
        let aborted = self.aborted.lock();
        if aborted.contains_key(&worker) {
            self.after_abort.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Instant::now())
    }

    /// A handler of `worker` failed `jid` by injection.
    pub(crate) fn injected(&self, jid: &str, worker: u64) {
        let Some(now) = self.ended(worker) else {
            return;
        };
        let mut jids = self.jids.lock();
        let entry = jids.entry(jid.to_owned()).or_default();
        entry.injected += 1;
        if class_of(jid) == Class::FailToDead && entry.injected == 1 {
            entry.finished_at = Some(now);
            entry.finished_by = Some(worker);
            self.resolved.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A handler of `worker` finished `jid` successfully.
    pub(crate) fn succeeded(&self, jid: &str, worker: u64) {
        let Some(now) = self.ended(worker) else {
            return;
        };
        let mut jids = self.jids.lock();
        let entry = jids.entry(jid.to_owned()).or_default();
        entry.successes += 1;
        if entry.successes == 1 {
            if entry.finished_at.is_none() {
                entry.finished_at = Some(now);
                entry.finished_by = Some(worker);
            }
            self.finished.fetch_add(1, Ordering::Relaxed);
            self.resolved.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `worker` was aborted just now: results it held and had not yet sent
    /// are gone with it.
    pub(crate) fn worker_aborted(&self, worker: u64) {
        self.aborted.lock().insert(worker, Instant::now());
    }

    /// When the worker that finished `seen` was aborted, if it was at or
    /// after the finish (its result may have died with it).
    pub(crate) fn finisher_aborted_at(&self, seen: &JidRecord) -> Option<Instant> {
        let finished = seen.finished_at?;
        self.aborted_at(seen.finished_by?)
            .filter(|aborted| *aborted >= finished)
    }

    /// When `worker` was aborted, if it was.
    pub(crate) fn aborted_at(&self, worker: u64) -> Option<Instant> {
        self.aborted.lock().get(&worker).copied()
    }

    /// Jids resolved so far (see [`Record::resolved`]'s field).
    pub(crate) fn resolved(&self) -> u64 {
        self.resolved.load(Ordering::Relaxed)
    }

    /// Jids finished (run successfully at least once) so far.
    pub(crate) fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Handler runs that ended after their worker was aborted.
    pub(crate) fn after_abort(&self) -> u64 {
        self.after_abort.load(Ordering::Relaxed)
    }

    /// Handler runs so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// A copy of one jid's history.
    pub(crate) fn get(&self, jid: &str) -> JidRecord {
        self.jids.lock().get(jid).cloned().unwrap_or_default()
    }
}
