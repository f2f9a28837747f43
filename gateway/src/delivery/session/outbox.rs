//! [`Outbox`]: what one session still has to send its worker, and in which
//! order: heartbeats and rejections first, then job batches and
//! confirmations of results taking turns, then the drain notice once no
//! batch is left.

use std::collections::VecDeque;
use std::time::Duration;

use faktory_gateway_proto::v1::{
    GatewayMessage, JobBatch, RejectedResult, ResultRejected, Settled, gateway_message,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;
use tracing::{debug, info};

use super::super::batch;
use super::super::dispatcher::Outgoing;
use crate::metrics::{Metrics, QueueEvent};

/// Most jids in one `Settled` message (at most ~1.3 MiB even with the
/// longest jids a worker may hold; well under any message limit a worker
/// can state for jobs).
pub(crate) const MAX_SETTLED_PER_MESSAGE: usize = 5_000;

/// A message of `kind`.
fn message(kind: gateway_message::Kind) -> GatewayMessage {
    GatewayMessage { kind: Some(kind) }
}

/// Messages waiting for the worker's stream.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Heartbeats and rejections, sent before job batches.
    control: VecDeque<GatewayMessage>,
    batches: VecDeque<JobBatch>,
    /// Jids whose results Faktory took, to be sent in `Settled` messages
    /// between job batches.
    confirmations: Vec<String>,
    /// Whether the last message sent was a job batch (confirmations then get
    /// the next turn, so that a busy stream does not starve them).
    jobs_last: bool,
    /// The drain notice, sent once the batches queued before it are out:
    /// no job reaches the worker after the notice.
    drain: Option<GatewayMessage>,
    /// The worker's limit for one message, for cutting job batches.
    max_message_bytes: usize,
    /// The latest ping handed to the stream and when, for the round trip.
    ping_sent: Option<(u64, Instant)>,
}

impl Outbox {
    /// Empty, for a worker that takes messages of up to `max_message_bytes`.
    pub(super) fn new(max_message_bytes: usize) -> Outbox {
        Outbox {
            control: VecDeque::new(),
            batches: VecDeque::new(),
            confirmations: Vec::new(),
            jobs_last: false,
            drain: None,
            max_message_bytes,
            ping_sent: None,
        }
    }

    /// Whether anything waits to be sent.
    pub(super) fn has_output(&self) -> bool {
        !self.control.is_empty()
            || !self.batches.is_empty()
            || self.drain.is_some()
            || !self.confirmations.is_empty()
    }

    /// Queues a control message (welcome, heartbeat), sent before jobs.
    pub(super) fn push_control(&mut self, kind: gateway_message::Kind) {
        self.control.push_back(message(kind));
    }

    /// Queues a `ResultRejected` for `rejected`, if any.
    pub(super) fn reject(&mut self, rejected: Vec<RejectedResult>) {
        if !rejected.is_empty() {
            debug!(count = rejected.len(), "results rejected");
            self.push_control(gateway_message::Kind::Rejected(ResultRejected {
                results: rejected,
            }));
        }
    }

    /// Takes what the dispatcher had for the session: newly assigned jobs,
    /// confirmations and refusals of results, and any drain notice.
    pub(super) fn take(&mut self, mut out: Outgoing) {
        if self.confirmations.is_empty() {
            self.confirmations = out.settled;
        } else {
            self.confirmations.append(&mut out.settled);
        }
        self.reject(out.refused);
        // Jobs assigned before the drain go out before its notice.
        if !out.deliveries.is_empty() {
            self.batches
                .extend(batch::split(out.deliveries, self.max_message_bytes));
        }
        if let Some(drain) = out.drain {
            info!(reason = %drain.reason, "draining the worker");
            self.drain = Some(message(gateway_message::Kind::Drain(drain)));
        }
    }

    /// On the way out: sends the control messages, confirmations and drain
    /// notice still waiting while `tx` has room, so that the worker learns
    /// why before the status. Job batches are not sent: their jobs are
    /// about to be released.
    pub(super) fn flush_control(&mut self, tx: &mpsc::Sender<Result<GatewayMessage, Status>>) {
        let drain = self.drain.take();
        let mut confirmations = Vec::new();
        while !self.confirmations.is_empty() {
            confirmations.push(self.settled_message());
        }
        for msg in self.control.drain(..).chain(confirmations).chain(drain) {
            if tx.try_send(Ok(msg)).is_err() {
                break;
            }
        }
    }

    /// The round trip of the latest ping handed to the stream, when
    /// `pong_id` answers it (once).
    pub(super) fn round_trip(&mut self, pong_id: u64) -> Option<Duration> {
        let (id, sent) = self.ping_sent?;
        (pong_id == id).then(|| {
            self.ping_sent = None;
            sent.elapsed()
        })
    }

    /// A `Settled` message with the oldest waiting confirmations.
    fn settled_message(&mut self) -> GatewayMessage {
        let rest = self
            .confirmations
            .split_off(self.confirmations.len().min(MAX_SETTLED_PER_MESSAGE));
        let jids = std::mem::replace(&mut self.confirmations, rest);
        message(gateway_message::Kind::Settled(Settled { jids }))
    }

    /// The next message to send (see the module doc for the order); counts
    /// the jobs it delivers in `metrics`.
    pub(super) fn next_message(&mut self, metrics: &Metrics) -> GatewayMessage {
        if let Some(control) = self.control.pop_front() {
            if let Some(gateway_message::Kind::Heartbeat(beat)) = &control.kind
                && beat.ping_id != 0
            {
                self.ping_sent = Some((beat.ping_id, Instant::now()));
            }
            return control;
        }
        if !self.confirmations.is_empty() && (self.jobs_last || self.batches.is_empty()) {
            self.jobs_last = false;
            return self.settled_message();
        }
        if self.batches.is_empty()
            && let Some(drain) = self.drain.take()
        {
            return drain;
        }
        self.jobs_last = true;
        let batch = self.batches.pop_front().unwrap_or_default();
        metrics.jobs_delivered.add(batch.deliveries.len() as u64);
        let queues = batch
            .deliveries
            .iter()
            .filter_map(|d| d.job.as_ref().map(|job| job.queue.as_str()));
        metrics.queues.add_each(queues, QueueEvent::Delivered);
        let again = batch.deliveries.iter().filter(|d| d.attempt > 1).count();
        metrics.jobs_redelivered.add(again as u64);
        message(gateway_message::Kind::Jobs(batch))
    }
}
