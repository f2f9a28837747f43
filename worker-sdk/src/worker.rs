//! [`Worker`]: the reconnect loop around sessions, and why it stopped. Which
//! gateway each attempt goes to is decided in `gateways.rs`.

use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connect::{self, ConnectError};
use crate::gateways::Gateways;
use crate::hooks::Event;
use crate::session::{self, SessionEnd};
use crate::settings::Settings;
use crate::state::{Parts, WorkerState};
use crate::{Error, StatsHandle, WorkerBuilder};

/// A worker process's connection to a Faktory Gateway; build one with
/// [`Worker::builder`], then [`run`](Worker::run) it.
pub struct Worker {
    settings: Arc<Settings>,
    gateways: Gateways,
    parts: Arc<Parts>,
    shutdown: Option<BoxFuture<'static, ()>>,
    stats: StatsHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("gateways", &self.settings.gateways)
            .field("worker_id", &self.settings.worker_id)
            .field("concurrency", &self.settings.concurrency)
            .finish_non_exhaustive()
    }
}

/// Why [`Worker::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The shutdown signal fired and the worker finished cleanly: every
    /// started job finished and every result was confirmed by the gateway.
    Shutdown,
    /// The shutdown signal fired but the shutdown timeout ran out.
    ShutdownTimedOut {
        /// Jobs still running; reported failed with errtype
        /// `WorkerShutdownTimeout` if a stream was open.
        abandoned: usize,
        /// Results not confirmed by the gateway (the gateway redelivers
        /// those jobs, so they may run again).
        unconfirmed: usize,
    },
}

impl Worker {
    /// Starts configuring a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    pub(crate) fn new(
        settings: Arc<Settings>,
        gateways: Gateways,
        parts: Parts,
        shutdown: Option<BoxFuture<'static, ()>>,
        stats: StatsHandle,
    ) -> Worker {
        Worker {
            settings,
            gateways,
            parts: Arc::new(parts),
            shutdown,
            stats,
        }
    }

    /// The worker's counters; keep the handle to read them while it runs.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// The worker's producer client (the one handlers get from
    /// [`Job::client`](crate::Job::client)): it pushes over the worker's
    /// open stream connection, with the producer token.
    pub fn client(&self) -> crate::Client {
        self.parts.client.clone()
    }

    /// The resolved settings (tests).
    #[cfg(test)]
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This worker's id as sent to the gateway.
    pub fn worker_id(&self) -> &str {
        &self.settings.worker_id
    }

    /// Runs until the shutdown signal fires (forever without one),
    /// reconnecting with backoff whenever the stream breaks, to the next
    /// gateway when there are several (see [`WorkerBuilder::gateways`]).
    ///
    /// Calls the [`on_start`](WorkerBuilder::on_start) hooks first, the
    /// [`on_quiet`](WorkerBuilder::on_quiet) ones when shutdown begins, and
    /// the [`on_stop`](WorkerBuilder::on_stop) ones just before returning.
    ///
    /// Fails only when the gateway refuses the worker in a way retrying cannot
    /// fix (bad token, invalid hello).
    pub async fn run(self) -> Result<StopReason, Error> {
        let parts = self.parts.clone();
        parts.hooks.fire(Event::Start);
        let stopped = self.run_until_stopped().await;
        parts.hooks.fire(Event::Stop);
        stopped
    }

    async fn run_until_stopped(self) -> Result<StopReason, Error> {
        let shutdown = CancellationToken::new();
        let _signal = self.shutdown.map(|signal| {
            let shutdown = shutdown.clone();
            AbortOnDrop(tokio::spawn(async move {
                signal.await;
                shutdown.cancel();
            }))
        });
        let mut state = WorkerState::new(
            self.settings.clone(),
            self.parts.clone(),
            self.stats,
            shutdown,
        );
        let mut gateways = self.gateways;
        info!(
            worker_id = %self.settings.worker_id,
            gateways = ?gateways.urls(),
            concurrency = self.settings.concurrency,
            "worker starting"
        );
        loop {
            if let Some(reason) = stopped_while_disconnected(&mut state) {
                return Ok(reason);
            }
            let hello = hello(&mut state);
            // Both arms are cancellation-safe: an interrupted resolution or
            // connection attempt is simply made again.
            let (gateway, opened) = tokio::select! {
                opened = async {
                    let gateway = gateways.target().await;
                    let opened = connect::open(&gateway.endpoint, &self.settings, hello).await;
                    (gateway, opened)
                } => opened,
                () = absorb_until_deadline(&mut state) => continue,
            };
            let delay = match opened {
                Ok(stream) => {
                    gateways.opened();
                    info!(%gateway, "work stream open");
                    match session::run(&mut state, stream).await {
                        SessionEnd::Finished => return Ok(StopReason::Shutdown),
                        SessionEnd::TimedOut {
                            abandoned,
                            unconfirmed,
                        } => {
                            return Ok(StopReason::ShutdownTimedOut {
                                abandoned,
                                unconfirmed,
                            });
                        }
                        SessionEnd::Drained => {
                            info!(%gateway, "drained for the gateway; moving to the next");
                            gateways.drained()
                        }
                        SessionEnd::Lost(reason) => {
                            warn!(%gateway, %reason, "work stream lost; retrying this gateway once");
                            gateways.lost()
                        }
                    }
                }
                Err(ConnectError::Fatal(error)) => return Err(error),
                Err(ConnectError::Transient(reason)) => {
                    let delay = gateways.refused();
                    warn!(%gateway, %reason, retry_in = ?delay, "cannot open work stream; trying the next gateway");
                    delay
                }
            };
            pause(&mut state, delay).await;
        }
    }
}

/// The `Hello` for the next stream; while shutting down the window is the
/// minimum, since the stream is only opened to deliver results.
fn hello(state: &mut WorkerState) -> v1::Hello {
    let window = if state.note_shutdown() {
        1
    } else {
        state.flow.window()
    };
    let settings = &state.settings;
    let mut jobtypes: Vec<String> = state.parts.handlers.keys().cloned().collect();
    jobtypes.sort();
    v1::Hello {
        worker_id: settings.worker_id.clone(),
        hostname: settings.hostname.clone(),
        labels: settings.labels.clone(),
        queues: settings.queues.clone(),
        jobtypes,
        window,
        max_message_bytes: settings.max_message_bytes,
        holding: state.holding(),
    }
}

/// While no stream is open: stop when a shutdown has nothing left to report,
/// or when its time is up.
fn stopped_while_disconnected(state: &mut WorkerState) -> Option<StopReason> {
    if !state.note_shutdown() {
        return None;
    }
    if state.running.is_empty() && state.results.is_settled() {
        return Some(StopReason::Shutdown);
    }
    let deadline = state.shutdown_deadline?;
    if Instant::now() < deadline {
        return None;
    }
    let abandoned = state.time_out_running();
    Some(StopReason::ShutdownTimedOut {
        abandoned,
        unconfirmed: state.results.unconfirmed(),
    })
}

/// Waits `delay` before reconnecting, collecting finished handlers' results;
/// cut short when a shutdown has nothing left to wait for (nothing running,
/// every result confirmed). Results still unconfirmed keep the wait: they
/// need a gateway, and retrying one that is down without a pause would spin
/// until the shutdown timeout.
async fn pause(state: &mut WorkerState, delay: Duration) {
    let until = Instant::now() + delay;
    loop {
        let was_shutting_down = state.note_shutdown();
        if was_shutting_down && state.running.is_empty() && state.results.is_settled() {
            return;
        }
        // `recv` and `cancelled` are cancellation-safe; the sleep is re-armed.
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            Some(outcome) = state.outcomes_rx.recv() => state.absorb(outcome),
            () = state.shutdown.cancelled(), if !was_shutting_down => {}
        }
    }
}

/// Resolves when a shutdown's deadline passes (never otherwise), collecting
/// finished handlers' results meanwhile; bounds connection attempts during
/// shutdown.
async fn absorb_until_deadline(state: &mut WorkerState) {
    loop {
        let deadline = state
            .note_shutdown()
            .then_some(state.shutdown_deadline)
            .flatten();
        tokio::select! {
            Some(outcome) = state.outcomes_rx.recv() => state.absorb(outcome),
            () = state.shutdown.cancelled(), if deadline.is_none() => {}
            () = session::sleep_until(deadline) => return,
        }
    }
}

/// Aborts the wrapped task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Report;

    fn state(shutdown: &CancellationToken) -> WorkerState {
        let worker = Worker::builder()
            .gateway("http://127.0.0.1:1")
            .register("noop", |_job: crate::Job| async { Ok(()) })
            .build()
            .expect("valid worker");
        WorkerState::new(
            worker.settings.clone(),
            worker.parts.clone(),
            worker.stats.clone(),
            shutdown.clone(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_with_unconfirmed_results_still_pauses_between_attempts() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut state = state(&shutdown);
        state
            .results
            .push(Report::Ack("jid-unconfirmed".into()), Instant::now());
        let started = Instant::now();
        pause(&mut state, Duration::from_millis(300)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_with_nothing_left_does_not_pause() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut state = state(&shutdown);
        let started = Instant::now();
        pause(&mut state, Duration::from_millis(300)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
