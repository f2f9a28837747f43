//! [`Client`]: pushes [`NewJob`]s through a gateway's `Push` call, one call
//! per `push`/`push_many` (the gateway coalesces calls into Faktory
//! batches), with the worker's endpoint options, token and TLS
//! (`connect.rs`). A worker hands its own client to handlers
//! ([`Job::client`](crate::Job::client)); that one prefers the connection of
//! the worker's open `Work` stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use faktory_gateway_proto::v1::{self, gateway_client::GatewayClient};
use parking_lot::RwLock;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::connect::{self, Bearer, Tls};
use crate::settings::{Env, vars};
use crate::trace::TraceParent;
use crate::{Error, NewJob, PushReceipt};

/// The gateway's default `--max-jobs-per-push`.
const DEFAULT_MAX_JOBS_PER_PUSH: usize = 10_000;
/// Largest message sent or accepted: the gateway's default
/// `--max-message-bytes`.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The connection of a worker's open `Work` stream, when there is one.
pub(crate) type LiveChannel = Arc<RwLock<Option<Channel>>>;

/// Pushes jobs to Faktory through a gateway. Cheap to clone: clones share
/// their connections.
///
/// ```no_run
/// use faktory_gateway_worker::{Client, NewJob};
///
/// # async fn demo() -> Result<(), faktory_gateway_worker::Error> {
/// // GATEWAY_URL, GATEWAY_PRODUCER_TOKEN, GATEWAY_TLS_CA, GATEWAY_TLS_DOMAIN
/// // unless the builder says otherwise:
/// let client = Client::connect("http://127.0.0.1:7421").await?;
/// let receipt = client.push(NewJob::new("add", (1, 2))?).await?;
/// assert!(receipt.is_accepted(), "{:?}", receipt.outcome);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The trace context of the job whose handler holds this client: jobs
    /// it pushes continue that trace.
    parent: Option<TraceParent>,
}

struct Inner {
    gateways: Vec<Gateway>,
    /// Index of the gateway calls go to; moves on when one is unavailable.
    current: AtomicUsize,
    token: Option<Bearer>,
    max_jobs_per_push: usize,
    /// Preferred while set: the worker's open stream's connection.
    live: Option<LiveChannel>,
}

/// One gateway URL and its connection, made on first use.
struct Gateway {
    url: String,
    endpoint: Endpoint,
    channel: OnceLock<Channel>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.inner.gateways.iter().map(|g| g.url.as_str()).collect();
        f.debug_struct("Client")
            .field("gateways", &urls)
            .field("token", &self.inner.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]; start with [`Client::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct ClientBuilder {
    gateways: Option<Vec<String>>,
    token: Option<String>,
    tls_ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    max_jobs_per_push: Option<usize>,
}

impl ClientBuilder {
    /// The gateway's URL (`http://` or `https://`). Default: `GATEWAY_URL`
    /// (one URL or a comma-separated list), else `http://127.0.0.1:7421`.
    pub fn gateway(mut self, url: impl Into<String>) -> Self {
        self.gateways = Some(vec![url.into()]);
        self
    }

    /// Several gateways beside the same Faktory: calls go to the first until
    /// it is unavailable, then to the next.
    pub fn gateways<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.gateways = Some(urls.into_iter().map(Into::into).collect());
        self
    }

    /// The producer token, sent as `authorization: Bearer <token>`.
    /// Default: `GATEWAY_PRODUCER_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts this CA (PEM) for the gateway's certificate instead of the
    /// public roots; enables TLS. Default: the file `GATEWAY_TLS_CA` names.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// The name to verify the gateway's certificate against, when it
    /// differs from the URL's host. Default: `GATEWAY_TLS_DOMAIN`.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls_domain = Some(domain.into());
        self
    }

    /// The gateway's `--max-jobs-per-push` (default 10,000): larger
    /// [`push_many`](Client::push_many) calls are split.
    pub fn max_jobs_per_push(mut self, n: usize) -> Self {
        self.max_jobs_per_push = Some(n.max(1));
        self
    }

    /// Builds the client without connecting: the first call connects.
    ///
    /// Fails when no gateway URL is given, a URL or the TLS options are
    /// invalid, or an environment variable has an unusable value (the error
    /// names it).
    pub fn build(self) -> Result<Client, Error> {
        self.build_with(&Env::process())
    }

    /// Builds the client and connects to the first gateway that answers.
    ///
    /// Fails like [`build`](Self::build), and with [`Error::Push`]
    /// (UNAVAILABLE) when no gateway can be connected.
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build()?;
        client.connect_any().await?;
        Ok(client)
    }

    /// Builds the client, reading what the builder does not set from `env`.
    fn build_with(self, env: &Env<'_>) -> Result<Client, Error> {
        let urls = env.gateways(self.gateways)?;
        if urls.is_empty() {
            return Err(Error::InvalidSetting {
                name: "gateways",
                reason: "no gateway URL given".into(),
            });
        }
        let token = env.token(self.token, "token", vars::GATEWAY_PRODUCER_TOKEN)?;
        let tls = env.tls(self.tls_ca_pem, self.tls_domain)?;
        Client::new(
            &urls,
            &tls,
            token,
            self.max_jobs_per_push.unwrap_or(DEFAULT_MAX_JOBS_PER_PUSH),
            None,
        )
    }
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to the gateway at `url`; the token and TLS options come from
    /// the environment (`GATEWAY_PRODUCER_TOKEN`, `GATEWAY_TLS_CA`,
    /// `GATEWAY_TLS_DOMAIN`). Same as `Client::builder().gateway(url).connect()`.
    ///
    /// Fails like [`ClientBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Client, Error> {
        Client::builder().gateway(url).connect().await
    }

    fn new(
        urls: &[String],
        tls: &Tls,
        token: Option<Bearer>,
        max_jobs_per_push: usize,
        live: Option<LiveChannel>,
    ) -> Result<Client, Error> {
        let gateways = urls
            .iter()
            .map(|url| {
                check_scheme(url)?;
                Ok(Gateway {
                    url: url.clone(),
                    endpoint: connect::endpoint(tls, url, None)?,
                    channel: OnceLock::new(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                gateways,
                current: AtomicUsize::new(0),
                token,
                max_jobs_per_push,
                live,
            }),
            parent: None,
        })
    }

    /// The same client, continuing `parent`'s trace in the jobs it pushes.
    pub(crate) fn continuing(&self, parent: Option<TraceParent>) -> Client {
        Client {
            inner: self.inner.clone(),
            parent,
        }
    }

    /// Pushes one job; the answer says whether Faktory holds it.
    ///
    /// Fails when the call fails as a whole (see [`Error::Push`]).
    pub async fn push(&self, job: NewJob) -> Result<PushReceipt, Error> {
        let mut receipts = self.push_many([job]).await?;
        Ok(receipts.remove(0))
    }

    /// Pushes several jobs in one call (several when there are more than the
    /// gateway takes per call) and answers with one receipt per job, in
    /// order; a bad job never fails its neighbours. No jobs, no call.
    ///
    /// Fails when a call fails as a whole (see [`Error::Push`]); jobs of
    /// earlier calls of a split push are then in Faktory already.
    pub async fn push_many<I>(&self, jobs: I) -> Result<Vec<PushReceipt>, Error>
    where
        I: IntoIterator<Item = NewJob>,
    {
        let mut jobs: Vec<v1::Job> = jobs
            .into_iter()
            .map(|mut job| {
                if let Some(parent) = &self.parent {
                    job.inherit_trace(parent);
                }
                job.into_proto()
            })
            .collect();
        let mut receipts = Vec::with_capacity(jobs.len());
        while !jobs.is_empty() {
            let rest = jobs.split_off(jobs.len().min(self.inner.max_jobs_per_push));
            let answered = self.call(v1::PushRequest { jobs }).await?;
            receipts.extend(answered.results.into_iter().map(PushReceipt::from));
            jobs = rest;
        }
        Ok(receipts)
    }

    /// One `Push` call: on the worker's stream connection if it has one,
    /// else on the current gateway, moving to the next gateway while the
    /// answer is UNAVAILABLE (a gateway down or shutting down). A call may
    /// thus be made twice; the jobs keep their jids, which the contract
    /// allows (it never loses a job, may run it twice).
    async fn call(&self, request: v1::PushRequest) -> Result<v1::PushResponse, Error> {
        let live = self
            .inner
            .live
            .as_ref()
            .and_then(|live| live.read().clone());
        if let Some(channel) = live {
            return self.call_on(channel, request.clone()).await;
        }
        let count = self.inner.gateways.len();
        let first = self.inner.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..count {
            let index = (first + step) % count;
            match self
                .call_on(self.inner.gateways[index].channel(), request.clone())
                .await
            {
                Err(Error::Push { status }) if status.code() == Code::Unavailable => {
                    last = Some(status);
                }
                answered => {
                    self.inner.current.store(index, Ordering::Relaxed);
                    return answered;
                }
            }
        }
        Err(Error::Push {
            status: last.expect("at least one gateway was tried"),
        })
    }

    async fn call_on(
        &self,
        channel: Channel,
        request: v1::PushRequest,
    ) -> Result<v1::PushResponse, Error> {
        let mut client = GatewayClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(request);
        if let Some(token) = &self.inner.token {
            token.authorize(&mut request);
        }
        let response = client
            .push(request)
            .await
            .map_err(|status| Error::Push { status })?
            .into_inner();
        Ok(response)
    }

    /// Connects to the first gateway that answers and makes it current.
    async fn connect_any(&self) -> Result<(), Error> {
        let mut errors = Vec::new();
        for (index, gateway) in self.inner.gateways.iter().enumerate() {
            match gateway.endpoint.connect().await {
                Ok(channel) => {
                    let _ = gateway.channel.set(channel);
                    self.inner.current.store(index, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error) => errors.push(format!("{}: {error}", gateway.url)),
            }
        }
        Err(Error::Push {
            status: tonic::Status::unavailable(format!(
                "no gateway could be connected ({})",
                errors.join("; ")
            )),
        })
    }
}

impl Gateway {
    /// The connection, made lazily the first time.
    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone()
    }
}

/// Only `http://` and `https://` gateways exist.
fn check_scheme(url: &str) -> Result<(), Error> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(Error::InvalidSetting {
        name: "gateway",
        reason: format!("{url:?}: the scheme must be http:// or https://"),
    })
}

/// A worker's client: its gateways, TLS and producer token, preferring the
/// connection of its open stream.
pub(crate) fn for_worker(
    urls: &[String],
    tls: &Tls,
    token: Option<Bearer>,
    live: LiveChannel,
) -> Result<Client, Error> {
    Client::new(urls, tls, token, DEFAULT_MAX_JOBS_PER_PUSH, Some(live))
}
