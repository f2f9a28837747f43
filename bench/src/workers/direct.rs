//! Direct workers: the `faktory` crate's own `Worker`, connected straight to
//! Faktory (through the link when there is one), one connection per slot —
//! the design the gateway replaces.
//!
//! `N` slots run as several `faktory::Worker`s of at most
//! [`SLOTS_PER_WORKER`] slots each (`WorkerBuilder::workers`), started
//! concurrently: one worker with 500 slots opens its 500 connections one
//! after another, which takes minutes across a 200 ms link. Each worker adds
//! one coordinator (heartbeat) connection.

use std::sync::Arc;
use std::time::Duration;

use faktory::{StopReason, Worker};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::runs::scenario::JOBTYPE;
use crate::workers::probe::Probe;

/// Slots per `faktory::Worker`.
pub const SLOTS_PER_WORKER: usize = 25;

/// How long a stopping worker may take to report on running jobs.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running group of direct workers.
pub struct DirectWorkers {
    cancel: CancellationToken,
    tasks: JoinSet<Result<(), Error>>,
    connections: usize,
}

/// How many TCP connections `slots` direct slots open.
pub fn connections_for(slots: usize) -> usize {
    slots + slots.div_ceil(SLOTS_PER_WORKER)
}

impl DirectWorkers {
    /// Starts `slots` slots serving `queue` against Faktory at `url`, each
    /// job handled by `probe`. Returns once the workers are spawned; their
    /// connections open in the background (see [`connections_for`]).
    pub fn start(url: &str, queue: &str, slots: usize, probe: Arc<Probe>) -> DirectWorkers {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut left = slots;
        while left > 0 {
            let size = left.min(SLOTS_PER_WORKER);
            left -= size;
            tasks.spawn(run_worker(
                url.to_owned(),
                queue.to_owned(),
                size,
                Arc::clone(&probe),
                cancel.clone(),
            ));
        }
        DirectWorkers {
            cancel,
            tasks,
            connections: connections_for(slots),
        }
    }

    /// TCP connections these workers open once all are up.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Signals graceful shutdown and waits for every worker to return.
    ///
    /// Fails with the first worker error (connect or protocol failure).
    pub async fn stop(mut self) -> Result<(), Error> {
        self.cancel.cancel();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(|e| Error::Setup(format!("direct worker task: {e}")));
            if let Err(e) = result.and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn run_worker(
    url: String,
    queue: String,
    slots: usize,
    probe: Arc<Probe>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let connecting = Worker::builder::<std::io::Error>()
        .workers(slots)
        .register_fn(JOBTYPE, move |job| {
            let probe = Arc::clone(&probe);
            async move {
                probe.run(job.args()).await;
                Ok(())
            }
        })
        .with_graceful_shutdown(cancel.clone().cancelled_owned())
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .connect_to(&url);
    let mut worker = tokio::select! {
        worker = connecting => worker?,
        _ = cancel.cancelled() => return Ok(()),
    };
    let stopped = worker.run(&[queue.as_str()]).await?;
    match stopped.reason {
        StopReason::GracefulShutdown => Ok(()),
        other => Err(Error::Setup(format!("direct worker stopped: {other:?}"))),
    }
}
