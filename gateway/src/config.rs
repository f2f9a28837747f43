//! [`Config`]: every gateway option, parsed by clap from flags with
//! environment-variable fallbacks. `faktory-gateway --help` lists each option
//! with its variable and default.
//!
//! Names: the project's first, short variables (`FAKTORY_URL`, `GATEWAY_LISTEN`,
//! `FETCH_CONCURRENCY`, `BATCH_MAX_SIZE`, `BATCH_MAX_DELAY_MS`,
//! `BATCH_AUTO_ENABLED`) keep their names; every other option reads
//! `GATEWAY_<FLAG_NAME>`. A bad value makes parsing fail with a message naming
//! the option and its variable. `Debug` never shows tokens or the Faktory
//! password.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::faktory::{ConnectOptions, Endpoint, FaktoryUrl};

/// Where an optional HTTP endpoint (metrics, the HTTP/JSON API) listens, or
/// `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// Not served.
    Off,
    /// Served on this address.
    Addr(SocketAddr),
}

/// How the binary writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

impl FromStr for ListenAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            Ok(ListenAddr::Off)
        } else {
            s.trim().parse().map(ListenAddr::Addr)
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Off => f.write_str("off"),
            ListenAddr::Addr(addr) => addr.fmt(f),
        }
    }
}

/// Parses `--faktory-url` without echoing the value in errors (clap's own
/// message would quote it, password included).
#[derive(Debug, Clone, Copy)]
struct FaktoryUrlParser;

impl clap::builder::TypedValueParser for FaktoryUrlParser {
    type Value = FaktoryUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FaktoryUrl, clap::Error> {
        let name = arg.map_or_else(|| "--faktory-url".to_owned(), ToString::to_string);
        let fail = |kind, message: String| clap::Error::raw(kind, message).with_cmd(cmd);
        let text = value.to_str().ok_or_else(|| {
            fail(
                clap::error::ErrorKind::InvalidUtf8,
                format!("invalid value for '{name}': not valid UTF-8\n"),
            )
        })?;
        FaktoryUrl::parse(text).map_err(|e| {
            fail(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{name}': {e}\n"),
            )
        })
    }
}

/// A secret string (bearer token). `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The gateway's configuration.
///
/// Build it with `Config::parse()` in the binary and
/// `Config::try_parse_from(["faktory-gateway", "--faktory-url", url, ..])` in
/// tests (never by setting environment variables).
#[derive(Clone, Parser)]
#[command(
    name = "faktory-gateway",
    version,
    long_about = None,
    // The last of a repeated option wins, so a wrapper's defaults (the bench's
    // `--metrics-listen=off`) can be overridden after them.
    args_override_self = true,
    about = "A gRPC gateway that runs beside Faktory and streams jobs in bulk to remote workers."
)]
pub struct Config {
    /// Faktory server: tcp://[:password@]host[:port] or tcp+tls://...
    #[arg(
        long,
        env = "FAKTORY_URL",
        value_name = "FAKTORY_URL",
        default_value = "tcp://localhost:7419",
        value_parser = FaktoryUrlParser
    )]
    pub faktory_url: FaktoryUrl,

    /// PEM file of extra CA certificates to trust for tcp+tls:// Faktory
    /// (the web PKI roots are always trusted).
    #[arg(
        long,
        env = "GATEWAY_FAKTORY_TLS_CA",
        value_name = "GATEWAY_FAKTORY_TLS_CA"
    )]
    pub faktory_tls_ca: Option<PathBuf>,

    /// How long one Faktory command may take before the gateway gives up on
    /// it (pushes answer UNAVAILABLE), in milliseconds.
    #[arg(long, env = "GATEWAY_FAKTORY_TIMEOUT_MS", value_name = "GATEWAY_FAKTORY_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub faktory_timeout_ms: u64,

    /// Address of the gRPC server.
    #[arg(
        long,
        env = "GATEWAY_LISTEN",
        value_name = "GATEWAY_LISTEN",
        default_value = "0.0.0.0:7421"
    )]
    pub listen: SocketAddr,

    /// Worker threads of the gateway's runtime. One carries several times
    /// what one Faktory serves; more threads add wakeups between them.
    #[arg(long, env = "GATEWAY_RUNTIME_THREADS", value_name = "GATEWAY_RUNTIME_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub runtime_threads: u32,

    /// Before a runtime thread sleeps waiting for I/O it waits this long, in
    /// microseconds, so that replies and messages arriving close together are
    /// handled in one wakeup rather than one each (0: sleep at once). Saves
    /// a third of the gateway's CPU against a real Faktory; an event arriving
    /// just after other work may wait up to this long (at most 20,000).
    #[arg(long, env = "GATEWAY_WAKE_COALESCE_US", value_name = "GATEWAY_WAKE_COALESCE_US", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub wake_coalesce_us: u64,

    /// Most Faktory connections fetching jobs for workers. The fetch pool
    /// starts with one and grows while workers have open window that the
    /// connections in use cannot fill (Faktory serves one connection's
    /// commands one after another, so throughput comes from connections);
    /// a connection idle for 10 s is closed.
    #[arg(long, env = "FETCH_CONCURRENCY", value_name = "FETCH_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub fetch_concurrency: u32,

    /// Deepest FETCH pipeline on one fetch connection (the depth adapts up
    /// to it while every FETCH returns a job). Faktory answers one
    /// connection's FETCHes one after another, so the same FETCHes in flight
    /// spread over more connections are answered sooner; deeper costs less
    /// CPU per job (fewer writes and wakeups). When the queues run dry
    /// Faktory blocks each queued FETCH ~2 s in turn, so a shutdown can wait
    /// up to depth × 2 s for them (overlapping the shutdown grace).
    #[arg(long, env = "GATEWAY_FETCH_MAX_DEPTH", value_name = "GATEWAY_FETCH_MAX_DEPTH", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub fetch_max_depth: u32,

    /// Most FETCHes sent to Faktory and not yet answered, over all fetch
    /// connections. Faktory reserves a job for each FETCH it answers, so
    /// what a killed gateway had in flight is left to Faktory's reservation
    /// expiry (30 minutes by default); Faktory's throughput needs only
    /// its rate × its answer time of them (a few dozen at 10,000 jobs/s).
    /// Claims wait for room for a whole pipeline (see `--fetch-max-depth`).
    #[arg(long, env = "GATEWAY_FETCH_MAX_IN_FLIGHT", value_name = "GATEWAY_FETCH_MAX_IN_FLIGHT", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub fetch_max_in_flight: u32,

    /// Most jobs in one coalesced PUSHB (also the size from which a Push call
    /// is sent on its own, without waiting).
    #[arg(long, env = "BATCH_MAX_SIZE", value_name = "BATCH_MAX_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_max_size: u32,

    /// Longest time a small Push call waits to share its PUSHB with others,
    /// in milliseconds. Only an upper bound: an idle gateway sends at once,
    /// full batches never wait, and under load calls merge while earlier
    /// PUSHBs are in flight.
    #[arg(long, env = "BATCH_MAX_DELAY_MS", value_name = "BATCH_MAX_DELAY_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub batch_max_delay_ms: u64,

    /// Coalesce concurrent Push calls into shared PUSHBs (true/false). When
    /// off, each call is its own PUSHB.
    #[arg(long, env = "BATCH_AUTO_ENABLED", value_name = "BATCH_AUTO_ENABLED", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub batch_auto_enabled: bool,

    /// Most bytes of job JSON in one PUSHB; bigger batches are split.
    #[arg(long, env = "GATEWAY_BATCH_MAX_BYTES", value_name = "GATEWAY_BATCH_MAX_BYTES", default_value_t = 4 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub batch_max_bytes: u32,

    /// Number of Faktory connections pushing jobs. A call of
    /// `--batch-max-size` jobs or more is spread over them (PUSHBs of at
    /// least 25 jobs), since Faktory answers one connection's commands one
    /// after another.
    #[arg(long, env = "GATEWAY_PRODUCER_CONNECTIONS", value_name = "GATEWAY_PRODUCER_CONNECTIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub producer_connections: u32,

    /// Most Faktory connections relaying ACKs, FAILs and releases. The
    /// settle pool starts with one and grows while results wait for a free
    /// connection; a connection idle for 10 s is closed.
    #[arg(long, env = "GATEWAY_ACK_CONNECTIONS", value_name = "GATEWAY_ACK_CONNECTIONS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ack_connections: u32,

    /// Most results (acks, fails, releases) waiting for Faktory's answer
    /// before fetching pauses. Jobs workers finished stay reserved at Faktory
    /// until their ACK is answered, and a gateway crash leaves them to
    /// Faktory's reservation expiry, so fetching never outruns settling by
    /// more than this.
    #[arg(long, env = "GATEWAY_MAX_SETTLE_BACKLOG", value_name = "GATEWAY_MAX_SETTLE_BACKLOG", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_settle_backlog: u32,

    /// Most jobs in one Push call; more is refused with INVALID_ARGUMENT.
    #[arg(long, env = "GATEWAY_MAX_JOBS_PER_PUSH", value_name = "GATEWAY_MAX_JOBS_PER_PUSH", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs_per_push: u32,

    /// Most bytes of one job's Faktory JSON; bigger jobs are INVALID.
    #[arg(long, env = "GATEWAY_MAX_JOB_BYTES", value_name = "GATEWAY_MAX_JOB_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(256..))]
    pub max_job_bytes: u32,

    /// Largest gRPC message the gateway accepts (decode limit), in bytes.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_BYTES", value_name = "GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_message_bytes: u32,

    /// Largest window (unfinished jobs) a worker may ask for.
    #[arg(long, env = "GATEWAY_MAX_WINDOW", value_name = "GATEWAY_MAX_WINDOW", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_window: u32,

    /// How often workers should send heartbeats, in milliseconds.
    #[arg(long, env = "GATEWAY_HEARTBEAT_INTERVAL_MS", value_name = "GATEWAY_HEARTBEAT_INTERVAL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval_ms: u64,

    /// A Work stream silent this long is dead and its jobs are redelivered,
    /// in milliseconds.
    #[arg(long, env = "GATEWAY_HEARTBEAT_TIMEOUT_MS", value_name = "GATEWAY_HEARTBEAT_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_timeout_ms: u64,

    /// How long a new Work stream may take to send its hello, in milliseconds.
    #[arg(long, env = "GATEWAY_HELLO_TIMEOUT_MS", value_name = "GATEWAY_HELLO_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub hello_timeout_ms: u64,

    /// How long jobs of a vanished worker wait for another matching worker
    /// before being released back to Faktory, in milliseconds.
    #[arg(
        long,
        env = "GATEWAY_REDELIVERY_GRACE_MS",
        value_name = "GATEWAY_REDELIVERY_GRACE_MS",
        default_value_t = 10_000
    )]
    pub redelivery_grace_ms: u64,

    /// How long the jobs of a worker whose Work stream broke stay assigned to
    /// it, for it to reconnect and claim them (listing them in its hello),
    /// before they are redelivered, in milliseconds. 0 redelivers at once.
    #[arg(
        long,
        env = "GATEWAY_RECONNECT_GRACE_MS",
        value_name = "GATEWAY_RECONNECT_GRACE_MS",
        default_value_t = 5_000
    )]
    pub reconnect_grace_ms: u64,

    /// How long a job whose jobtype no connected worker handles is held before
    /// being released or failed (NoWorkerForJobtype), in milliseconds.
    #[arg(
        long,
        env = "GATEWAY_UNKNOWN_JOBTYPE_GRACE_MS",
        value_name = "GATEWAY_UNKNOWN_JOBTYPE_GRACE_MS",
        default_value_t = 30_000
    )]
    pub unknown_jobtype_grace_ms: u64,

    /// Least reservation time a job must have left to be delivered, in
    /// milliseconds.
    #[arg(
        long,
        env = "GATEWAY_LEASE_MARGIN_MS",
        value_name = "GATEWAY_LEASE_MARGIN_MS",
        default_value_t = 10_000
    )]
    pub lease_margin_ms: u64,

    /// On shutdown, how long workers get to finish before their jobs are
    /// released back to Faktory, in milliseconds.
    #[arg(
        long,
        env = "GATEWAY_SHUTDOWN_GRACE_MS",
        value_name = "GATEWAY_SHUTDOWN_GRACE_MS",
        default_value_t = 25_000
    )]
    pub shutdown_grace_ms: u64,

    /// How often the gateway BEATs to Faktory as one worker process, in
    /// milliseconds. Faktory's quiet/terminate (from its UI) reaches the
    /// gateway with the next BEAT; Faktory drops a process silent for 60 s,
    /// hence the upper bound.
    #[arg(long, env = "GATEWAY_BEAT_INTERVAL_MS", value_name = "GATEWAY_BEAT_INTERVAL_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..=50_000))]
    pub beat_interval_ms: u64,

    /// Address of the Prometheus metrics endpoint (GET /metrics), or "off".
    #[arg(
        long,
        env = "GATEWAY_METRICS_LISTEN",
        value_name = "GATEWAY_METRICS_LISTEN",
        default_value = "0.0.0.0:9421"
    )]
    pub metrics_listen: ListenAddr,

    /// Address of the HTTP/JSON API (POST /v1/jobs, GET /v1/workers; GET
    /// /metrics too), or "off". Set it to the --metrics-listen address to
    /// serve everything on one port; elsewhere the metrics port keeps
    /// serving only /metrics. Tokens as for gRPC (--producer-token for
    /// pushes, --admin-token for the listing).
    #[arg(
        long,
        env = "GATEWAY_HTTP_LISTEN",
        value_name = "GATEWAY_HTTP_LISTEN",
        default_value = "off"
    )]
    pub http_listen: ListenAddr,

    /// Bearer token producers must send to call Push. Unset: Push is open.
    #[arg(
        long,
        env = "GATEWAY_PRODUCER_TOKEN",
        value_name = "GATEWAY_PRODUCER_TOKEN",
        hide_env_values = true
    )]
    pub producer_token: Option<Secret>,

    /// Bearer token workers must send to open Work. Unset: Work is open.
    #[arg(
        long,
        env = "GATEWAY_WORKER_TOKEN",
        value_name = "GATEWAY_WORKER_TOKEN",
        hide_env_values = true
    )]
    pub worker_token: Option<Secret>,

    /// Bearer token operators must send to list workers (Admin.ListWorkers,
    /// GET /v1/workers). Unset: the producer or the worker token opens the
    /// listing, and it is open only when neither is set either.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_TOKEN",
        value_name = "GATEWAY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<Secret>,

    /// PEM certificate chain for TLS on the gRPC port (needs --tls-key).
    #[arg(
        long,
        env = "GATEWAY_TLS_CERT",
        value_name = "GATEWAY_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS on the gRPC port (needs --tls-cert).
    #[arg(
        long,
        env = "GATEWAY_TLS_KEY",
        value_name = "GATEWAY_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// The gateway's Faktory worker id (wid). Default: random, chosen at start.
    #[arg(long, env = "GATEWAY_WID", value_name = "GATEWAY_WID", default_value_t = random_wid(), hide_default_value = true)]
    pub wid: String,

    /// Labels the gateway shows in Faktory's UI, comma-separated.
    #[arg(
        long,
        env = "GATEWAY_LABELS",
        value_name = "GATEWAY_LABELS",
        value_delimiter = ',',
        default_value = "faktory-gateway"
    )]
    pub labels: Vec<String>,

    /// Log format of the binary: text (human-readable lines) or json (one
    /// object per line). The level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "GATEWAY_LOG_FORMAT",
        value_name = "GATEWAY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// A random Faktory wid: 16 lowercase hex characters.
fn random_wid() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// [`Config::batch_max_delay_ms`] as a duration.
    pub fn batch_max_delay(&self) -> Duration {
        ms(self.batch_max_delay_ms)
    }

    /// [`Config::faktory_timeout_ms`] as a duration.
    pub fn faktory_timeout(&self) -> Duration {
        ms(self.faktory_timeout_ms)
    }

    /// The Faktory server and how to connect to it (URL, TLS trust, the
    /// connect and I/O timeouts), as producers and the delivery path use it.
    pub fn faktory_endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.faktory_url.clone(),
            options: ConnectOptions {
                tls_ca: self.faktory_tls_ca.clone(),
                connect_timeout: self.faktory_timeout(),
                io_timeout: self.faktory_timeout(),
                ..ConnectOptions::default()
            },
        }
    }

    /// [`Config::heartbeat_interval_ms`] as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        ms(self.heartbeat_interval_ms)
    }

    /// [`Config::heartbeat_timeout_ms`] as a duration.
    pub fn heartbeat_timeout(&self) -> Duration {
        ms(self.heartbeat_timeout_ms)
    }

    /// [`Config::hello_timeout_ms`] as a duration.
    pub fn hello_timeout(&self) -> Duration {
        ms(self.hello_timeout_ms)
    }

    /// [`Config::redelivery_grace_ms`] as a duration.
    pub fn redelivery_grace(&self) -> Duration {
        ms(self.redelivery_grace_ms)
    }

    /// [`Config::reconnect_grace_ms`] as a duration.
    pub fn reconnect_grace(&self) -> Duration {
        ms(self.reconnect_grace_ms)
    }

    /// [`Config::unknown_jobtype_grace_ms`] as a duration.
    pub fn unknown_jobtype_grace(&self) -> Duration {
        ms(self.unknown_jobtype_grace_ms)
    }

    /// [`Config::lease_margin_ms`] as a duration.
    pub fn lease_margin(&self) -> Duration {
        ms(self.lease_margin_ms)
    }

    /// [`Config::beat_interval_ms`] as a duration.
    pub fn beat_interval(&self) -> Duration {
        ms(self.beat_interval_ms)
    }

    /// [`Config::wake_coalesce_us`] as a duration.
    pub fn wake_coalesce(&self) -> Duration {
        Duration::from_micros(self.wake_coalesce_us)
    }

    /// [`Config::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        ms(self.shutdown_grace_ms)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written out so that a new field cannot leak a secret by accident:
        // tokens are `Secret`s and the URL's Debug redacts the password.
        f.debug_struct("Config")
            .field("faktory_url", &self.faktory_url)
            .field("faktory_tls_ca", &self.faktory_tls_ca)
            .field("faktory_timeout_ms", &self.faktory_timeout_ms)
            .field("listen", &self.listen)
            .field("runtime_threads", &self.runtime_threads)
            .field("wake_coalesce_us", &self.wake_coalesce_us)
            .field("fetch_concurrency", &self.fetch_concurrency)
            .field("fetch_max_depth", &self.fetch_max_depth)
            .field("fetch_max_in_flight", &self.fetch_max_in_flight)
            .field("batch_max_size", &self.batch_max_size)
            .field("batch_max_delay_ms", &self.batch_max_delay_ms)
            .field("batch_auto_enabled", &self.batch_auto_enabled)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("producer_connections", &self.producer_connections)
            .field("ack_connections", &self.ack_connections)
            .field("max_settle_backlog", &self.max_settle_backlog)
            .field("max_jobs_per_push", &self.max_jobs_per_push)
            .field("max_job_bytes", &self.max_job_bytes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_window", &self.max_window)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("heartbeat_timeout_ms", &self.heartbeat_timeout_ms)
            .field("hello_timeout_ms", &self.hello_timeout_ms)
            .field("redelivery_grace_ms", &self.redelivery_grace_ms)
            .field("reconnect_grace_ms", &self.reconnect_grace_ms)
            .field("unknown_jobtype_grace_ms", &self.unknown_jobtype_grace_ms)
            .field("lease_margin_ms", &self.lease_margin_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("beat_interval_ms", &self.beat_interval_ms)
            .field("metrics_listen", &self.metrics_listen)
            .field("http_listen", &self.http_listen)
            .field("producer_token", &self.producer_token)
            .field("worker_token", &self.worker_token)
            .field("admin_token", &self.admin_token)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("wid", &self.wid)
            .field("labels", &self.labels)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Parses flags only: the environment of the test run (a `FAKTORY_URL`
    /// pointing at a real server, say) must not change the outcome.
    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::FromArgMatches;
        let cmd = Config::command().mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(std::iter::once("faktory-gateway").chain(args.iter().copied()))?;
        Config::from_arg_matches(&matches)
    }

    #[test]
    fn a_repeated_option_takes_its_last_value() {
        let c = parse(&["--metrics-listen=off", "--metrics-listen=127.0.0.1:9464"]).unwrap();
        assert_eq!(
            c.metrics_listen,
            ListenAddr::Addr("127.0.0.1:9464".parse().unwrap())
        );
        let c = parse(&["--fetch-max-in-flight=8", "--fetch-max-in-flight=128"]).unwrap();
        assert_eq!(c.fetch_max_in_flight, 128);
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.faktory_url.host(), "localhost");
        assert_eq!(c.faktory_url.port(), 7419);
        assert_eq!(c.listen, "0.0.0.0:7421".parse().unwrap());
        assert_eq!(c.fetch_concurrency, 32);
        assert_eq!(c.fetch_max_depth, 4);
        assert_eq!(c.fetch_max_in_flight, 64);
        assert_eq!(c.batch_max_size, 100);
        assert_eq!(c.batch_max_delay(), Duration::from_millis(5));
        assert!(c.batch_auto_enabled);
        assert_eq!(c.producer_connections, 4);
        assert_eq!(c.ack_connections, 32);
        assert_eq!(c.max_settle_backlog, 500);
        assert_eq!(c.max_jobs_per_push, 10_000);
        assert_eq!(c.max_job_bytes, 1 << 20);
        assert_eq!(c.max_message_bytes, 16 << 20);
        assert_eq!(c.max_window, 20_000);
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(5));
        assert_eq!(c.heartbeat_timeout(), Duration::from_secs(20));
        assert_eq!(c.hello_timeout(), Duration::from_secs(10));
        assert_eq!(c.redelivery_grace(), Duration::from_secs(10));
        assert_eq!(c.unknown_jobtype_grace(), Duration::from_secs(30));
        assert_eq!(c.lease_margin(), Duration::from_secs(10));
        assert_eq!(c.shutdown_grace(), Duration::from_secs(25));
        assert_eq!(c.beat_interval(), Duration::from_secs(15));
        assert_eq!(c.metrics_listen, "0.0.0.0:9421".parse().unwrap());
        assert_eq!(c.http_listen, ListenAddr::Off);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.admin_token.is_none());
        assert!(c.producer_token.is_none() && c.worker_token.is_none());
        assert!(c.tls_cert.is_none() && c.tls_key.is_none());
        assert_eq!(c.wid.len(), 16);
        assert_eq!(c.labels, vec!["faktory-gateway"]);
    }

    #[test]
    fn flags_override_defaults() {
        let c = parse(&[
            "--faktory-url",
            "tcp+tls://:pw@faktory:7000",
            "--batch-auto-enabled",
            "false",
            "--metrics-listen",
            "off",
            "--labels",
            "a,b",
            "--wid",
            "w1",
            "--producer-token",
            "p",
            "--http-listen",
            "127.0.0.1:8080",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.http_listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.faktory_url.is_tls());
        assert_eq!(c.faktory_url.password(), Some("pw"));
        assert!(!c.batch_auto_enabled);
        assert_eq!(c.metrics_listen, ListenAddr::Off);
        assert_eq!(c.labels, vec!["a", "b"]);
        assert_eq!(c.wid, "w1");
        assert_eq!(c.producer_token.as_ref().map(Secret::expose), Some("p"));
    }

    #[test]
    fn bad_values_name_the_option() {
        for (flag, value) in [
            ("--fetch-concurrency", "0"),
            ("--fetch-concurrency", "many"),
            ("--batch-max-size", "-1"),
            ("--batch-auto-enabled", "maybe"),
            ("--listen", "nowhere"),
            ("--faktory-url", "http://x"),
            ("--metrics-listen", "on"),
            ("--beat-interval-ms", "60000"),
            ("--http-listen", "on"),
            ("--log-format", "yaml"),
        ] {
            let arg = format!("{flag}={value}");
            let text = parse(&[&arg]).unwrap_err().to_string();
            assert!(text.contains(flag), "{arg}: {text}");
        }
        assert!(parse(&["--tls-cert", "c.pem"]).is_err(), "cert needs key");
        // The message names the environment variable as well as the flag.
        let text = parse(&["--producer-connections=x"])
            .unwrap_err()
            .to_string();
        assert!(text.contains("GATEWAY_PRODUCER_CONNECTIONS"), "{text}");
    }

    #[test]
    fn every_option_names_its_variable() {
        let cmd = Config::command();
        for arg in cmd.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            assert!(
                arg.get_env().is_some(),
                "{} has no env fallback",
                arg.get_id()
            );
        }
        cmd.debug_assert();
    }

    #[test]
    fn bad_faktory_url_error_hides_the_password() {
        let text = parse(&["--faktory-url=tcp://:hunter2@host:notaport"])
            .unwrap_err()
            .to_string();
        assert!(text.contains("--faktory-url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = parse(&[
            "--faktory-url",
            "tcp://:hunter2@faktory:7419",
            "--producer-token",
            "ptoken-secret",
            "--worker-token",
            "wtoken-secret",
            "--admin-token",
            "atoken-secret",
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("atoken-secret"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("ptoken-secret"), "{text}");
        assert!(!text.contains("wtoken-secret"), "{text}");
        assert!(text.contains("batch_max_size"));
    }
}
