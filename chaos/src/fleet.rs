//! [`Fleet`]: the SDK workers of the run. Each slot runs one
//! `faktory_gateway_worker::Worker` connected to one gateway (slots are
//! spread round-robin over the gateways); a slot can be aborted (its task
//! dropped, no graceful shutdown: the stream just breaks) and refilled with
//! a fresh worker. Every fourth slot runs a slow handler.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faktory_gateway_worker::{Job, JobError, StopReason, Worker};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::plan::{INJECTED, JOBTYPE};
use crate::record::Record;

/// Handler concurrency of each worker.
const CONCURRENCY: usize = 16;
/// How long a slow worker's handler takes.
const SLOW_HANDLER: Duration = Duration::from_millis(5);
/// Graceful shutdown limit of a worker at the end of the run.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

struct Slot {
    /// The worker's number in the [`Record`].
    worker: u64,
    slow: bool,
    gateway: usize,
    stop: CancellationToken,
    task: JoinHandle<Result<StopReason, faktory_gateway_worker::Error>>,
}

/// The workers; see the module docs.
pub(crate) struct Fleet {
    gateway_urls: Vec<String>,
    queue: String,
    record: Arc<Record>,
    slots: Vec<Slot>,
    started: u64,
}

impl Fleet {
    /// Starts `n` workers serving `queue`, worker `i` against
    /// `gateway_urls[i % gateway_urls.len()]`.
    pub(crate) fn start(
        gateway_urls: Vec<String>,
        queue: String,
        record: Arc<Record>,
        n: usize,
    ) -> anyhow::Result<Fleet> {
        let mut fleet = Fleet {
            gateway_urls,
            queue,
            record,
            slots: Vec::with_capacity(n),
            started: 0,
        };
        for i in 0..n {
            let slot = fleet.spawn(i % 4 == 0, i % fleet.gateway_urls.len())?;
            fleet.slots.push(slot);
        }
        Ok(fleet)
    }

    /// How many slots there are.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn spawn(&mut self, slow: bool, gateway: usize) -> anyhow::Result<Slot> {
        self.started += 1;
        let number = self.started;
        let record = self.record.clone();
        let stop = CancellationToken::new();
        let worker = Worker::builder()
            .gateway(self.gateway_urls[gateway].clone())
            .worker_id(format!("chaos-worker-{number}"))
            .queues([self.queue.clone()])
            .concurrency(CONCURRENCY)
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
            .shutdown_timeout(SHUTDOWN_TIMEOUT)
            .register(JOBTYPE, move |job: Job| {
                handle(job, record.clone(), slow, number)
            })
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .build()
            .context("build a worker")?;
        Ok(Slot {
            worker: number,
            slow,
            gateway,
            stop,
            task: tokio::spawn(worker.run()),
        })
    }

    /// Aborts the worker in slot `index` (no graceful shutdown) and starts a
    /// fresh one there.
    pub(crate) fn abort_and_replace(&mut self, index: usize) -> anyhow::Result<()> {
        let Slot {
            worker,
            slow,
            gateway,
            ..
        } = self.slots[index];
        self.slots[index].task.abort();
        self.record.worker_aborted(worker);
        self.slots[index] = self.spawn(slow, gateway)?;
        Ok(())
    }

    /// Shuts every worker down gracefully and waits for them; returns how
    /// many stopped cleanly.
    pub(crate) async fn stop(self) -> usize {
        for slot in &self.slots {
            slot.stop.cancel();
        }
        let mut clean = 0;
        for slot in self.slots {
            if let Ok(Ok(Ok(StopReason::Shutdown))) =
                tokio::time::timeout(SHUTDOWN_TIMEOUT * 2, slot.task).await
            {
                clean += 1;
            }
        }
        clean
    }
}

/// The handler: records the run, waits if slow, fails by injection where the
/// plan says so, otherwise succeeds.
async fn handle(job: Job, record: Arc<Record>, slow: bool, worker: u64) -> Result<(), JobError> {
    let jid = job.jid().to_owned();
    let errtype = job.failure().map(|f| f.errtype.clone());
    let inject = record.start(&jid, errtype.as_deref(), worker);
    if slow {
        tokio::time::sleep(SLOW_HANDLER).await;
    }
    if inject {
        record.injected(&jid, worker);
        return Err(JobError::new(INJECTED, "chaos: injected failure"));
    }
    record.succeeded(&jid, worker);
    Ok(())
}
