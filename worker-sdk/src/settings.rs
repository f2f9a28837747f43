//! Resolved worker settings: builder values, else environment variables, else
//! defaults.

use std::time::Duration;

use crate::Error;

/// Gateway address when neither `.gateway()` nor `GATEWAY_URL` is given.
pub(crate) const DEFAULT_GATEWAY: &str = "http://127.0.0.1:7421";
/// Handler slots when neither `.concurrency()` nor `WORKER_CONCURRENCY` is given.
pub(crate) const DEFAULT_CONCURRENCY: usize = 10;
/// Default cap on prefetched jobs: the gateway's default largest window. The
/// prefetch itself is sized by the measured rate × (RTT + flush delay), so
/// slow handlers keep a small buffer whatever the cap; a low cap only limits
/// fast jobs on slow links: throughput is at most window / RTT (1,000 capped
/// 50 slots at ~5k jobs/s at 200 ms; 10,000 at ~44k; 20,000 measured
/// 61-72k, the benchmark's 200 ms noop scenario).
pub(crate) const DEFAULT_MAX_PREFETCH: u32 = 20_000;
/// Default time running handlers get to finish on shutdown.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest message accepted from (and sent to) the gateway.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u32 = 8 << 20;

/// Everything a running worker needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) gateway: String,
    pub(crate) token: Option<String>,
    pub(crate) tls_ca_pem: Option<Vec<u8>>,
    pub(crate) tls_domain: Option<String>,
    pub(crate) worker_id: String,
    pub(crate) hostname: String,
    pub(crate) labels: Vec<String>,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) max_prefetch: u32,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_message_bytes: u32,
    pub(crate) flush_count: usize,
    pub(crate) flush_delay: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

/// Reads `WORKER_CONCURRENCY`, if set.
pub(crate) fn concurrency_from_env() -> Result<Option<usize>, Error> {
    match std::env::var("WORKER_CONCURRENCY") {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::InvalidSetting {
                name: "WORKER_CONCURRENCY",
                reason: format!("{value:?} is not a positive integer"),
            }),
        },
        Err(_) => Ok(None),
    }
}

/// Reads `GATEWAY_URL`, else the default.
pub(crate) fn gateway_from_env() -> String {
    std::env::var("GATEWAY_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned())
}

/// A worker id unique enough for logs: host, pid and a random suffix.
pub(crate) fn generate_worker_id(hostname: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{hostname}-{}-{suffix:08x}", std::process::id())
}
