//! One worker's `Work` stream: the hello, the welcome, then a loop that
//! relays the worker's results to the dispatcher, sends job batches as the
//! dispatcher assigns them, exchanges heartbeats and ends the session when the
//! worker goes quiet, closes the stream or the gateway stops. What waits to
//! be sent, and in which order, is `outbox.rs`; tests are in `tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1::{
    GatewayMessage, Heartbeat, Hello, Welcome, WorkerMessage, gateway_message, worker_message,
};
use futures::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use tonic::Status;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Shared;
use super::dispatcher::StreamEnd;
use super::hello;
use super::session_stats::SessionStats;
use crate::metrics::QueueEvent;
use outbox::Outbox;

mod outbox;

/// Messages buffered towards one worker before the session waits for it to
/// read: small, because every buffered batch is already counted in the window.
pub(crate) const OUTBOUND_BUFFER: usize = 8;

/// Shortest time between two collections of assigned jobs while jobs keep
/// coming. Real Faktory answers pipelined FETCHes one at a time, so fetched
/// jobs arrive one by one; sending each in its own message costs an HTTP/2
/// frame and a write per job. A session that sent nothing for this long
/// collects at once, so an idle gateway adds no delay.
pub(crate) const DELIVERY_LINGER: Duration = Duration::from_millis(2);

/// How long confirmations of results may wait for a collection of jobs to
/// ride along with before the session collects them by themselves. They only
/// let the worker forget results (and end a drain), so they need not cost a
/// wakeup and a message of their own per relay round.
pub(crate) const CONFIRM_LINGER: Duration = Duration::from_millis(20);

/// The sender half of a `Work` response stream.
pub(crate) type Outbound = mpsc::Sender<Result<GatewayMessage, Status>>;

/// Runs one `Work` stream to its end. Errors reach the worker as the stream's
/// status; the session's unfinished jobs are redelivered when it ends.
pub(crate) async fn run<S>(shared: Arc<Shared>, mut inbound: S, tx: Outbound)
where
    S: Stream<Item = Result<WorkerMessage, Status>> + Unpin + Send,
{
    let hello = match await_hello(shared.settings.hello_timeout, &mut inbound).await {
        Ok(hello) => hello,
        Err(Some(status)) => {
            debug!(error = %status.message(), "refused a work stream");
            let _ = tx.send(Err(status)).await;
            return;
        }
        Err(None) => return,
    };
    let seq = shared.next_session_seq();
    let spec = match hello::validate(hello, seq) {
        Ok(spec) => spec,
        Err(e) => {
            debug!(error = %e, "refused a hello");
            let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
            return;
        }
    };
    let Some(ticket) = shared.dispatcher.lock().register(spec.clone()) else {
        let _ = tx
            .send(Err(Status::unavailable("the gateway is shutting down")))
            .await;
        return;
    };
    let span = info_span!(
        "session",
        id = ticket.id,
        worker = %spec.worker_id,
        host = %spec.hostname,
    );
    let mut registration = Registration {
        shared: shared.clone(),
        id: ticket.id,
        end: StreamEnd::Broken,
    };
    let session = Session {
        shared,
        id: ticket.id,
        wake: ticket.wake,
        confirm_wake: ticket.confirm_wake,
        tx,
        out: Outbox::new(spec.max_message_bytes),
        next_ping: 1,
        stats: ticket.stats.clone(),
    };
    async move {
        info!(
            queues = ?spec.queues,
            jobtypes = spec.jobtypes.len(),
            window = ticket.window,
            "worker connected"
        );
        let (tx, end, status) = session.serve(inbound, ticket.window).await;
        // Free the session's jobs for other workers before telling this one
        // why it ends (which may wait on a worker that stopped reading).
        registration.end = end;
        drop(registration);
        if let Some(status) = status {
            // Bounded: a worker that stopped reading cannot hold the task.
            let _ = timeout(Duration::from_secs(1), tx.send(Err(status))).await;
        }
    }
    .instrument(span)
    .await;
}

/// Waits for the first message, which must be a hello. `Err(None)`: the
/// worker went away before saying anything (or its transport broke).
async fn await_hello<S>(limit: Duration, inbound: &mut S) -> Result<Hello, Option<Status>>
where
    S: Stream<Item = Result<WorkerMessage, Status>> + Unpin,
{
    match timeout(limit, inbound.next()).await {
        Err(_) => Err(Some(Status::deadline_exceeded(format!(
            "no hello within {} ms",
            limit.as_millis()
        )))),
        Ok(None) => Err(None),
        Ok(Some(Err(status))) => Err(unreadable(status)),
        Ok(Some(Ok(WorkerMessage {
            kind: Some(worker_message::Kind::Hello(hello)),
        }))) => Ok(hello),
        Ok(Some(Ok(_))) => Err(Some(Status::invalid_argument(
            "the first message must be a hello",
        ))),
    }
}

/// What an error from the inbound stream means for the stream's end: a
/// message the gateway could not decode (malformed, over the size limit, bad
/// compression) ends the stream with that error's code and a message naming
/// the problem; a broken transport (an error with a source, e.g. h2 or I/O)
/// leaves nobody to tell: `None`.
///
/// tonic reports decode errors as plain statuses without a source, and body
/// (transport) errors through `Status::from_error`, which keeps the error as
/// the source; a client's cancellation is already a clean end.
fn unreadable(status: Status) -> Option<Status> {
    if std::error::Error::source(&status).is_some() {
        debug!(code = ?status.code(), error = %status.message(), "work stream broke");
        return None;
    }
    Some(Status::new(
        status.code(),
        format!("undecodable message from the worker: {}", status.message()),
    ))
}

/// Unregisters the session however its task ends (a task that ends
/// without saying how counts as a broken stream).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    end: StreamEnd,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.dispatcher.lock().unregister(self.id, self.end);
    }
}

/// Why the session loop ended.
enum End {
    /// The worker closed its side.
    Closed,
    /// The transport broke.
    Broken,
    /// The session ends with this status.
    Status(Status),
}

struct Session {
    shared: Arc<Shared>,
    id: u64,
    wake: Arc<Notify>,
    confirm_wake: Arc<Notify>,
    tx: Outbound,
    out: Outbox,
    next_ping: u64,
    /// Counters for the workers listing.
    stats: Arc<SessionStats>,
}

impl Session {
    /// Runs the session loop; returns the outbound sender, how the stream
    /// ended and the status to end it with, if any.
    async fn serve<S>(
        mut self,
        mut inbound: S,
        window: u32,
    ) -> (Outbound, StreamEnd, Option<Status>)
    where
        S: Stream<Item = Result<WorkerMessage, Status>> + Unpin + Send,
    {
        let settings = &self.shared.settings;
        let heartbeat_timeout = settings.heartbeat_timeout;
        self.out
            .push_control(gateway_message::Kind::Welcome(Welcome {
                session_id: format!("{}-{}", settings.wid, self.id),
                heartbeat_interval_ms: millis_u32(settings.heartbeat_interval),
                heartbeat_timeout_ms: millis_u32(heartbeat_timeout),
                window,
                max_window: settings.max_window,
                max_message_bytes: settings.max_inbound_bytes,
            }));
        let mut ping = tokio::time::interval_at(
            Instant::now() + settings.heartbeat_interval,
            settings.heartbeat_interval,
        );
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stop = self.shared.sessions_stop.clone();
        let mut last_seen = Instant::now();
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let confirm_wake = self.confirm_wake.clone();
        // When jobs were last collected, and whether a wake came since.
        let mut collected = Instant::now() - DELIVERY_LINGER;
        let mut collect_due = false;
        // When confirmations waiting in the dispatcher are collected at the
        // latest (a collection of jobs takes them earlier).
        let mut confirm_at: Option<Instant> = None;
        let end = loop {
            let has_output = self.out.has_output();
            // Every arm is cancellation-safe: `StreamExt::next`,
            // `Sender::reserve`, `Notified`, `Interval::tick`, `Sleep` and
            // `cancelled` lose nothing when another arm wins.
            tokio::select! {
                msg = inbound.next() => match msg {
                    None => break End::Closed,
                    Some(Err(status)) => match unreadable(status) {
                        Some(status) => break End::Status(status),
                        None => break End::Broken,
                    },
                    Some(Ok(msg)) => {
                        last_seen = Instant::now();
                        if let Err(status) = self.handle(msg) {
                            break End::Status(status);
                        }
                    }
                },
                permit = tx.reserve(), if has_output => match permit {
                    Ok(permit) => permit.send(Ok(self.out.next_message(&self.shared.metrics))),
                    Err(_) => break End::Broken,
                },
                // While a collection is due anyway, further wakes need not poll the
                // session: one is kept by the `Notify` and taken after the collection.
                () = wake.notified(), if !collect_due => {
                    if collected.elapsed() >= DELIVERY_LINGER {
                        self.collect();
                        collected = Instant::now();
                        confirm_at = None;
                    } else {
                        collect_due = true;
                    }
                }
                () = sleep_until(collected + DELIVERY_LINGER), if collect_due => {
                    collect_due = false;
                    self.collect();
                    collected = Instant::now();
                    confirm_at = None;
                }
                () = confirm_wake.notified() => {
                    confirm_at.get_or_insert(Instant::now() + CONFIRM_LINGER);
                }
                () = sleep_until(confirm_at.unwrap_or_else(Instant::now)), if confirm_at.is_some() => {
                    confirm_at = None;
                    self.collect();
                    collected = Instant::now();
                }
                _ = ping.tick() => {
                    let ping_id = self.next_ping;
                    self.next_ping += 1;
                    self.out.push_control(gateway_message::Kind::Heartbeat(Heartbeat {
                        ping_id,
                        pong_id: 0,
                    }));
                }
                () = sleep_until(last_seen + heartbeat_timeout) => {
                    warn!(timeout_ms = heartbeat_timeout.as_millis(), "no message from the worker within the heartbeat timeout; ending the session");
                    break End::Status(Status::deadline_exceeded(format!(
                        "no message from the worker for {} ms",
                        heartbeat_timeout.as_millis()
                    )));
                }
                () = stop.cancelled() => {
                    self.collect();
                    self.out.flush_control(&tx);
                    break End::Status(Status::unavailable("the gateway is shutting down"));
                }
            }
        };
        match end {
            End::Closed => {
                info!("worker disconnected");
                (self.tx, StreamEnd::Closed, None)
            }
            End::Broken => {
                info!("work stream broke");
                (self.tx, StreamEnd::Broken, None)
            }
            End::Status(status) => {
                info!(code = ?status.code(), reason = %status.message(), "ending the session");
                (self.tx, StreamEnd::Broken, Some(status))
            }
        }
    }

    /// Applies one message from the worker; `Err` ends the session.
    fn handle(&mut self, msg: WorkerMessage) -> Result<(), Status> {
        use worker_message::Kind;
        let rejected = match msg.kind {
            None => return Ok(()),
            Some(Kind::Hello(_)) => {
                return Err(Status::invalid_argument(
                    "hello may only be the first message",
                ));
            }
            Some(Kind::Acks(acks)) => {
                self.stats.record_results(acks.jids.len() as u64, 0);
                let mut d = self.shared.dispatcher.lock();
                let queues = &self.shared.metrics.queues;
                queues.add_each(
                    d.queues_of(acks.jids.iter().map(String::as_str)),
                    QueueEvent::Acked,
                );
                d.ack(self.id, acks.jids);
                Vec::new()
            }
            Some(Kind::Fails(fails)) => {
                let failed = fails.failures.iter().filter(|f| !f.errtype.is_empty());
                self.stats.record_results(0, failed.clone().count() as u64);
                let mut d = self.shared.dispatcher.lock();
                let queues = &self.shared.metrics.queues;
                queues.add_each(
                    d.queues_of(failed.map(|f| f.jid.as_str())),
                    QueueEvent::Failed,
                );
                d.fail(self.id, fails.failures)
            }
            Some(Kind::Releases(releases)) => self
                .shared
                .dispatcher
                .lock()
                .take_back(self.id, releases.jids),
            Some(Kind::Window(update)) => {
                if update.window == 0 {
                    return Err(Status::invalid_argument(
                        "window.window: must be at least 1",
                    ));
                }
                let size = self
                    .shared
                    .dispatcher
                    .lock()
                    .set_window(self.id, update.window);
                debug!(window = size, "window changed");
                Vec::new()
            }
            Some(Kind::Heartbeat(beat)) => {
                if let Some(rtt) = self.out.round_trip(beat.pong_id) {
                    self.stats.record_rtt(rtt);
                    self.shared.metrics.heartbeat_rtt.observe(rtt);
                }
                if beat.ping_id != 0 {
                    self.out
                        .push_control(gateway_message::Kind::Heartbeat(Heartbeat {
                            ping_id: 0,
                            pong_id: beat.ping_id,
                        }));
                }
                Vec::new()
            }
        };
        self.out.reject(rejected);
        Ok(())
    }

    /// Takes newly assigned jobs, confirmations and refusals of results, and
    /// any drain notice from the dispatcher.
    fn collect(&mut self) {
        let out = self.shared.dispatcher.lock().take_outgoing(self.id);
        self.out.take(out);
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
