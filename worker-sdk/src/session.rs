//! One `Work` stream from `Welcome` to its end: receiving job batches,
//! starting handlers as slots free up, sending batched results, heartbeats,
//! window updates, and draining.
//!
//! Everything happens on one task in one `select!` loop; the handlers run on
//! their own tasks and report back through the worker state's outcome channel.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use faktory_gateway_proto::v1::{self, gateway_message, worker_message::Kind};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info};

use crate::Job;
use crate::connect::Stream;
use crate::state::WorkerState;
use crate::stats::{Counter, Gauge};

/// How often completion rates are sampled and the window reconsidered.
const FLOW_TICK: Duration = Duration::from_millis(100);
/// How long a closing stream waits for the gateway to end it, and how long a
/// timed-out shutdown waits for its last results to be confirmed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Message size the gateway accepts when its `Welcome` does not say.
const DEFAULT_GATEWAY_MAX_BYTES: usize = 4 << 20;

/// How a stream ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// Broken, closed by the gateway or gone quiet: reconnect.
    Lost(String),
    /// The gateway asked for a drain and the worker completed it: reconnect,
    /// to the next gateway if there are several (`gateways.rs`).
    Drained,
    /// Shutdown completed: every job finished and every result is confirmed.
    Finished,
    /// Shutdown ran out of time: `abandoned` jobs were failed as still
    /// running, `unconfirmed` results may not have reached the gateway.
    TimedOut {
        abandoned: usize,
        unconfirmed: usize,
    },
}

/// Who asked for the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainKind {
    /// The gateway (shutdown, Faktory quiet): finish, close, reconnect later.
    Gateway,
    /// The caller's shutdown signal: finish, close, stop.
    Local,
}

struct Session {
    outbound: Option<mpsc::Sender<v1::WorkerMessage>>,
    inbound: tonic::Streaming<v1::GatewayMessage>,
    drain: Option<DrainKind>,
    /// Set once the worker closed its side while draining.
    closing_since: Option<Instant>,
    /// Jobs failed by the shutdown timeout.
    abandoned: usize,
    /// Outstanding pings by id, with the time they were sent.
    pings: BTreeMap<u64, Instant>,
    next_ping: u64,
    last_inbound: Instant,
    heartbeat_interval: Duration,
    quiet_bound: Duration,
    max_message_bytes: usize,
}

type Step = Result<(), SessionEnd>;

/// Runs one stream until it ends.
pub(crate) async fn run(state: &mut WorkerState, stream: Stream) -> SessionEnd {
    let welcome = stream.welcome;
    let now = Instant::now();
    state.stats.add(Counter::Sessions, 1);
    state.flow.set_max_window(welcome.max_window);
    state.flow.advertised(welcome.window);
    state.stats.set(Gauge::Window, u64::from(welcome.window));

    let mut heartbeat_interval = state.settings.heartbeat_interval;
    if welcome.heartbeat_interval_ms > 0 {
        heartbeat_interval =
            heartbeat_interval.min(Duration::from_millis(welcome.heartbeat_interval_ms.into()));
    }
    let quiet_bound = match welcome.heartbeat_timeout_ms {
        0 => heartbeat_interval * 3,
        ms => Duration::from_millis(ms.into()).max(heartbeat_interval * 2),
    };
    let max_message_bytes = match welcome.max_message_bytes {
        0 => DEFAULT_GATEWAY_MAX_BYTES,
        n => n as usize,
    };
    state.stream_seq += 1;
    let again = state.results.requeue_unconfirmed(now);
    if !again.is_empty() {
        info!(count = again.len(), "re-sending unconfirmed results");
        state.stats.add(Counter::ResultsResent, again.len() as u64);
    }
    // Everything still unconfirmed is from an earlier stream now.
    let earlier: Vec<_> = state.results.pending().cloned().collect();
    for report in earlier {
        state.carry(report);
    }
    info!(
        session = %welcome.session_id,
        window = welcome.window,
        max_window = welcome.max_window,
        "work stream open"
    );
    state.drop_expired_buffered();
    // Handlers' producer clients push over this stream's connection while
    // it is open.
    *state.parts.live.write() = Some(stream.channel);
    let mut session = Session {
        outbound: Some(stream.outbound),
        inbound: stream.inbound,
        drain: None,
        closing_since: None,
        abandoned: 0,
        pings: BTreeMap::new(),
        next_ping: 1,
        last_inbound: now,
        heartbeat_interval,
        quiet_bound,
        max_message_bytes,
    };
    let end = match session.run(state).await {
        Ok(never) => match never {},
        Err(end) => end,
    };
    *state.parts.live.write() = None;
    // Jobs of this stream that finish from now on belong to an earlier one.
    state.stream_seq += 1;
    end
}

impl Session {
    async fn run(&mut self, state: &mut WorkerState) -> Result<Infallible, SessionEnd> {
        // First ping at once: the RTT measurement feeds the window.
        self.ping().await?;
        if state.note_shutdown() {
            self.start_drain(state, DrainKind::Local).await?;
        }
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + self.heartbeat_interval,
            self.heartbeat_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut flow_tick = tokio::time::interval(FLOW_TICK);
        flow_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.dispatch(state);
            self.flush_if_starved(state).await?;
            self.progress_drain(state).await?;
            let flush_at = state.results.flush_deadline();
            let timeout_at = match (self.drain, state.shutdown_deadline) {
                (Some(DrainKind::Local), Some(deadline)) if !state.running.is_empty() => {
                    Some(deadline)
                }
                _ => None,
            };
            let give_up_at = self.give_up_at(state);
            let local_draining = self.drain == Some(DrainKind::Local);
            // Every branch is cancellation-safe: `next` and `recv` lose no
            // message when another branch wins, and the timers are re-armed
            // from state on every turn.
            tokio::select! {
                message = self.inbound.next() => self.on_inbound(state, message).await?,
                Some(outcome) = state.outcomes_rx.recv() => {
                    state.absorb(outcome);
                    // Take every other finished job too: one loop turn per burst.
                    while let Ok(outcome) = state.outcomes_rx.try_recv() {
                        state.absorb(outcome);
                    }
                }
                _ = sleep_until(flush_at), if flush_at.is_some() => self.flush(state).await?,
                _ = heartbeat.tick() => self.on_heartbeat_tick().await?,
                _ = flow_tick.tick() => self.on_flow_tick(state).await?,
                _ = state.shutdown.cancelled(), if !local_draining => {
                    state.note_shutdown();
                    self.start_drain(state, DrainKind::Local).await?;
                }
                _ = sleep_until(timeout_at), if timeout_at.is_some() => {
                    self.abandoned += state.time_out_running();
                    self.flush(state).await?;
                }
                _ = sleep_until(give_up_at), if give_up_at.is_some() => return Err(self.end_of_drain(state)),
            }
        }
    }

    /// Starts pending jobs while handler slots are free.
    fn dispatch(&mut self, state: &mut WorkerState) {
        while self.drain.is_none() && state.has_free_slot() {
            let Some((job, _)) = state.buffered.pop_front() else {
                break;
            };
            // Jobtypes without a handler were released on arrival.
            state.start(job);
        }
        state
            .stats
            .set(Gauge::Prefetched, state.buffered.len() as u64);
    }

    async fn on_inbound(
        &mut self,
        state: &mut WorkerState,
        message: Option<Result<v1::GatewayMessage, tonic::Status>>,
    ) -> Step {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(status)) if self.closing_since.is_none() => {
                return Err(SessionEnd::Lost(format!(
                    "{:?}: {}",
                    status.code(),
                    status.message()
                )));
            }
            None if self.closing_since.is_none() => {
                return Err(SessionEnd::Lost("closed by the gateway".into()));
            }
            // We closed our side and the gateway finished: the drain is done.
            _ => return Err(self.end_of_drain(state)),
        };
        self.last_inbound = Instant::now();
        match message.kind {
            Some(gateway_message::Kind::Jobs(batch)) => self.on_jobs(state, batch.deliveries).await,
            Some(gateway_message::Kind::Heartbeat(beat)) => self.on_heartbeat(state, beat).await,
            Some(gateway_message::Kind::Drain(drain)) => {
                info!(reason = %drain.reason, deadline_unix_ms = drain.deadline_unix_ms, "gateway asked to drain");
                self.start_drain(state, DrainKind::Gateway).await
            }
            Some(gateway_message::Kind::Rejected(rejected)) => {
                state
                    .stats
                    .add(Counter::ResultsRejected, rejected.results.len() as u64);
                for result in &rejected.results {
                    debug!(jid = %result.jid, reason = %result.reason, "gateway rejected a result");
                    state.results.done(&result.jid);
                }
                Ok(())
            }
            Some(gateway_message::Kind::Settled(settled)) => {
                state
                    .stats
                    .add(Counter::ResultsSettled, settled.jids.len() as u64);
                for jid in &settled.jids {
                    state.results.done(jid);
                }
                Ok(())
            }
            Some(gateway_message::Kind::Welcome(_)) | None => Ok(()),
        }
    }

    async fn on_jobs(&mut self, state: &mut WorkerState, deliveries: Vec<v1::Delivery>) -> Step {
        state.stats.add(Counter::Delivered, deliveries.len() as u64);
        let mut release = Vec::new();
        let now = Instant::now();
        for delivery in deliveries {
            let Some(job) = Job::from_delivery(delivery, &state.parts.client) else {
                continue;
            };
            if state.running.contains_key(job.jid()) {
                // Redelivered while it still runs here (after a reconnect):
                // its result, sent when it finishes, settles the new delivery.
                debug!(jid = %job.jid(), "delivery of a job already running here");
            } else if let Some(report) = state.carried.remove(job.jid()) {
                // Finished here, delivered on an earlier stream: repeat the
                // result instead of running the job twice.
                state.results.push(report, now);
            } else if self.drain.is_some() || !state.handles(job.jobtype()) {
                release.push(job.jid().to_owned());
            } else {
                state.buffered.push_back((job, now));
            }
        }
        self.release(state, release).await
    }

    async fn on_heartbeat(&mut self, state: &mut WorkerState, beat: v1::Heartbeat) -> Step {
        if beat.ping_id != 0 {
            self.send(heartbeat(0, beat.ping_id)).await?;
        }
        if beat.pong_id == 0 {
            return Ok(());
        }
        if let Some(sent) = self.pings.get(&beat.pong_id) {
            state.flow.on_rtt(sent.elapsed());
            if let Some(rtt) = state.flow.rtt() {
                state.stats.set_rtt(rtt);
            }
        }
        self.pings = self.pings.split_off(&(beat.pong_id + 1));
        Ok(())
    }

    async fn on_heartbeat_tick(&mut self) -> Step {
        if self.last_inbound.elapsed() > self.quiet_bound {
            return Err(SessionEnd::Lost(format!(
                "nothing heard from the gateway for {:?}",
                self.last_inbound.elapsed()
            )));
        }
        self.ping().await
    }

    async fn on_flow_tick(&mut self, state: &mut WorkerState) -> Step {
        state.flow.sample(Instant::now());
        if self.drain.is_some() {
            return Ok(());
        }
        if let Some(window) = state.flow.take_update() {
            debug!(window, rtt = ?state.flow.rtt(), "window update");
            state.stats.set(Gauge::Window, u64::from(window));
            self.send(window_message(window)).await?;
        }
        let oldest_wait = state.buffered.front().map(|(_, since)| since.elapsed());
        let excess = state
            .flow
            .excess(state.buffered.len(), oldest_wait.unwrap_or_default());
        if excess > 0 {
            debug!(
                excess,
                buffered = state.buffered.len(),
                "handlers are slow; giving back buffered jobs"
            );
            let keep = state.buffered.len() - excess;
            let give_back = state
                .buffered
                .drain(keep..)
                .map(|(job, _)| job.jid().to_owned())
                .collect();
            state
                .stats
                .set(Gauge::Prefetched, state.buffered.len() as u64);
            self.release(state, give_back).await?;
        }
        Ok(())
    }

    async fn ping(&mut self) -> Step {
        if self.outbound.is_none() {
            return Ok(());
        }
        let id = self.next_ping;
        self.next_ping += 1;
        self.pings.insert(id, Instant::now());
        self.send(heartbeat(id, 0)).await
    }

    /// Flushes at once when a handler slot is free and no buffered job is left
    /// to fill it: the gateway sends more only as results return credit, so
    /// holding them for the batch delay would just idle the slot. Under load
    /// the buffer is not empty and results keep batching.
    async fn flush_if_starved(&mut self, state: &mut WorkerState) -> Step {
        let starved = state.buffered.is_empty() && state.has_free_slot();
        if starved && state.results.flush_deadline().is_some() {
            self.flush(state).await?;
        }
        Ok(())
    }

    /// Sends every queued result (the gateway confirms each once Faktory
    /// has it).
    async fn flush(&mut self, state: &mut WorkerState) -> Step {
        if self.outbound.is_none() {
            return Ok(());
        }
        for message in state.results.take_messages(self.max_message_bytes / 2) {
            self.send(message).await?;
        }
        Ok(())
    }

    /// Gives jobs back; after our side is closed the gateway takes back what
    /// is unfinished by itself.
    async fn release(&mut self, state: &mut WorkerState, jids: Vec<String>) -> Step {
        if jids.is_empty() || self.outbound.is_none() {
            return Ok(());
        }
        state.stats.add(Counter::Released, jids.len() as u64);
        let message = v1::WorkerMessage {
            kind: Some(Kind::Releases(v1::Releases { jids })),
        };
        self.send(message).await
    }

    /// Stops taking work: the window drops to its minimum and every job not
    /// started goes back to the gateway.
    async fn start_drain(&mut self, state: &mut WorkerState, kind: DrainKind) -> Step {
        if self.drain == Some(DrainKind::Local) {
            return Ok(());
        }
        let first = self.drain.is_none();
        self.drain = Some(kind);
        if !first {
            return Ok(());
        }
        info!(
            ?kind,
            running = state.running.len(),
            unstarted = state.buffered.len(),
            "draining"
        );
        self.send(window_message(1)).await?;
        let unstarted = state
            .buffered
            .drain(..)
            .map(|(job, _)| job.jid().to_owned())
            .collect();
        state.stats.set(Gauge::Prefetched, 0);
        self.release(state, unstarted).await
    }

    /// While draining: once nothing runs, send the last results; once they
    /// are confirmed, close our side of the stream.
    async fn progress_drain(&mut self, state: &mut WorkerState) -> Step {
        if self.drain.is_none() || self.closing_since.is_some() || !state.running.is_empty() {
            return Ok(());
        }
        if state.results.flush_deadline().is_some() {
            self.flush(state).await?;
        }
        if state.results.is_settled() {
            debug!("drain complete, closing the stream");
            self.outbound = None;
            self.closing_since = Some(Instant::now());
        }
        Ok(())
    }

    /// When to stop waiting: the gateway did not end a stream we closed, or a
    /// timed-out shutdown could not get its last results confirmed.
    fn give_up_at(&self, state: &WorkerState) -> Option<Instant> {
        if let Some(since) = self.closing_since {
            return Some(since + CLOSE_GRACE);
        }
        match (self.drain, state.shutdown_deadline) {
            (Some(DrainKind::Local), Some(deadline)) => Some(deadline + CLOSE_GRACE),
            _ => None,
        }
    }

    fn end_of_drain(&self, state: &WorkerState) -> SessionEnd {
        match self.drain {
            Some(DrainKind::Gateway) if self.closing_since.is_some() => SessionEnd::Drained,
            Some(DrainKind::Local) if self.abandoned == 0 && state.results.is_settled() => {
                SessionEnd::Finished
            }
            Some(DrainKind::Local) => SessionEnd::TimedOut {
                abandoned: self.abandoned,
                unconfirmed: state.results.unconfirmed(),
            },
            _ => SessionEnd::Lost("stream ended while draining".into()),
        }
    }

    /// Queues a message for the gateway. Waiting longer than the quiet bound
    /// for room means the gateway stopped reading: the stream is given up, as
    /// a silent one would be.
    async fn send(&mut self, message: v1::WorkerMessage) -> Step {
        let Some(outbound) = &self.outbound else {
            return Ok(());
        };
        match tokio::time::timeout(self.quiet_bound, outbound.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SessionEnd::Lost("request stream closed".into())),
            Err(_) => Err(SessionEnd::Lost("the gateway stopped reading".into())),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn heartbeat(ping_id: u64, pong_id: u64) -> v1::WorkerMessage {
    v1::WorkerMessage {
        kind: Some(Kind::Heartbeat(v1::Heartbeat { ping_id, pong_id })),
    }
}

fn window_message(window: u32) -> v1::WorkerMessage {
    v1::WorkerMessage {
        kind: Some(Kind::Window(v1::WindowUpdate { window })),
    }
}
