//! [`WorkerBuilder`]: options, handler, middleware and hook registration,
//! and validation; what the builder leaves unset comes from the environment
//! (`settings.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::client;
use crate::gateways::Gateways;
use crate::handler::{self, Handlers};
use crate::hooks::{Event, Hooks};
use crate::middleware::{self, Middleware, Next};
use crate::settings::{self, Env, Settings, vars};
use crate::state::Parts;
use crate::{Error, Job, JobError, StatsHandle, Worker};

/// Configures a [`Worker`]; start with [`Worker::builder`].
#[must_use]
pub struct WorkerBuilder {
    gateways: Option<Vec<String>>,
    token: Option<String>,
    producer_token: Option<String>,
    tls_ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    worker_id: Option<String>,
    labels: Option<Vec<String>>,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
    max_prefetch: Option<u32>,
    shutdown_timeout: Duration,
    deadline_margin: Duration,
    flush_count: usize,
    flush_delay: Duration,
    heartbeat_interval: Duration,
    reconnect: (Duration, Duration),
    handlers: Handlers,
    middleware: Vec<Middleware>,
    hooks: Hooks,
    shutdown: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("gateways", &self.gateways)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("jobtypes", &self.handlers.keys().collect::<Vec<_>>())
            .field("middleware", &self.middleware.len())
            .finish_non_exhaustive()
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        WorkerBuilder {
            gateways: None,
            token: None,
            producer_token: None,
            tls_ca_pem: None,
            tls_domain: None,
            worker_id: None,
            labels: None,
            queues: None,
            concurrency: None,
            max_prefetch: None,
            shutdown_timeout: settings::DEFAULT_SHUTDOWN_TIMEOUT,
            deadline_margin: settings::DEFAULT_DEADLINE_MARGIN,
            flush_count: 100,
            flush_delay: Duration::from_millis(5),
            heartbeat_interval: Duration::from_secs(5),
            reconnect: (Duration::from_millis(50), Duration::from_secs(5)),
            handlers: Handlers::new(),
            middleware: Vec::new(),
            hooks: Hooks::default(),
            shutdown: None,
        }
    }
}

impl WorkerBuilder {
    /// The gateway's URL, e.g. `http://gateway:7421` or `https://...`; a
    /// host name that resolves to several addresses counts as several
    /// gateways (see [`gateways`](Self::gateways)). Default: `GATEWAY_URL`
    /// (one URL or a comma-separated list), else `http://127.0.0.1:7421`.
    pub fn gateway(mut self, url: impl Into<String>) -> Self {
        self.gateways = Some(vec![url.into()]);
        self
    }

    /// Several gateways beside the same Faktory. The worker starts at one
    /// chosen by its worker id (so a fleet spreads over them), stays on it
    /// while it works (after a lost stream it retries it once), and moves to
    /// the next when it cannot connect or the gateway drains (shuts down).
    /// Replaces any earlier [`gateway`](Self::gateway).
    pub fn gateways<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.gateways = Some(urls.into_iter().map(Into::into).collect());
        self
    }

    /// The worker token, sent as `authorization: Bearer <token>` when
    /// opening the `Work` stream. Default: `GATEWAY_WORKER_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The producer token of the worker's client ([`Job::client`]), for
    /// follow-up jobs. Default: `GATEWAY_PRODUCER_TOKEN`.
    pub fn producer_token(mut self, token: impl Into<String>) -> Self {
        self.producer_token = Some(token.into());
        self
    }

    /// Trusts this CA (PEM), instead of the bundled public (web PKI) roots,
    /// for the gateway's TLS certificate; enables TLS. Needed only for
    /// private or self-signed certificates: an `https://` gateway with a
    /// publicly trusted certificate works without it. Default: the file
    /// `GATEWAY_TLS_CA` names.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// The name to verify the gateway's certificate against, when it differs
    /// from the URL's host. Default: `GATEWAY_TLS_DOMAIN`.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls_domain = Some(domain.into());
        self
    }

    /// This process's id in the gateway's logs and metrics. Default:
    /// `WORKER_ID`, else host name, pid and a random suffix.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Free-form labels for the gateway's logs and metrics. Default:
    /// `WORKER_LABELS` (comma-separated), else none.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }

    /// Queues to take jobs from, highest priority first. Default:
    /// `WORKER_QUEUES` (comma-separated), else `default`.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// How many handlers run at once. Default: `WORKER_CONCURRENCY`, else 10.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// The most jobs held beyond `concurrency` to hide network latency; the
    /// worker prefetches less when the measured bandwidth-delay product is
    /// smaller. 0 turns prefetch off (window = concurrency). Default:
    /// `WORKER_MAX_PREFETCH`, else 20,000 (the gateway's default largest
    /// window; it caps the window too).
    pub fn max_prefetch(mut self, n: u32) -> Self {
        self.max_prefetch = Some(n);
        self
    }

    /// How long running handlers may take to finish after shutdown begins
    /// (their [`Job::is_cancelled`] turns true when it begins); jobs still
    /// running then are reported failed with errtype
    /// `WorkerShutdownTimeout`. Default: 30 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long before a running job's reservation deadline its
    /// cancellation fires ([`Job::cancel_reason`] is then
    /// [`Deadline`](crate::CancelReason::Deadline)). Default: 5 s.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Results are sent when this many are waiting (default 100) ...
    pub fn result_batch_size(mut self, n: usize) -> Self {
        self.flush_count = n.max(1);
        self
    }

    /// ... or when the oldest has waited this long (default 5 ms).
    pub fn result_batch_delay(mut self, delay: Duration) -> Self {
        self.flush_delay = delay;
        self
    }

    /// The longest gap between heartbeats sent to the gateway (the gateway's
    /// `Welcome` can only shorten it). Default: 5 s.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Bounds of the reconnect backoff (jittered, doubling). Default: 50 ms to 5 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = (min, max);
        self
    }

    /// Runs `handler` for jobs of `jobtype`. An `Err` becomes a Faktory
    /// failure; a panic becomes a failure with errtype `panic`.
    pub fn register<F, Fut>(mut self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.handlers
            .insert(jobtype.into(), handler::from_async(handler));
        self
    }

    /// Runs the synchronous `handler` for jobs of `jobtype` on tokio's
    /// blocking thread pool (for CPU-heavy or blocking work).
    pub fn register_blocking<F>(mut self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.handlers
            .insert(jobtype.into(), handler::from_blocking(handler));
        self
    }

    /// Wraps every handler run in `middleware` (for tracing, metrics, error
    /// reporting): it gets the job and the rest of the chain, and calls
    /// [`Next::run`] to go on. The first registered is the outermost: it
    /// runs first before the handler and last after it. A panic in the
    /// handler reaches middleware as an error with errtype `panic`.
    ///
    /// ```
    /// use faktory_gateway_worker::{Job, Next, Worker};
    ///
    /// let builder = Worker::builder()
    ///     .middleware(|job: Job, next: Next| async move {
    ///         let started = std::time::Instant::now();
    ///         let result = next.run(job).await;
    ///         tracing::info!(elapsed = ?started.elapsed(), ok = result.is_ok(), "job ran");
    ///         result
    ///     })
    ///     .register("noop", |_job: Job| async { Ok(()) });
    /// # let _ = builder;
    /// ```
    pub fn middleware<F, Fut>(mut self, middleware: F) -> Self
    where
        F: Fn(Job, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.middleware.push(middleware::from_fn(middleware));
        self
    }

    /// Calls `hook` when [`Worker::run`] starts, before it connects.
    pub fn on_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.add(Event::Start, hook);
        self
    }

    /// Calls `hook` when shutdown begins (the shutdown signal fired): no new
    /// job starts, running jobs' cancellation has fired, they have the
    /// shutdown timeout to finish.
    pub fn on_quiet(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.add(Event::Quiet, hook);
        self
    }

    /// Calls `hook` just before [`Worker::run`] returns, whatever the reason.
    pub fn on_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.add(Event::Stop, hook);
        self
    }

    /// Shuts the worker down gracefully when `signal` resolves (e.g.
    /// `tokio::signal::ctrl_c()`).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future + Send + 'static,
    {
        self.shutdown = Some(signal.map(|_| ()).boxed());
        self
    }

    /// Builds the worker and runs it: `build()?.run().await`.
    ///
    /// Fails like [`build`](Self::build) and [`Worker::run`].
    pub async fn run(self) -> Result<crate::StopReason, Error> {
        self.build()?.run().await
    }

    /// Validates the options and builds the worker; what the builder does
    /// not set comes from the environment (the crate README lists the
    /// variables).
    ///
    /// Fails when no handler is registered, `concurrency` is 0, an
    /// environment variable has an unusable value (the error names it; e.g.
    /// `WORKER_CONCURRENCY` not a positive integer, `GATEWAY_TLS_CA` naming
    /// a file that cannot be read), no gateway URL is given (an empty
    /// [`gateways`](Self::gateways)), or a gateway URL, token or the TLS
    /// options are invalid.
    pub fn build(self) -> Result<Worker, Error> {
        self.build_with(&Env::process())
    }

    fn build_with(self, env: &Env<'_>) -> Result<Worker, Error> {
        if self.handlers.is_empty() {
            return Err(Error::NoHandlers);
        }
        let concurrency = match self.concurrency {
            Some(0) => {
                return Err(Error::InvalidSetting {
                    name: "concurrency",
                    reason: "must be at least 1".into(),
                });
            }
            Some(n) => n,
            None => env
                .positive(vars::WORKER_CONCURRENCY)?
                .unwrap_or(settings::DEFAULT_CONCURRENCY),
        };
        let max_prefetch = match self.max_prefetch {
            Some(n) => n,
            None => env
                .number(vars::WORKER_MAX_PREFETCH)?
                .unwrap_or(settings::DEFAULT_MAX_PREFETCH),
        };
        let hostname = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let gateways = env.gateways(self.gateways)?;
        let token = env.token(self.token, "token", vars::GATEWAY_WORKER_TOKEN)?;
        let producer_token = env.token(
            self.producer_token,
            "producer_token",
            vars::GATEWAY_PRODUCER_TOKEN,
        )?;
        let queues = match self.queues {
            Some(queues) => queues,
            None => env.list(vars::WORKER_QUEUES)?.unwrap_or_default(),
        };
        let labels = match self.labels {
            Some(labels) => labels,
            None => env.list(vars::WORKER_LABELS)?.unwrap_or_default(),
        };
        let worker_id = self
            .worker_id
            .or_else(|| env.get(vars::WORKER_ID))
            .unwrap_or_else(|| settings::generate_worker_id(&hostname));
        let settings = Settings {
            gateways,
            token,
            tls: env.tls(self.tls_ca_pem, self.tls_domain)?,
            worker_id,
            hostname,
            labels,
            queues: if queues.is_empty() {
                vec!["default".into()]
            } else {
                queues
            },
            concurrency,
            max_prefetch,
            shutdown_timeout: self.shutdown_timeout,
            deadline_margin: self.deadline_margin,
            max_message_bytes: settings::DEFAULT_MAX_MESSAGE_BYTES,
            flush_count: self.flush_count,
            flush_delay: self.flush_delay,
            heartbeat_interval: self.heartbeat_interval,
            reconnect_min: self.reconnect.0,
            reconnect_max: self.reconnect.1,
        };
        let settings = Arc::new(settings);
        let gateways = Gateways::new(settings.clone())?;
        let live = client::LiveChannel::default();
        let client = client::for_worker(
            &settings.gateways,
            &settings.tls,
            producer_token,
            live.clone(),
        )?;
        let parts = Parts {
            handlers: self.handlers,
            middleware: self.middleware.into(),
            hooks: self.hooks,
            client,
            live,
        };
        Ok(Worker::new(
            settings,
            gateways,
            parts,
            self.shutdown,
            StatsHandle::default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn noop() -> WorkerBuilder {
        Worker::builder().register("noop", |_job: Job| async { Ok(()) })
    }

    const ENV: [(&str, &str); 8] = [
        ("GATEWAY_URL", "http://env-a:7421,http://env-b:7421"),
        ("GATEWAY_WORKER_TOKEN", "env-token"),
        ("GATEWAY_TLS_DOMAIN", "env.domain"),
        ("WORKER_CONCURRENCY", "7"),
        ("WORKER_QUEUES", "critical, default"),
        ("WORKER_LABELS", "blue,eu"),
        ("WORKER_MAX_PREFETCH", "0"),
        ("WORKER_ID", "env-worker"),
    ];

    #[test]
    fn unset_options_come_from_the_environment() {
        let vars = HashMap::from(ENV);
        let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        let worker = noop().build_with(&Env::from_fn(&lookup)).unwrap();
        let s = worker.settings();
        assert_eq!(s.gateways, ["http://env-a:7421", "http://env-b:7421"]);
        assert!(s.token.is_some());
        assert_eq!(s.tls.domain.as_deref(), Some("env.domain"));
        assert_eq!((s.concurrency, s.max_prefetch), (7, 0));
        assert_eq!(s.queues, ["critical", "default"]);
        assert_eq!(s.labels, ["blue", "eu"]);
        assert_eq!(s.worker_id, "env-worker");
    }

    #[test]
    fn builder_values_win_over_the_environment() {
        let vars = HashMap::from(ENV);
        let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        let worker = noop()
            .gateway("http://mine:7421")
            .tls_domain("my.domain")
            .concurrency(3)
            .queues(["mine"])
            .labels(["me"])
            .max_prefetch(50)
            .worker_id("my-worker")
            .build_with(&Env::from_fn(&lookup))
            .unwrap();
        let s = worker.settings();
        assert_eq!(s.gateways, ["http://mine:7421"]);
        assert_eq!(s.tls.domain.as_deref(), Some("my.domain"));
        assert_eq!((s.concurrency, s.max_prefetch), (3, 50));
        assert_eq!(
            (s.queues.as_slice(), s.labels.as_slice()),
            (&["mine".to_owned()][..], &["me".to_owned()][..])
        );
        assert_eq!(s.worker_id, "my-worker");
    }

    #[test]
    fn a_bad_variable_is_named_in_the_error() {
        for (name, value) in [
            ("WORKER_CONCURRENCY", "many"),
            ("WORKER_MAX_PREFETCH", "-1"),
            ("WORKER_QUEUES", " , "),
            ("GATEWAY_PRODUCER_TOKEN", "new\nline"),
        ] {
            let lookup = |n: &str| (n == name).then(|| value.to_owned());
            let error = noop().build_with(&Env::from_fn(&lookup)).unwrap_err();
            assert!(
                matches!(error, Error::InvalidSetting { name: named, .. } if named == name),
                "{name}: {error}"
            );
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
