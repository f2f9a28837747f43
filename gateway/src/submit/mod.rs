//! The submit path: `Push` calls validated, coalesced and sent to Faktory.
//!
//! - [`Submitter`] (here): the handle the gRPC service calls; checks the
//!   call, validates each job, splits the valid ones into parts and waits
//!   for their outcomes.
//! - [`validate`]: per-job rules and Faktory JSON encoding.
//! - `batcher`: merges parts of concurrent calls into `PUSHB` batches and
//!   hands them to free producer connections.
//! - `producer_pool`: the producer connections, one task each.

mod batcher;
mod producer_pool;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1::{PushRequest, PushResponse, PushResult, PushStatus};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tonic::Status;

use self::batcher::{BatchRules, Outcome, Part};

use self::validate::{Limits, ValidJob};
use crate::config::Config;

use crate::metrics::{Metrics, QueueEvent};

/// How many parts may wait for the batcher before `push` waits too.
const PART_QUEUE: usize = 1024;

/// The submit path's settings (from [`Config`]).
#[derive(Debug, Clone, Copy)]
pub struct SubmitSettings {
    /// Most jobs per `Push` call.
    pub max_jobs_per_push: usize,
    /// Most bytes of one job's Faktory JSON.
    pub max_job_bytes: usize,
    /// Most jobs per `PUSHB`; calls with at least this many jobs are sent on
    /// their own.
    pub batch_max_size: usize,
    /// Most bytes per `PUSHB`.
    pub batch_max_bytes: usize,
    /// Longest a small call waits for others to share its `PUSHB`.
    pub batch_max_delay: Duration,
    /// Whether concurrent calls are coalesced.
    pub batch_auto_enabled: bool,
    /// Producer connections to Faktory.
    pub producer_connections: usize,
}

impl SubmitSettings {
    /// The settings in `config`.
    pub fn from_config(config: &Config) -> SubmitSettings {
        SubmitSettings {
            max_jobs_per_push: config.max_jobs_per_push as usize,
            max_job_bytes: config.max_job_bytes as usize,
            batch_max_size: config.batch_max_size as usize,
            batch_max_bytes: config.batch_max_bytes as usize,
            batch_max_delay: config.batch_max_delay(),
            batch_auto_enabled: config.batch_auto_enabled,
            producer_connections: config.producer_connections as usize,
        }
    }
}

/// The submit path. Cheap to clone; all clones share the producer pool.
///
/// Dropping every clone (or calling [`Submitter::close`]) lets the batcher
/// send what is still waiting and the producers end their connections.
#[derive(Debug, Clone)]
pub struct Submitter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: SubmitSettings,
    parts: mpsc::Sender<Part>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

impl Submitter {
    /// Starts the batcher and producer tasks for the Faktory server in
    /// `config` (connections open lazily, on the first push). Must be called
    /// inside a tokio runtime.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Submitter {
        let endpoint = Arc::new(config.faktory_endpoint());
        let settings = SubmitSettings::from_config(config);
        let tasks = TaskTracker::new();
        let connections = settings.producer_connections.max(1);
        let (idle_tx, idle_rx) = mpsc::channel(connections);
        let mut producers = Vec::with_capacity(connections);
        for index in 0..connections {
            let (tx, rx) = mpsc::channel(1);
            producers.push(tx);
            tasks.spawn(producer_pool::run_producer(
                index,
                endpoint.clone(),
                metrics.clone(),
                rx,
                idle_tx.clone(),
            ));
        }
        let rules = BatchRules {
            max_jobs: settings.batch_max_size.max(1),
            max_bytes: settings.batch_max_bytes.max(1),
            max_delay: settings.batch_max_delay,
        };
        let (parts_tx, parts_rx) = mpsc::channel(PART_QUEUE);
        tasks.spawn(batcher::run_batcher(parts_rx, producers, idle_rx, rules));
        tasks.close();
        Submitter {
            inner: Arc::new(Inner {
                settings,
                parts: parts_tx,
                metrics,
                tasks,
            }),
        }
    }

    /// Handles one `Push` call: answers one result per job, in request
    /// order, after Faktory holds the accepted ones.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` (nothing pushed) when the request holds no jobs or
    /// more than the per-call limit.
    pub async fn push(&self, request: PushRequest) -> Result<PushResponse, Status> {
        let settings = &self.inner.settings;
        let metrics = &self.inner.metrics;
        metrics.push_calls.inc();
        let count = request.jobs.len();
        if count == 0 {
            return Err(Status::invalid_argument(
                "the push request holds no jobs; send at least one",
            ));
        }
        if count > settings.max_jobs_per_push {
            return Err(Status::invalid_argument(format!(
                "the push request holds {count} jobs, more than the limit of {} jobs per call; \
                 split it into smaller calls",
                settings.max_jobs_per_push
            )));
        }

        let limits = Limits {
            max_job_bytes: settings.max_job_bytes,
        };
        let mut results = Vec::with_capacity(count);
        let mut valid: Vec<(usize, ValidJob)> = Vec::with_capacity(count);
        // The queue of each valid job, for the per-queue counters.
        let mut queues: Vec<String> = Vec::with_capacity(count);
        for (index, job) in request.jobs.into_iter().enumerate() {
            let queue = job.queue.clone();
            match validate::validate(job, &limits) {
                Ok(job) => {
                    results.push(result(&job.jid, PushStatus::Accepted, "", String::new()));
                    valid.push((index, job));
                    queues.push(queue);
                }
                Err(invalid) => {
                    metrics.jobs_invalid.inc();
                    results.push(result(
                        &invalid.jid,
                        PushStatus::Invalid,
                        invalid.field,
                        invalid.reason,
                    ));
                }
            }
        }

        tracing::debug!(jobs = count, valid = valid.len(), "push");
        let indices: Vec<usize> = valid.iter().map(|(i, _)| *i).collect();
        let outcomes = self
            .send(valid.into_iter().map(|(_, job)| job).collect())
            .await;
        let mut accepted = Vec::with_capacity(queues.len());
        for ((index, outcome), queue) in indices.into_iter().zip(outcomes).zip(&queues) {
            let slot = &mut results[index];
            match outcome {
                Outcome::Accepted => {
                    metrics.jobs_pushed.inc();
                    accepted.push(queue.as_str());
                }
                Outcome::Rejected(reason) => {
                    metrics.jobs_rejected.inc();
                    slot.status = PushStatus::Rejected.into();
                    slot.reason = reason;
                }
                Outcome::Unavailable(reason) => {
                    metrics.jobs_unavailable.inc();
                    slot.status = PushStatus::Unavailable.into();
                    slot.reason = reason;
                }
            }
        }
        metrics.queues.add_each(accepted, QueueEvent::Pushed);
        Ok(PushResponse { results })
    }

    /// Sends valid jobs to Faktory; one outcome per job, in order.
    async fn send(&self, jobs: Vec<ValidJob>) -> Vec<Outcome> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let settings = &self.inner.settings;
        let count = jobs.len();
        // Small calls share PUSHBs with others; large ones (or all, when
        // coalescing is off) go on their own, split to the batch limits.
        let solo = !settings.batch_auto_enabled || count >= settings.batch_max_size;
        let chunk_jobs = if settings.batch_auto_enabled {
            spread_size(
                count,
                settings.batch_max_size,
                settings.producer_connections,
            )
        } else {
            settings.batch_max_size
        };
        let mut receivers = Vec::new();
        for chunk in split(jobs, chunk_jobs, settings.batch_max_bytes) {
            let (part, outcomes) = Part::new(chunk, solo);
            if let Err(refused) = self.inner.parts.send(part).await {
                refused
                    .0
                    .answer_all(Outcome::Unavailable("gateway is shutting down".to_owned()));
            }
            receivers.push(outcomes);
        }
        let mut outcomes = Vec::with_capacity(count);
        for receiver in receivers {
            match receiver.await {
                Ok(part) => outcomes.extend(part),
                Err(_) => break,
            }
        }
        // A dropped part (batcher gone mid-call) leaves its jobs unconfirmed.
        outcomes.resize(
            count,
            Outcome::Unavailable("the push was interrupted by gateway shutdown".to_owned()),
        );
        outcomes
    }

    /// Drops this handle and waits until the batcher and producers have
    /// finished (which happens once every clone is dropped): waiting parts
    /// are sent and connections end with `END`.
    pub async fn close(self) {
        let tasks = self.inner.tasks.clone();
        drop(self);
        tasks.wait().await;
    }
}

fn result(jid: &str, status: PushStatus, field: &str, reason: String) -> PushResult {
    PushResult {
        jid: jid.to_owned(),
        status: status.into(),
        field: field.to_owned(),
        reason,
    }
}

/// Fewest jobs in one `PUSHB` of a call spread over several connections.
const MIN_SPREAD_JOBS: usize = 25;

/// How many jobs of a call of `count` go into each of its `PUSHB`s: at most
/// `batch_max_size`, and few enough that the call spreads over the
/// `connections` producer connections (down to [`MIN_SPREAD_JOBS`] a
/// `PUSHB`). Faktory serves one connection's commands one after another, each
/// waiting on Redis, so a 100-job call sent as four 25-job `PUSHB`s on four
/// connections is answered sooner than one 100-job `PUSHB`.
fn spread_size(count: usize, batch_max_size: usize, connections: usize) -> usize {
    let batch_max_size = batch_max_size.max(1);
    if count < batch_max_size {
        // A shared call: merged with others up to the batch limit.
        return batch_max_size;
    }
    count
        .div_ceil(connections.max(1))
        .clamp(MIN_SPREAD_JOBS.min(batch_max_size), batch_max_size)
}

/// Splits jobs into chunks of at most `max_jobs` jobs and (unless a single
/// job is bigger) `max_bytes` bytes of JSON.
fn split(jobs: Vec<ValidJob>, max_jobs: usize, max_bytes: usize) -> Vec<Vec<ValidJob>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for job in jobs {
        let size = job.json.len() + 1;
        if !chunk.is_empty() && (chunk.len() >= max_jobs || bytes + size > max_bytes) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(job);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[cfg(test)]
mod tests;
