//! Job state: queues, reservations (the working set), the scheduled, retry and dead sets.
//!
//! This is Faktory's `manager` package in memory. Everything lives behind the one server lock
//! (see `shared.rs`) and every method takes the virtual `now`, so the same code serves real
//! time and `advance_clock`. Queues are FIFO (Faktory LPUSHes and BRPOPs); reservations are one
//! server-wide table keyed by jid, so ACK and FAIL work from any connection.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use rand::Rng;

use crate::clock::{Nanos, format_rfc3339_nano, parse_rfc3339, secs};
use crate::counters::Counters;
use crate::job::{DEFAULT_RETRY, FailPayload, Failure, Job, MAX_RESERVE_SECS, StoredJob};
use crate::waiters::Waiters;

/// How long Faktory keeps dead jobs (`manager.DeadTTL`, 180 days).
const DEAD_TTL: Nanos = secs(180 * 24 * 3600);

/// What an expired reservation is recorded as (`manager.JobReservationExpired`).
const EXPIRED_ERRTYPE: &str = "ReservationExpired";
const EXPIRED_MESSAGE: &str = "Faktory job reservation expired";

/// A fetched job waiting for ACK or FAIL.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub(crate) job: StoredJob,
    pub(crate) expires_at: Nanos,
    /// The fetching connection's worker id ("" for connections without one).
    pub(crate) wid: String,
}

/// A time-ordered set of jobs (Faktory's Redis sorted sets).
#[derive(Debug, Default)]
pub(crate) struct SortedSet {
    entries: BTreeMap<(Nanos, u64), StoredJob>,
    seq: u64,
}

impl SortedSet {
    fn add(&mut self, at: Nanos, job: StoredJob) {
        self.seq += 1;
        self.entries.insert((at, self.seq), job);
    }

    /// Removes and returns every entry due at or before `now`, earliest first.
    fn take_due(&mut self, now: Nanos) -> Vec<StoredJob> {
        let later = self.entries.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.entries, later);
        due.into_values().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn jobs(&self) -> impl Iterator<Item = &StoredJob> {
        self.entries.values()
    }
}

/// Bookkeeping of one periodic scanner, reported under INFO's `tasks`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ScanStats {
    pub(crate) jobs: u64,
    pub(crate) cycles: u64,
    pub(crate) wall_nanos: u64,
}

/// All job state of one server.
#[derive(Debug, Default)]
pub(crate) struct Store {
    queues: HashMap<String, VecDeque<StoredJob>>,
    pub(crate) scheduled: SortedSet,
    pub(crate) retries: SortedSet,
    pub(crate) dead: SortedSet,
    working: HashMap<String, Reservation>,
    /// Reservations that survived FLUSH: Faktory clears Redis but keeps its in-memory working
    /// map, so such a jid can still be ACKed (counted) or FAILed (silently ignored).
    flushed_reservations: HashSet<String>,
    /// INFO's `total_processed` / `total_failures`; Redis counters, so FLUSH resets them.
    pub(crate) total_processed: u64,
    pub(crate) total_failures: u64,
    pub(crate) counters: Counters,
    pub(crate) scheduled_stats: ScanStats,
    pub(crate) retries_stats: ScanStats,
    pub(crate) dead_stats: ScanStats,
    pub(crate) reservations_reaped: u64,
    /// Paused queues; Faktory keeps this list in memory, so FLUSH does not clear it.
    paused: HashSet<String>,
    /// FETCHes blocked on empty queues.
    pub(crate) waiters: Waiters,
}

/// What a FETCH gets from [`Store::fetch_or_wait`].
#[derive(Debug)]
pub(crate) enum FetchOutcome {
    /// A job, already reserved: its wire encoding.
    Job(Bytes),
    /// Nothing yet: registered as waiter `id`; a job may arrive on `receive`.
    Wait {
        id: u64,
        receive: tokio::sync::oneshot::Receiver<Bytes>,
    },
}

/// What `QUEUE` does to the named queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueAction {
    Pause,
    Resume,
    Remove,
}

impl Store {
    /// PUSH one job, validated as `manager.Push` does. Returns Faktory's error text on rejection.
    pub(crate) fn push(&mut self, mut job: Job, now: Nanos) -> Result<(), String> {
        if job.jid.len() < 8 {
            return Err("jobs must have a reasonable jid parameter".to_owned());
        }
        if job.jobtype.is_empty() {
            return Err("jobs must have a jobtype parameter".to_owned());
        }
        if job.args.is_none() {
            return Err("jobs must have an args parameter".to_owned());
        }
        if job.reserve_for > MAX_RESERVE_SECS {
            return Err("jobs cannot be reserved for more than one day".to_owned());
        }
        if job.retry.is_none() {
            job.retry = Some(DEFAULT_RETRY);
        }
        if job.created_at.is_empty() {
            job.created_at = format_rfc3339_nano(now);
        }
        if job.queue.is_empty() {
            job.queue = "default".to_owned();
        }
        if !job.at.is_empty() {
            let at = parse_rfc3339(&job.at)
                .map_err(|e| format!("invalid timestamp for 'at': {:?}: {e}", job.at))?;
            if at > now {
                self.counters.pushed += 1;
                self.scheduled.add(at, StoredJob::new(job));
                return Ok(());
            }
        }
        self.counters.pushed += 1;
        self.enqueue(job, now);
        Ok(())
    }

    fn enqueue(&mut self, mut job: Job, now: Nanos) {
        job.enqueued_at = format_rfc3339_nano(now);
        let name = job.queue.as_str();
        if !self.queues.contains_key(name) {
            self.queues.insert(name.to_owned(), VecDeque::new());
        }
        let idle = self.queues[name].is_empty() && !self.paused.contains(name);
        if idle && let Some(waiter) = self.waiters.take_for(name) {
            // Like BRPOP: the longest-blocked FETCH gets the job straight away.
            let json = self.reserve(StoredJob::new(job), &waiter.wid, now).clone();
            // Cannot fail: the receiver was alive when taken under this lock, and a waiter
            // drops its receiver only after unregistering under this lock.
            let _ = waiter.deliver.send(json);
            return;
        }
        if let Some(queue) = self.queues.get_mut(job.queue.as_str()) {
            queue.push_back(StoredJob::new(job));
        }
    }

    /// Pops the first job of the first non-empty queue (in the given order), reserves it and
    /// returns its wire encoding.
    pub(crate) fn fetch(&mut self, queues: &[&str], wid: &str, now: Nanos) -> Option<&Bytes> {
        let paused = &self.paused;
        let stored = queues
            .iter()
            .filter(|q| paused.is_empty() || !paused.contains(**q))
            .find_map(|q| self.queues.get_mut(*q).and_then(VecDeque::pop_front))?;
        Some(self.reserve(stored, wid, now))
    }

    /// FETCH that, finding nothing, registers as a waiter on the unpaused `queues`.
    pub(crate) fn fetch_or_wait(&mut self, queues: &[&str], wid: &str, now: Nanos) -> FetchOutcome {
        if let Some(json) = self.fetch(queues, wid, now) {
            return FetchOutcome::Job(json.clone());
        }
        let active: Vec<&str> = queues
            .iter()
            .copied()
            .filter(|q| !self.paused.contains(*q))
            .collect();
        let (id, receive) = self.waiters.register(&active, wid);
        FetchOutcome::Wait { id, receive }
    }

    /// Records a reservation for a fetched job; returns its wire encoding.
    fn reserve(&mut self, stored: StoredJob, wid: &str, now: Nanos) -> &Bytes {
        self.counters.fetched += 1;
        let expires_at = now.saturating_add(secs(stored.job.reservation_secs()));
        let reservation = Reservation {
            expires_at,
            wid: wid.to_owned(),
            job: stored,
        };
        let slot = match self.working.entry(reservation.job.job.jid.clone()) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                o.insert(reservation);
                o.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(reservation),
        };
        &slot.job.json
    }

    /// True when every one of `queues` is paused (Faktory then sleeps and answers nothing).
    pub(crate) fn all_paused(&self, queues: &[&str]) -> bool {
        !self.paused.is_empty() && queues.iter().all(|q| self.paused.contains(*q))
    }

    /// `QUEUE PAUSE|RESUME|REMOVE`: applies to existing queues only (`*` means all of them);
    /// REMOVE empties the queue and unpauses the name either way.
    pub(crate) fn queue_action(&mut self, action: QueueAction, names: &[&str]) {
        let names: Vec<String> = if names == ["*"] {
            self.queues.keys().cloned().collect()
        } else {
            names.iter().map(|n| (*n).to_owned()).collect()
        };
        for name in names {
            let exists = self.queues.contains_key(&name);
            match action {
                QueueAction::Pause if exists => {
                    self.paused.insert(name);
                }
                QueueAction::Resume if exists => {
                    self.paused.remove(&name);
                }
                QueueAction::Remove => {
                    if let Some(q) = self.queues.get_mut(&name) {
                        q.clear();
                    }
                    self.paused.remove(&name);
                }
                _ => {}
            }
        }
    }

    /// ACK: clears the reservation if there is one; an unknown jid is silently accepted.
    pub(crate) fn ack(&mut self, jid: &str) {
        self.counters.acked += 1;
        if self.working.remove(jid).is_some() || self.flushed_reservations.remove(jid) {
            self.total_processed += 1;
            self.counters.processed += 1;
        }
    }

    /// FAIL, as `manager.Fail`. Returns Faktory's error text when the job is not reserved.
    pub(crate) fn fail(&mut self, mut payload: FailPayload, now: Nanos) -> Result<(), String> {
        if payload.jid.is_empty() {
            return Err("missing JID".to_owned());
        }
        payload.cleanse();
        if self.flushed_reservations.remove(&payload.jid) {
            return Ok(());
        }
        let Some(reservation) = self.working.remove(&payload.jid) else {
            return Err(format!("Job not found {}", payload.jid));
        };
        self.record_failure(
            reservation.job.job,
            payload.errtype,
            payload.message,
            payload.backtrace,
            now,
        );
        Ok(())
    }

    /// `processFailure`: update the failure record, then retry set, dead set or nowhere.
    fn record_failure(
        &mut self,
        mut job: Job,
        errtype: String,
        message: String,
        backtrace: Option<Vec<String>>,
        now: Nanos,
    ) {
        // Faktory's `Failure()` counts a failure as processed too.
        self.total_processed += 1;
        self.total_failures += 1;
        self.counters.failed += 1;
        let retry = *job.retry.get_or_insert(DEFAULT_RETRY);
        let failure = match job.failure.take() {
            Some(mut f) => {
                f.retry_count += 1;
                if f.remaining > 0 {
                    f.remaining -= 1;
                }
                f.message = message;
                f.errtype = errtype;
                f.backtrace = backtrace;
                f
            }
            None => Failure {
                retry_count: 0,
                remaining: retry,
                failed_at: format_rfc3339_nano(now),
                next_at: String::new(),
                message,
                errtype,
                backtrace,
            },
        };
        let count = failure.retry_count;
        job.failure = Some(failure);
        if retry == 0 {
            // "no retry, no death, completely ephemeral, goodbye"
            self.counters.dropped += 1;
            return;
        }
        if count < retry {
            let jitter = rand::rng().random_range(0..30i64);
            let delay = count
                .saturating_pow(4)
                .saturating_add(15)
                .saturating_add(jitter.saturating_mul(count.saturating_add(1)));
            let next = now.saturating_add(secs(delay));
            if let Some(f) = job.failure.as_mut() {
                f.next_at = format_rfc3339_nano(next);
            }
            self.counters.retried += 1;
            self.retries.add(next, StoredJob::new(job));
        } else {
            self.counters.dead += 1;
            self.dead
                .add(now.saturating_add(DEAD_TTL), StoredJob::new(job));
        }
    }

    /// Moves due scheduled jobs into their queues. Returns how many moved.
    pub(crate) fn enqueue_scheduled(&mut self, now: Nanos) -> usize {
        let started = Instant::now();
        let due = self.scheduled.take_due(now);
        let n = self.enqueue_all(due, now);
        self.counters.scheduled_enqueued += n as u64;
        bump(&mut self.scheduled_stats, n, started);
        n
    }

    /// Moves due retries into their queues. Returns how many moved.
    pub(crate) fn enqueue_retries(&mut self, now: Nanos) -> usize {
        let started = Instant::now();
        let due = self.retries.take_due(now);
        let n = self.enqueue_all(due, now);
        self.counters.retries_enqueued += n as u64;
        bump(&mut self.retries_stats, n, started);
        n
    }

    fn enqueue_all(&mut self, jobs: Vec<StoredJob>, now: Nanos) -> usize {
        let n = jobs.len();
        for stored in jobs {
            self.enqueue(stored.job, now);
        }
        n
    }

    /// Drops dead jobs older than Faktory's 180-day TTL.
    pub(crate) fn purge_dead(&mut self, now: Nanos) {
        let started = Instant::now();
        let n = self.dead.take_due(now).len();
        bump(&mut self.dead_stats, n, started);
    }

    /// Treats every reservation past its deadline as a `ReservationExpired` failure.
    pub(crate) fn reap_reservations(&mut self, now: Nanos) -> usize {
        let expired: Vec<String> = self
            .working
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(jid, _)| jid.clone())
            .collect();
        for jid in &expired {
            if let Some(r) = self.working.remove(jid) {
                self.counters.expired += 1;
                self.reservations_reaped += 1;
                self.record_failure(
                    r.job.job,
                    EXPIRED_ERRTYPE.to_owned(),
                    EXPIRED_MESSAGE.to_owned(),
                    None,
                    now,
                );
            }
        }
        expired.len()
    }

    /// FLUSH: Faktory's `FLUSHDB` clears queues, sets and statistics, but its in-memory working
    /// map survives.
    pub(crate) fn flush(&mut self) {
        self.queues.clear();
        self.scheduled = SortedSet::default();
        self.retries = SortedSet::default();
        self.dead = SortedSet::default();
        self.flushed_reservations
            .extend(self.working.drain().map(|(jid, _)| jid));
        self.total_processed = 0;
        self.total_failures = 0;
    }

    /// Jobs waiting in `queue`.
    pub(crate) fn queue_len(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, VecDeque::len)
    }

    /// Every known queue with its size.
    pub(crate) fn queue_sizes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.queues.iter().map(|(name, q)| (name.as_str(), q.len()))
    }

    /// Number of reserved jobs.
    pub(crate) fn working_len(&self) -> usize {
        self.working.len() + self.flushed_reservations.len()
    }

    /// Jids of all reserved jobs, sorted.
    pub(crate) fn reserved_jids(&self) -> Vec<String> {
        let mut jids: Vec<String> = self.working.keys().cloned().collect();
        jids.sort();
        jids
    }

    /// Jobs reserved by connections of worker `wid` (Faktory's `BusyCount`).
    pub(crate) fn busy_count(&self, wid: &str) -> usize {
        self.working.values().filter(|r| r.wid == wid).count()
    }

    /// The reservation deadline of `jid`, if reserved.
    pub(crate) fn reservation_deadline(&self, jid: &str) -> Option<Nanos> {
        self.working.get(jid).map(|r| r.expires_at)
    }

    /// Finds a job wherever it is: reserved, queued, scheduled, retrying or dead.
    pub(crate) fn find(&self, jid: &str) -> Option<&StoredJob> {
        if let Some(r) = self.working.get(jid) {
            return Some(&r.job);
        }
        let in_queue = self
            .queues
            .values()
            .flat_map(|q| q.iter())
            .find(|s| s.job.jid == jid);
        in_queue.or_else(|| {
            [&self.scheduled, &self.retries, &self.dead]
                .into_iter()
                .flat_map(SortedSet::jobs)
                .find(|s| s.job.jid == jid)
        })
    }
}

fn bump(stats: &mut ScanStats, jobs: usize, started: Instant) {
    stats.jobs += jobs as u64;
    stats.cycles += 1;
    stats.wall_nanos += started.elapsed().as_nanos() as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Nanos = secs(1_800_000_000);

    fn job(jid: &str, extra: &str) -> Job {
        serde_json::from_str(&format!(
            r#"{{"jid":"{jid}","jobtype":"t","args":[]{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn push_validation_messages() {
        let mut s = Store::default();
        assert!(s.push(job("short", ""), NOW).unwrap_err().contains("jid"));
        let mut j = job("abcdefgh", "");
        j.jobtype.clear();
        assert!(s.push(j, NOW).unwrap_err().contains("jobtype"));
        let mut j = job("abcdefgh", "");
        j.args = None;
        assert!(s.push(j, NOW).unwrap_err().contains("args"));
        assert!(
            s.push(job("abcdefgh", r#","reserve_for":86401"#), NOW)
                .unwrap_err()
                .contains("one day")
        );
        assert!(
            s.push(job("abcdefgh", r#","at":"soon""#), NOW)
                .unwrap_err()
                .contains("invalid timestamp")
        );
        s.push(job("abcdefgh", ""), NOW).unwrap();
        assert_eq!(s.queue_len("default"), 1);
    }

    fn fail(s: &mut Store, jid: &str) -> Result<(), String> {
        let payload = FailPayload {
            jid: jid.into(),
            ..Default::default()
        };
        s.fail(payload, NOW)
    }

    #[test]
    fn fail_retry_then_dead() {
        let mut s = Store::default();
        s.push(job("jid-0001", r#","retry":1"#), NOW).unwrap();
        s.fetch(&["default"], "", NOW).unwrap();
        fail(&mut s, "jid-0001").unwrap();
        assert_eq!(s.retries.len(), 1);
        let f = s.find("jid-0001").unwrap().job.failure.clone().unwrap();
        assert_eq!((f.retry_count, f.remaining), (0, 1));
        assert_eq!(s.enqueue_retries(NOW + secs(15 + 29)), 1);
        s.fetch(&["default"], "", NOW).unwrap();
        fail(&mut s, "jid-0001").unwrap();
        assert_eq!(s.dead.len(), 1);
        let f = s.find("jid-0001").unwrap().job.failure.clone().unwrap();
        assert_eq!((f.retry_count, f.remaining), (1, 0));
        assert_eq!(
            fail(&mut s, "jid-0001").unwrap_err(),
            "Job not found jid-0001"
        );
    }

    #[test]
    fn expiry_uses_a_retry() {
        let mut s = Store::default();
        s.push(job("jid-0002", r#","reserve_for":10"#), NOW)
            .unwrap();
        s.fetch(&["default"], "", NOW).unwrap();
        assert_eq!(s.reap_reservations(NOW + secs(59)), 0);
        assert_eq!(s.reap_reservations(NOW + secs(60)), 1);
        let f = s.find("jid-0002").unwrap().job.failure.clone().unwrap();
        assert_eq!(f.errtype, "ReservationExpired");
    }
}
