//! [`WorkerBuilder`]: options, handler registration and validation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::gateways::Gateways;
use crate::handler::{self, Handlers};
use crate::settings::{self, Settings};
use crate::{Error, Job, JobError, StatsHandle, Worker};

/// Configures a [`Worker`]; start with [`Worker::builder`].
#[must_use]
pub struct WorkerBuilder {
    gateways: Option<Vec<String>>,
    token: Option<String>,
    tls_ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    worker_id: Option<String>,
    labels: Vec<String>,
    queues: Vec<String>,
    concurrency: Option<usize>,
    max_prefetch: u32,
    shutdown_timeout: Duration,
    flush_count: usize,
    flush_delay: Duration,
    heartbeat_interval: Duration,
    reconnect: (Duration, Duration),
    handlers: Handlers,
    shutdown: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("gateways", &self.gateways)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("jobtypes", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        WorkerBuilder {
            gateways: None,
            token: None,
            tls_ca_pem: None,
            tls_domain: None,
            worker_id: None,
            labels: Vec::new(),
            queues: Vec::new(),
            concurrency: None,
            max_prefetch: settings::DEFAULT_MAX_PREFETCH,
            shutdown_timeout: settings::DEFAULT_SHUTDOWN_TIMEOUT,
            flush_count: 100,
            flush_delay: Duration::from_millis(5),
            heartbeat_interval: Duration::from_secs(5),
            reconnect: (Duration::from_millis(50), Duration::from_secs(5)),
            handlers: Handlers::new(),
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

    /// A bearer token sent as `authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts this CA (PEM), instead of the bundled public (web PKI) roots,
    /// for the gateway's TLS certificate; enables TLS. Needed only for
    /// private or self-signed certificates: an `https://` gateway with a
    /// publicly trusted certificate works without it.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// The name to verify the gateway's certificate against, when it differs
    /// from the URL's host.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls_domain = Some(domain.into());
        self
    }

    /// This process's id in the gateway's logs and metrics. Default: host
    /// name, pid and a random suffix.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Free-form labels for the gateway's logs and metrics.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Queues to take jobs from, highest priority first. Default: `default`.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How many handlers run at once. Default: `WORKER_CONCURRENCY`, else 10.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// The most jobs held beyond `concurrency` to hide network latency; the
    /// worker prefetches less when the measured bandwidth-delay product is
    /// smaller. 0 turns prefetch off (window = concurrency). Default: 20,000
    /// (the gateway's default largest window; it caps the window too).
    pub fn max_prefetch(mut self, n: u32) -> Self {
        self.max_prefetch = n;
        self
    }

    /// How long running handlers may take to finish after shutdown begins;
    /// jobs still running then are reported failed with errtype
    /// `WorkerShutdownTimeout`. Default: 30 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
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

    /// Validates the options and builds the worker.
    ///
    /// Fails when no handler is registered, `concurrency` is 0,
    /// `WORKER_CONCURRENCY` is not a positive integer, no gateway URL is
    /// given (an empty [`gateways`](Self::gateways), or a `GATEWAY_URL` of
    /// only commas), or a gateway URL or the TLS options are invalid.
    pub fn build(self) -> Result<Worker, Error> {
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
            None => settings::concurrency_from_env()?.unwrap_or(settings::DEFAULT_CONCURRENCY),
        };
        let hostname = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let gateways = match self.gateways {
            Some(urls) => urls,
            None => settings::gateways_from_env()?,
        };
        let settings = Settings {
            gateways,
            token: self.token,
            tls_ca_pem: self.tls_ca_pem,
            tls_domain: self.tls_domain,
            worker_id: self
                .worker_id
                .unwrap_or_else(|| settings::generate_worker_id(&hostname)),
            hostname,
            labels: self.labels,
            queues: if self.queues.is_empty() {
                vec!["default".into()]
            } else {
                self.queues
            },
            concurrency,
            max_prefetch: self.max_prefetch,
            shutdown_timeout: self.shutdown_timeout,
            max_message_bytes: settings::DEFAULT_MAX_MESSAGE_BYTES,
            flush_count: self.flush_count,
            flush_delay: self.flush_delay,
            heartbeat_interval: self.heartbeat_interval,
            reconnect_min: self.reconnect.0,
            reconnect_max: self.reconnect.1,
        };
        let settings = Arc::new(settings);
        let gateways = Gateways::new(settings.clone())?;
        Ok(Worker::new(
            settings,
            gateways,
            self.handlers,
            self.shutdown,
            StatsHandle::default(),
        ))
    }
}
