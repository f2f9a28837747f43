//! The delivery path: Faktory jobs to remote workers over `Work` streams.
//!
//! [`DeliveryPath`] owns it: it starts the fetch, relay, presence and sweep tasks,
//! opens a session task per `Work` stream, and runs the drain on shutdown.
//!
//! # Layout
//! - `dispatcher/`: the shared state and its rules; `mod.rs` holds the state
//!   and the rules in one list, the other files one concern each: `sessions`
//!   (registry, windows, hello take-over, drain), `results` (worker acks,
//!   fails, jobs taken back), `fetching` (fetch demand from open windows,
//!   counted in the `FetchDemand` of `fetch_demand`), `assign` (jobs to
//!   sessions), `waiting` (grace periods), `settling` (Faktory's answers and
//!   the final release; the queue itself is the `SettleQueue` of
//!   `settle_queue`), `observe` (the workers listing, queues of
//!   results), `tests`.
//! - `session/`: one worker's `Work` stream (`mod.rs`), and what waits to be
//!   sent to it (`outbox.rs`).
//! - `fetcher`: the fetch engine (up to `FETCH_CONCURRENCY` connections).
//! - `relay`: ACK/FAIL/release batches on their own connections (up to
//!   `GATEWAY_ACK_CONNECTIONS`).
//! - `pool`: the elastic task pools fetcher and relay run in.
//! - `wait`: waiting on a `Notify` for a condition without losing a wake
//!   (a pool task waiting for work, the shutdown waiting for the dispatcher).
//! - `presence`: the gateway's HELLO/BEAT as one Faktory process.
//! - `hello`: validation of a worker's `Hello`.
//! - `window`: a worker's window.
//! - `lease`: one job reserved at Faktory for the gateway.
//! - `clock`: wall-clock deadlines for the contract's `*_unix_ms` fields.
//! - `faktory_link`: a delivery task's lazily reconnected Faktory connection.
//! - `settle`: what the gateway must still tell Faktory about a job.
//! - `batch`: cutting deliveries into messages by count and bytes.
//! - `session_stats`: one session's counters for the workers listing.
//!
//! # Shutdown, and what can still be left to reservation expiry
//! [`DeliveryPath::shutdown`] first stops fetching, under the dispatcher lock.
//! From then on no fetch task writes a FETCH (each checks, under that lock,
//! right before writing), and every job still arriving from a FETCH written
//! earlier is released back to Faktory at once (PUSH copy + ACK, no retry
//! used), while the relays still run. Workers get the drain grace; then
//! every job the gateway still holds is released the same way.
//!
//! A FETCH cannot be taken back once written: Faktory reserves the job it
//! pops for that FETCH even when the connection is gone by then, and only
//! the reservation expiry brings it back. So the shutdown waits until every
//! FETCH in flight has been answered. On empty queues Faktory blocks each
//! pipelined FETCH ~2 s in turn, so a pipeline written just as the queues
//! ran dry (a full one took the last jobs) holds the shutdown up to
//! `GATEWAY_FETCH_MAX_DEPTH` × 2 s (8 s at the default depth 4, under the
//! default 25 s grace); the wait overlaps the drain grace, so it only adds
//! time when the workers finish early or the depth is set beyond half the
//! grace in seconds. The wait is bounded by each pipeline's own deadline
//! (`GATEWAY_FAKTORY_TIMEOUT_MS` + 2 s per FETCH, see
//! [`crate::faktory::ConnectOptions::fetch_limit`]), after which the fetch
//! task drops the connection.
//!
//! Left to Faktory's reservation expiry (`ReservationExpired`, one retry
//! used), at shutdown or not, only when Faktory itself does not answer in
//! time:
//! - a job Faktory pops for a FETCH after that FETCH's deadline: the gateway
//!   has dropped the connection and cannot receive it (logged as "a FETCH got
//!   no answer within its deadline" at shutdown, as a fetch timeout before);
//! - releases Faktory did not take before the gateway stopped (the end of
//!   the grace, or at least `FINAL_SETTLE_TIMEOUT` (5 s) after the fetches
//!   ended; logged with the number of jobs);
//! - a fetched job whose JSON has no readable jid (nothing can name it to
//!   Faktory; logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faktory_gateway_proto::v1::{GatewayMessage, WorkerMessage};
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tracing::{info, warn};

use crate::config::Config;
use crate::faktory::{Endpoint, Identity};
use crate::metrics::Metrics;

pub(crate) mod batch;
pub(crate) mod clock;
pub(crate) mod dispatcher;
pub(crate) mod faktory_link;
pub(crate) mod fetcher;
pub(crate) mod hello;
pub(crate) mod lease;
pub(crate) mod pool;
pub(crate) mod presence;
pub(crate) mod relay;
pub(crate) mod session;
pub(crate) mod session_stats;
pub(crate) mod settle;
pub(crate) mod wait;
pub(crate) mod window;

use dispatcher::{Dispatcher, Rules};
use pool::{Pool, PoolSpec};

/// Deepest FETCH pipeline in the unit tests' settings.
#[cfg(test)]
const TEST_FETCH_DEPTH: usize = 4;

/// Longest wait for session tasks to end once told to.
const SESSION_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait for the fetch tasks to say END once their last FETCH has
/// been answered.
const FETCHER_END_TIMEOUT: Duration = Duration::from_secs(1);

/// How often waiting jobs are checked against their grace periods.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Longest wait for relays to settle the last releases after the drain grace
/// when Faktory is slow or unreachable.
const FINAL_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the delivery path needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Faktory process id the gateway registers and BEATs as.
    pub(crate) wid: String,
    /// How long a new stream may take to send its hello.
    pub(crate) hello_timeout: Duration,
    /// How often the gateway pings workers (and asks them to ping).
    pub(crate) heartbeat_interval: Duration,
    /// Silence after which a session is dead.
    pub(crate) heartbeat_timeout: Duration,
    /// Largest window.
    pub(crate) max_window: u32,
    /// Largest worker -> gateway message, announced in the welcome.
    pub(crate) max_inbound_bytes: u32,
    /// How long workers get to finish when the gateway drains.
    pub(crate) shutdown_grace: Duration,
    /// How often the gateway BEATs to Faktory.
    pub(crate) beat_interval: Duration,
    /// The dispatcher's rules.
    pub(crate) rules: Rules,
}

impl Settings {
    /// The delivery settings of `config`.
    pub(crate) fn from_config(config: &Config) -> Settings {
        Settings {
            wid: config.wid.clone(),
            hello_timeout: config.hello_timeout(),
            heartbeat_interval: config.heartbeat_interval(),
            heartbeat_timeout: config.heartbeat_timeout(),
            max_window: config.max_window.max(1),
            max_inbound_bytes: config.max_message_bytes,
            shutdown_grace: config.shutdown_grace(),
            beat_interval: config.beat_interval(),
            rules: Rules {
                redelivery_grace: config.redelivery_grace(),
                unknown_jobtype_grace: config.unknown_jobtype_grace(),
                lease_margin: config.lease_margin(),
                reconnect_grace: config.reconnect_grace(),
                max_window: config.max_window.max(1),
                max_fetch_depth: config.fetch_max_depth.max(1) as usize,
                max_fetches_in_flight: config.fetch_max_in_flight.max(1) as usize,
                max_settle_backlog: config.max_settle_backlog.max(1) as usize,
            },
        }
    }
}

/// State shared by every delivery task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The one lock of the delivery path; never held across `.await`.
    pub(crate) dispatcher: Mutex<Dispatcher>,
    /// Static settings.
    pub(crate) settings: Settings,
    /// The Faktory server.
    pub(crate) faktory: Endpoint,
    /// Counters and gauges.
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled to end every session (after the drain grace).
    pub(crate) sessions_stop: CancellationToken,
    session_seq: AtomicU64,
}

impl Shared {
    /// Fresh state.
    pub(crate) fn new(settings: Settings, faktory: Endpoint, metrics: Arc<Metrics>) -> Arc<Shared> {
        Arc::new(Shared {
            dispatcher: Mutex::new(Dispatcher::new(settings.rules.clone())),
            settings,
            faktory,
            metrics,
            sessions_stop: CancellationToken::new(),
            session_seq: AtomicU64::new(1),
        })
    }

    /// A number for naming a session whose worker gave no id.
    pub(crate) fn next_session_seq(&self) -> u64 {
        self.session_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// The running delivery path. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeliveryPath {
    shared: Arc<Shared>,
    fetchers: TaskTracker,
    background: TaskTracker,
    sessions: TaskTracker,
    fetch_stop: CancellationToken,
    background_stop: CancellationToken,
}

impl DeliveryPath {
    /// Starts the delivery path for `config`: the fetch connections (idle
    /// until a worker opens window), the relay connections, the presence
    /// connection and the sweeper. Connections are made lazily and retried
    /// with backoff, so this never fails; Faktory being down shows in logs.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> DeliveryPath {
        let shared = Shared::new(
            Settings::from_config(config),
            config.faktory_endpoint().pacing_reads(),
            metrics,
        );
        // Each FETCH queued behind the last job blocks `fetch_block` in turn.
        let worst_fetch_wait = shared.faktory.options.fetch_block.saturating_mul(
            u32::try_from(shared.settings.rules.max_fetch_depth).unwrap_or(u32::MAX),
        );
        if worst_fetch_wait > shared.settings.shutdown_grace {
            warn!(
                fetch_max_depth = shared.settings.rules.max_fetch_depth,
                worst_wait_ms = worst_fetch_wait.as_millis(),
                grace_ms = shared.settings.shutdown_grace.as_millis(),
                "a shutdown may wait longer than its grace for FETCHes on queues that just ran dry; lower --fetch-max-depth or raise --shutdown-grace-ms"
            );
        }
        let delivery = DeliveryPath {
            shared: shared.clone(),
            fetchers: TaskTracker::new(),
            background: TaskTracker::new(),
            sessions: TaskTracker::new(),
            fetch_stop: CancellationToken::new(),
            background_stop: CancellationToken::new(),
        };
        let fetch_pool = PoolSpec {
            role: "fetch",
            min: 1,
            max: config.fetch_concurrency as usize,
            size: |m| &m.fetch_connections,
        };
        let (tracker, stop) = (delivery.fetchers.clone(), delivery.fetch_stop.clone());
        start_pool(fetch_pool, tracker, stop, &shared, fetcher::run);
        let settle_pool = PoolSpec {
            role: "settle",
            min: 1,
            max: config.ack_connections as usize,
            size: |m| &m.settle_connections,
        };
        let (tracker, stop) = (
            delivery.background.clone(),
            delivery.background_stop.clone(),
        );
        start_pool(settle_pool, tracker, stop, &shared, relay::run);
        let identity = Identity::new(config.wid.clone()).with_labels(config.labels.clone());
        delivery.background.spawn(presence::run(
            shared.clone(),
            identity,
            delivery.background_stop.clone(),
        ));
        delivery
            .background
            .spawn(sweep(shared, delivery.background_stop.clone()));
        delivery
    }

    /// Every open `Work` session, oldest first (see [`crate::workers`]).
    pub fn workers(&self) -> Vec<crate::workers::WorkerSnapshot> {
        self.shared
            .dispatcher
            .lock()
            .workers(&self.shared.settings.wid)
    }

    /// Serves one `Work` stream: returns the response stream and runs the
    /// session in its own task.
    pub fn open_session<S>(&self, inbound: S) -> ReceiverStream<Result<GatewayMessage, Status>>
    where
        S: Stream<Item = Result<WorkerMessage, Status>> + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(session::OUTBOUND_BUFFER);
        self.sessions
            .spawn(session::run(self.shared.clone(), inbound, tx));
        ReceiverStream::new(rx)
    }

    /// Drains and stops the delivery path: stops fetching, sends every worker
    /// a drain notice with a deadline (the shutdown grace minus a slice of at
    /// most 2 s kept for releasing), waits until the workers hold no more
    /// jobs or the deadline passes, ends the sessions,
    /// releases every job still held back to Faktory (PUSH copy + ACK, no
    /// retry used), waits for the FETCHes still in flight (their jobs are
    /// released too) and for the relays to send it all, and closes every
    /// Faktory connection with END. The module docs say what can still be
    /// left to Faktory's reservation expiry.
    pub async fn shutdown(&self) {
        let grace = self.shared.settings.shutdown_grace;
        let started = Instant::now();
        // Workers get the grace minus a slice kept for releasing what is
        // left; the drain notice names that cut-off.
        let drain_for = grace - (grace / 5).min(Duration::from_secs(2));
        let drain_until = started + drain_for;
        info!(grace_ms = grace.as_millis(), "draining workers");
        {
            let mut d = self.shared.dispatcher.lock();
            d.stop_fetching();
            d.drain_sessions(dispatcher::drain_notice("shutdown", drain_for), true);
        }
        self.fetch_stop.cancel();
        self.wait_until(drain_until, |d| !d.sessions_busy()).await;
        self.shared.sessions_stop.cancel();
        self.sessions.close();
        let _ = tokio::time::timeout(SESSION_STOP_TIMEOUT, self.sessions.wait()).await;
        // From here on every job the gateway holds goes back to Faktory (and
        // so has every job fetched since fetching stopped).
        self.shared.dispatcher.lock().release_everything();
        // FETCHes written before fetching stopped are read to their end, so
        // that the jobs they bring are released too. Each pipeline ends by
        // its own deadline, which began before now.
        let fetch_limit = self
            .shared
            .faktory
            .options
            .fetch_limit(self.shared.settings.rules.max_fetch_depth);
        self.wait_until(Instant::now() + fetch_limit, |d| !d.fetches_in_flight())
            .await;
        if self.shared.dispatcher.lock().fetches_in_flight() {
            warn!(
                limit_ms = fetch_limit.as_millis(),
                "a FETCH got no answer within its deadline; a job faktory hands it later waits for its reservation to expire"
            );
        }
        self.fetchers.close();
        let _ = tokio::time::timeout(FETCHER_END_TIMEOUT, self.fetchers.wait()).await;
        let settle_until = (started + grace).max(Instant::now() + FINAL_SETTLE_TIMEOUT);
        self.wait_until(settle_until, |d| d.lease_count() == 0)
            .await;
        let left = self.shared.dispatcher.lock().lease_count();
        if left > 0 {
            warn!(
                jobs = left,
                "could not settle every job with faktory before stopping; they return when their reservations expire"
            );
        }
        self.background_stop.cancel();
        self.background.close();
        let _ = tokio::time::timeout(FINAL_SETTLE_TIMEOUT, self.background.wait()).await;
        info!(
            elapsed_ms = started.elapsed().as_millis(),
            "delivery stopped"
        );
    }

    /// Waits until `done` holds or `deadline` passes.
    async fn wait_until(&self, deadline: Instant, done: impl Fn(&Dispatcher) -> bool) {
        let changed = self.shared.dispatcher.lock().changed();
        let check = || done(&self.shared.dispatcher.lock()).then_some(());
        wait::wait(&changed, None, check, || deadline).await;
    }
}

/// Starts a pool whose tasks run `task` on the shared state.
fn start_pool<F, Fut>(
    spec: PoolSpec,
    tracker: TaskTracker,
    stop: CancellationToken,
    shared: &Arc<Shared>,
    task: F,
) where
    F: Fn(Arc<Shared>, pool::Member) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let metrics = shared.metrics.clone();
    let shared = shared.clone();
    Pool::start(spec, tracker, stop, metrics, move |member| {
        Box::pin(task(shared.clone(), member))
    });
}

/// Applies the waiting-time rules every [`SWEEP_INTERVAL`] and refreshes the
/// gauges.
async fn sweep(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        // Both arms are cancellation-safe.
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let (leases, sessions, open, backlog, undelivered) = {
            let mut d = shared.dispatcher.lock();
            d.sweep(Instant::now());
            (
                d.lease_count(),
                d.session_count(),
                d.open_window(),
                d.settle_backlog(),
                d.undelivered(),
            )
        };
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        shared.metrics.jobs_in_flight.set(gauge(leases));
        shared.metrics.settle_backlog.set(gauge(backlog));
        shared.metrics.jobs_undelivered.set(gauge(undelivered));
        shared.metrics.sessions.set(gauge(sessions));
        shared.metrics.window_open.set(gauge(open));
    }
}

#[cfg(test)]
pub(crate) mod tests_support;
