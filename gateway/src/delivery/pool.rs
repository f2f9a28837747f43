//! An elastic pool of delivery tasks of one role (fetching, or settling
//! results), each owning one Faktory connection.
//!
//! Real Faktory serves the commands of one connection one after another,
//! each waiting on its Redis round trip, so one connection does a few
//! thousand commands a second however deep the pipeline: throughput grows
//! with connections, not with depth. A pool therefore grows by one task
//! whenever a task takes work while more is waiting and no task of the pool
//! is idle, up to its maximum; a task that finds no work for
//! [`IDLE_TIMEOUT`] ends (and ENDs its connection) while more than the
//! minimum run. A new task counts as idle until it takes work, so one burst
//! adds one task at a time, not a task per waiting job.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tracing::debug;

use super::wait::{Waited, wait};
use crate::metrics::{Gauge, Metrics};

/// How long a task beyond the minimum waits for work before it ends.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a pool task should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<T> {
    /// Work to do.
    Work(T),
    /// The pool is stopping.
    Stop,
    /// Idle too long while the pool has more than its minimum: end.
    Retire,
}

/// What a pool is for and how large it may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSpec {
    /// The role, for logs.
    pub(crate) role: &'static str,
    /// Fewest tasks (at least 1).
    pub(crate) min: usize,
    /// Most tasks (at least `min`).
    pub(crate) max: usize,
    /// The gauge showing the pool's size.
    pub(crate) size: fn(&Metrics) -> &Gauge,
}

/// Builds the future of one task of a pool.
type Spawn = Box<dyn Fn(Member) -> BoxFuture<'static, ()> + Send + Sync>;

/// An elastic set of tasks of one role. Cheap to share through `Arc`.
pub(crate) struct Pool {
    role: &'static str,
    min: usize,
    max: usize,
    running: AtomicUsize,
    idle: AtomicUsize,
    tracker: TaskTracker,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    size: fn(&Metrics) -> &Gauge,
    spawn: Spawn,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("role", &self.role)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("running", &self.running.load(Ordering::Relaxed))
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool as `spec` says (`1 <= min <= max` is enforced) whose task
    /// futures `spawn` builds, run on `tracker`, stopped by `stop`, its size
    /// shown in `metrics`. Starts `min` tasks.
    pub(crate) fn start(
        spec: PoolSpec,
        tracker: TaskTracker,
        stop: CancellationToken,
        metrics: Arc<Metrics>,
        spawn: impl Fn(Member) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Arc<Pool> {
        let max = spec.max.max(1);
        let pool = Arc::new(Pool {
            role: spec.role,
            min: spec.min.clamp(1, max),
            max,
            running: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            tracker,
            stop,
            metrics,
            size: spec.size,
            spawn: Box::new(spawn),
        });
        for _ in 0..pool.min {
            pool.running.fetch_add(1, Ordering::Relaxed);
            pool.launch();
        }
        pool
    }

    /// Number of tasks running.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    fn show_size(&self) {
        (self.size)(&self.metrics).set(i64::try_from(self.running()).unwrap_or(i64::MAX));
    }

    /// Adds a task unless the pool is full or stopping.
    fn grow(self: &Arc<Self>) {
        if self.stop.is_cancelled() {
            return;
        }
        let grown = self
            .running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if grown {
            debug!(role = self.role, tasks = self.running(), "pool grows");
            self.launch();
        }
    }

    /// Starts a task already counted in `running`; it counts as idle until
    /// it first takes work.
    fn launch(self: &Arc<Self>) {
        self.idle.fetch_add(1, Ordering::Relaxed);
        self.show_size();
        let member = Member {
            pool: self.clone(),
            idle_until: Some(Instant::now() + IDLE_TIMEOUT),
            counted: true,
        };
        self.tracker.spawn((self.spawn)(member));
    }
}

/// One task's place in its pool: leaves the pool when dropped.
#[derive(Debug)]
pub(crate) struct Member {
    pool: Arc<Pool>,
    /// While idle: when the task may retire.
    idle_until: Option<Instant>,
    /// Whether the task is still counted in `running`.
    counted: bool,
}

impl Member {
    /// Fires when the pool stops.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.pool.stop
    }

    /// Waits for work. Each time `wake` fires (and once at the start) it
    /// calls `take`, which returns the work and whether more is waiting
    /// after it; more waiting wakes one idle task (`wake` is meant to be
    /// notified with `notify_one`), or grows the pool by one when none is
    /// idle.
    /// Returns [`Next::Stop`] once the pool stops and `take` finds nothing,
    /// [`Next::Retire`] after [`IDLE_TIMEOUT`] without work when the pool
    /// has more than its minimum (the task must end then). The waiting
    /// itself is [`wait`]'s.
    pub(crate) async fn next<T>(
        &mut self,
        wake: &Notify,
        mut take: impl FnMut() -> Option<(T, bool)>,
    ) -> Next<T> {
        loop {
            // `take` first, then the stop, then idle until a wake, the stop
            // or the idle deadline. The closures borrow the fields they
            // need, so `self.pool.stop` can be borrowed meanwhile.
            let waited = wait(wake, Some(&self.pool.stop), &mut take, || {
                Self::set_idle(&self.pool, &mut self.idle_until, true);
                self.idle_until.unwrap_or_else(Instant::now)
            })
            .await;
            match waited {
                Waited::Ready((work, more)) => {
                    Self::set_idle(&self.pool, &mut self.idle_until, false);
                    if more {
                        // Wakes reach one idle task at a time (a wake for
                        // every task would make each of them look for work
                        // on every fetched job and every result): pass it
                        // on, or grow.
                        if self.pool.idle.load(Ordering::Relaxed) == 0 {
                            self.pool.grow();
                        } else {
                            wake.notify_one();
                        }
                    }
                    return Next::Work(work);
                }
                Waited::Stopped => return Next::Stop,
                Waited::Deadline => {
                    if self.try_retire() {
                        return Next::Retire;
                    }
                    // At the minimum: stay, idle afresh.
                    self.idle_until = Some(Instant::now() + IDLE_TIMEOUT);
                }
            }
        }
    }

    /// Counts the task idle or busy in `pool`; `idle_until` is set while
    /// idle. Takes the fields rather than `self` so that [`Member::next`]
    /// can call it while `self.pool.stop` is borrowed.
    fn set_idle(pool: &Pool, idle_until: &mut Option<Instant>, idle: bool) {
        match (idle_until.is_some(), idle) {
            (false, true) => {
                pool.idle.fetch_add(1, Ordering::Relaxed);
                *idle_until = Some(Instant::now() + IDLE_TIMEOUT);
            }
            (true, false) => {
                pool.idle.fetch_sub(1, Ordering::Relaxed);
                *idle_until = None;
            }
            _ => {}
        }
    }

    /// Leaves the running count if the pool has more than its minimum.
    fn try_retire(&mut self) -> bool {
        let pool = &self.pool;
        let retired = pool
            .running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > pool.min).then(|| n - 1)
            })
            .is_ok();
        if retired {
            self.counted = false;
            pool.show_size();
            debug!(role = pool.role, tasks = pool.running(), "pool shrinks");
        }
        retired
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        Self::set_idle(&self.pool, &mut self.idle_until, false);
        if self.counted {
            self.pool.running.fetch_sub(1, Ordering::Relaxed);
            self.pool.show_size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool whose tasks take one unit of `work` per wake and report
    /// whether more is left.
    fn start(max: usize, work: Arc<AtomicUsize>, wake: Arc<Notify>) -> (Arc<Pool>, TaskTracker) {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let spec = PoolSpec {
            role: "test",
            min: 1,
            max,
            size: |m| &m.fetch_connections,
        };
        let pool = Pool::start(
            spec,
            tracker.clone(),
            stop,
            Metrics::new(),
            move |mut member| {
                let (work, wake) = (work.clone(), wake.clone());
                Box::pin(async move {
                    loop {
                        let next = member
                            .next(&wake, || {
                                let left = work.load(Ordering::Relaxed);
                                (left > 0).then(|| {
                                    work.fetch_sub(1, Ordering::Relaxed);
                                    ((), left > 1)
                                })
                            })
                            .await;
                        if next != Next::Work(()) {
                            break;
                        }
                        // Hold the work a while, as a Faktory round trip would.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            },
        );
        (pool, tracker)
    }

    #[tokio::test(start_paused = true)]
    async fn grows_while_work_waits_and_shrinks_when_idle() {
        let work = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let (pool, _tracker) = start(4, work.clone(), wake.clone());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(pool.running(), 1, "starts at the minimum");
        work.store(1000, Ordering::Relaxed);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.running(), 4, "grew to the maximum, no further");
        // Work runs out; after the idle timeout the pool is back to one.
        while work.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(IDLE_TIMEOUT + Duration::from_secs(1)).await;
        assert_eq!(pool.running(), 1);
        // The one left still serves work.
        work.store(1, Ordering::Relaxed);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(work.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_job_at_a_time_does_not_grow_the_pool() {
        let work = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let (pool, _tracker) = start(4, work.clone(), wake.clone());
        for _ in 0..20 {
            work.store(1, Ordering::Relaxed);
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pool.running(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_every_task() {
        let work = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let (pool, tracker) = start(4, work.clone(), wake.clone());
        work.store(100, Ordering::Relaxed);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(pool.running() > 1);
        pool.stop.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(pool.running(), 0);
    }
}
