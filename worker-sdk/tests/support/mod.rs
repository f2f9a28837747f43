//! Helpers shared by the SDK's integration tests: handlers that record or
//! hold their runs, a worker on its own task, the "every job ran" check.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod stack;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faktory_gateway_worker::{Job, JobError, StatsHandle, StopReason, WorkerBuilder};
use faktory_test_server::ServerHandle;
use futures::FutureExt;
use futures::future::BoxFuture;
use stack::eventually;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Counts handlers that started, those running now, and the peak.
#[derive(Debug, Default)]
pub struct Concurrent {
    started: AtomicUsize,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrent {
    pub fn enter(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    pub fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A handler that counts itself in `concurrent` and succeeds once it gets a
/// permit from `gate` (each permit lets one job finish).
pub fn gated(
    gate: &Arc<Semaphore>,
    concurrent: &Arc<Concurrent>,
) -> impl Fn(Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static {
    let (gate, concurrent) = (gate.clone(), concurrent.clone());
    move |_job: Job| {
        let (gate, concurrent) = (gate.clone(), concurrent.clone());
        async move {
            concurrent.enter();
            gate.acquire().await.expect("gate open").forget();
            concurrent.exit();
            Ok(())
        }
        .boxed()
    }
}

/// How many times each jid ran.
#[derive(Clone, Default)]
pub struct Runs(Arc<Mutex<HashMap<String, u32>>>);

impl Runs {
    pub fn record(&self, jid: &str) {
        *self.0.lock().unwrap().entry(jid.to_owned()).or_default() += 1;
    }
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn snapshot(&self) -> HashMap<String, u32> {
        self.0.lock().unwrap().clone()
    }
}

/// A worker running on its own task: its stats, the sender that stops it,
/// and the task.
pub type Running = (StatsHandle, oneshot::Sender<()>, JoinHandle<StopReason>);

/// Runs `worker` on its own task; the sender stops it.
pub fn spawn(worker: WorkerBuilder) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = worker
        .with_graceful_shutdown(stopped)
        .build()
        .expect("valid worker");
    let stats = worker.stats();
    let task = tokio::spawn(async move { worker.run().await.expect("worker runs") });
    (stats, stop, task)
}

/// A handler that records its run and returns at once.
pub fn recording(
    runs: &Runs,
) -> impl Fn(Job) -> futures::future::Ready<Result<(), JobError>> + Send + Sync + 'static {
    let runs = runs.clone();
    move |job: Job| {
        runs.record(job.jid());
        futures::future::ready(Ok(()))
    }
}

/// A handler that records its run and takes a millisecond.
pub fn brief(
    runs: &Runs,
) -> impl Fn(Job) -> futures::future::BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static
{
    let runs = runs.clone();
    move |job: Job| {
        runs.record(job.jid());
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        })
    }
}

/// Waits until every one of `jids` ran and Faktory holds nothing, then checks
/// no retry was used. Jobs a gateway released back to Faktory return as copies
/// scheduled 1 s ahead: the clock is moved instead of waiting for them.
pub async fn all_ran_and_faktory_empty(faktory: &ServerHandle, runs: &Runs, jids: &[String]) {
    eventually("every job ran and Faktory is empty", || {
        if faktory.scheduled_len() > 0 {
            faktory.advance_clock(Duration::from_secs(2));
        }
        runs.distinct() == jids.len()
            && faktory.total_queued() == 0
            && faktory.scheduled_len() == 0
            && faktory.reserved_jids().is_empty()
    })
    .await;
    let ran: HashSet<String> = runs.snapshot().into_keys().collect();
    assert_eq!(ran, jids.iter().cloned().collect());
    assert!(
        faktory.retries().is_empty() && faktory.dead().is_empty(),
        "no retry was used"
    );
}
