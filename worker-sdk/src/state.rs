//! [`WorkerState`]: what outlives a single stream — running handlers,
//! buffered jobs, results not yet confirmed, flow-control measurements and the
//! shutdown clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use faktory_gateway_proto::v1;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};

use crate::cancel::Cancellation;
use crate::client::LiveChannel;
use crate::flow::FlowControl;
use crate::handler::Handlers;
use crate::hooks::{Event, Hooks};
use crate::middleware::{self, Chain};
use crate::results::{Report, Results};
use crate::settings::Settings;
use crate::stats::{Counter, Gauge};
use crate::{Client, Job, JobError, StatsHandle, trace};

/// Errtype of jobs still running when the shutdown timeout ran out.
pub(crate) const SHUTDOWN_TIMEOUT_ERRTYPE: &str = "WorkerShutdownTimeout";

/// The most results of earlier streams remembered.
const MAX_CARRIED: usize = 100_000;

/// A finished handler run, sent from the job's task to the stream owner.
#[derive(Debug)]
pub(crate) struct Outcome {
    jid: String,
    result: Result<(), JobError>,
    backtrace_lines: usize,
}

/// What runs jobs and what hands them context: handlers, middleware, hooks,
/// and the producer client with the stream connection it prefers.
pub(crate) struct Parts {
    pub(crate) handlers: Handlers,
    pub(crate) middleware: Chain,
    pub(crate) hooks: Hooks,
    pub(crate) client: Client,
    pub(crate) live: LiveChannel,
}

/// State shared by consecutive streams of one worker.
pub(crate) struct WorkerState {
    pub(crate) settings: Arc<Settings>,
    pub(crate) parts: Arc<Parts>,
    pub(crate) stats: StatsHandle,
    /// Running handlers by jid, with the stream that delivered them.
    pub(crate) running: HashMap<String, (AbortHandle, u64)>,
    /// Delivered jobs waiting for a free handler slot, with their arrival.
    /// Kept across a broken stream: the next hello lists them, and the
    /// gateway that delivered them keeps them for this worker.
    pub(crate) buffered: VecDeque<(Job, Instant)>,
    /// Which stream is open now; counts up when a stream opens and when it
    /// ends, so jobs finishing between streams count as from an earlier one.
    pub(crate) stream_seq: u64,
    /// Results of jobs delivered on an earlier stream. The gateway may hand
    /// such a job out again after a reconnect; the result is then repeated
    /// instead of the job being run twice.
    pub(crate) carried: HashMap<String, Report>,
    outcomes_tx: mpsc::Sender<Outcome>,
    pub(crate) outcomes_rx: mpsc::Receiver<Outcome>,
    pub(crate) results: Results,
    pub(crate) flow: FlowControl,
    /// Cancelled when the caller's shutdown signal fires; shared with every
    /// running job's cancellation.
    pub(crate) shutdown: Arc<CancellationToken>,
    /// Set when shutdown is first noticed: running handlers have until then.
    pub(crate) shutdown_deadline: Option<Instant>,
}

impl WorkerState {
    pub(crate) fn new(
        settings: Arc<Settings>,
        parts: Arc<Parts>,
        stats: StatsHandle,
        shutdown: CancellationToken,
    ) -> WorkerState {
        // Every running handler sends exactly one outcome and there are never
        // more than `concurrency` of them, so senders never wait.
        let (outcomes_tx, outcomes_rx) = mpsc::channel(settings.concurrency + 1);
        let max_prefetch = settings.max_prefetch;
        let concurrency = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
        WorkerState {
            results: Results::new(settings.flush_count, settings.flush_delay),
            flow: FlowControl::new(
                concurrency,
                max_prefetch,
                settings.flush_delay,
                Instant::now(),
            ),
            settings,
            parts,
            stats,
            running: HashMap::new(),
            buffered: VecDeque::new(),
            stream_seq: 0,
            carried: HashMap::new(),
            outcomes_tx,
            outcomes_rx,
            shutdown: Arc::new(shutdown),
            shutdown_deadline: None,
        }
    }

    /// Notes a requested shutdown: the first time it is seen, starts the
    /// shutdown clock and calls the quiet hooks. Returns whether there is
    /// one.
    pub(crate) fn note_shutdown(&mut self) -> bool {
        if !self.shutdown.is_cancelled() {
            return false;
        }
        if self.shutdown_deadline.is_none() {
            self.shutdown_deadline = Some(Instant::now() + self.settings.shutdown_timeout);
            self.parts.hooks.fire(Event::Quiet);
        }
        true
    }

    /// Jids of every job this worker holds: running, buffered, or finished
    /// with a result not yet confirmed. The hello of a new stream lists them
    /// so that they are not delivered to anyone else.
    pub(crate) fn holding(&self) -> Vec<String> {
        let mut jids: Vec<String> = self.running.keys().cloned().collect();
        jids.extend(self.buffered.iter().map(|(job, _)| job.jid().to_owned()));
        jids.extend(self.results.pending().map(|r| r.jid().to_owned()));
        jids.sort_unstable();
        jids.dedup();
        jids
    }

    /// Drops buffered jobs whose reservation has ended (while the worker was
    /// disconnected): Faktory retries them, so running them here would run
    /// them twice.
    pub(crate) fn drop_expired_buffered(&mut self) {
        let now = SystemTime::now();
        let before = self.buffered.len();
        self.buffered
            .retain(|(job, _)| job.reservation_deadline() > now);
        let expired = before - self.buffered.len();
        if expired > 0 {
            warn!(
                jobs = expired,
                "buffered jobs' reservations ended while disconnected; Faktory retries them"
            );
            self.stats.add(Counter::Expired, expired as u64);
        }
    }

    /// Whether a handler slot is free.
    pub(crate) fn has_free_slot(&self) -> bool {
        self.running.len() < self.settings.concurrency
    }

    /// Whether a handler is registered for `jobtype`.
    pub(crate) fn handles(&self, jobtype: &str) -> bool {
        self.parts.handlers.contains_key(jobtype)
    }

    /// Starts `job`'s handler, inside the middleware, on its own task, in a
    /// span carrying its jid, jobtype, attempt and trace context. Its
    /// cancellation fires on shutdown and the deadline margin before its
    /// reservation ends. Returns `false` (and starts nothing) if no handler
    /// is registered for the jobtype.
    pub(crate) fn start(&mut self, mut job: Job) -> bool {
        let Some(handler) = self.parts.handlers.get(job.jobtype()).cloned() else {
            return false;
        };
        let span = trace::job_span(&job);
        let cancel = Cancellation::new(
            self.shutdown.clone(),
            job.known_deadline(),
            self.settings.deadline_margin,
        );
        job.set_cancellation(cancel.clone());
        let chain = self.parts.middleware.clone();
        let jid = job.jid().to_owned();
        let task_jid = jid.clone();
        let backtrace_lines = job.backtrace_lines();
        let tx = self.outcomes_tx.clone();
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                let result = middleware::run(chain, handler, job).await;
                cancel.finish();
                match &result {
                    Ok(()) => debug!(elapsed = ?started.elapsed(), "job done"),
                    Err(error) => warn!(
                        errtype = %error.errtype(),
                        message = %error.message(),
                        elapsed = ?started.elapsed(),
                        "job failed"
                    ),
                }
                // The receiver lives as long as the worker; if it is gone the
                // worker stopped and nobody wants the result.
                let outcome = Outcome {
                    jid: task_jid,
                    result,
                    backtrace_lines,
                };
                let _ = tx.send(outcome).await;
            }
            .instrument(span),
        );
        self.running
            .insert(jid, (task.abort_handle(), self.stream_seq));
        self.stats.add(Counter::Started, 1);
        self.update_running_gauge();
        true
    }

    /// Turns a handler's outcome into a queued result. Outcomes of jobs no
    /// longer tracked (failed by the shutdown timeout) are dropped.
    pub(crate) fn absorb(&mut self, outcome: Outcome) {
        let Some((_, delivered_on)) = self.running.remove(&outcome.jid) else {
            return;
        };
        self.flow.on_completed(1);
        let report = match outcome.result {
            Ok(()) => {
                self.stats.add(Counter::Succeeded, 1);
                Report::Ack(outcome.jid)
            }
            Err(error) => {
                self.stats.add(Counter::Failed, 1);
                if error.errtype() == "panic" {
                    self.stats.add(Counter::Panicked, 1);
                }
                let (errtype, message, backtrace) = error.into_parts(outcome.backtrace_lines);
                Report::Fail(v1::JobFailure {
                    jid: outcome.jid,
                    errtype,
                    message,
                    backtrace,
                })
            }
        };
        if delivered_on != self.stream_seq {
            self.carry(report.clone());
        }
        self.results.push(report, Instant::now());
        self.update_running_gauge();
    }

    /// Remembers the result of a job from an earlier stream (bounded: the
    /// memory is only an optimisation against running a job twice).
    pub(crate) fn carry(&mut self, report: Report) {
        if self.carried.len() >= MAX_CARRIED {
            self.carried.clear();
        }
        self.carried.insert(report.jid().to_owned(), report);
    }

    /// Aborts every running handler and reports its job as failed with
    /// [`SHUTDOWN_TIMEOUT_ERRTYPE`]. Returns how many there were.
    pub(crate) fn time_out_running(&mut self) -> usize {
        let now = Instant::now();
        let timed_out: Vec<(String, (AbortHandle, u64))> = self.running.drain().collect();
        for (jid, (task, _)) in &timed_out {
            task.abort();
            warn!(jid = %jid, "job still running at the shutdown timeout");
            self.results.push(
                Report::Fail(v1::JobFailure {
                    jid: jid.clone(),
                    errtype: SHUTDOWN_TIMEOUT_ERRTYPE.into(),
                    message: format!(
                        "still running when the worker's shutdown timeout ({:?}) ran out",
                        self.settings.shutdown_timeout
                    ),
                    backtrace: Vec::new(),
                }),
                now,
            );
        }
        self.stats.add(Counter::TimedOut, timed_out.len() as u64);
        self.update_running_gauge();
        timed_out.len()
    }

    fn update_running_gauge(&self) {
        self.stats.set(Gauge::Running, self.running.len() as u64);
    }
}
