//! Resolved worker settings: builder values, else environment variables, else
//! defaults.

use std::time::Duration;

use crate::Error;

/// Gateway address when neither `.gateway()`/`.gateways()` nor `GATEWAY_URL`
/// is given.
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
    /// Gateway URLs as given (validated and resolved in `gateways.rs`).
    pub(crate) gateways: Vec<String>,
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

/// Reads `GATEWAY_URL` (one URL or a comma-separated list), else the
/// default.
///
/// Fails when the variable is set but names no URL (e.g. `","`).
pub(crate) fn gateways_from_env() -> Result<Vec<String>, Error> {
    match std::env::var("GATEWAY_URL") {
        Ok(value) if !value.trim().is_empty() => parse_gateway_list(&value),
        _ => Ok(vec![DEFAULT_GATEWAY.to_owned()]),
    }
}

/// Splits a comma-separated `GATEWAY_URL`; blanks around and between the
/// commas are ignored.
fn parse_gateway_list(value: &str) -> Result<Vec<String>, Error> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(Error::InvalidSetting {
            name: "GATEWAY_URL",
            reason: format!("{value:?} names no gateway URL"),
        });
    }
    Ok(urls)
}

/// A worker id unique enough for logs: host, pid and a random suffix.
pub(crate) fn generate_worker_id(hostname: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{hostname}-{}-{suffix:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_url_takes_a_comma_separated_list() {
        let urls = parse_gateway_list(" http://a:7421, https://b:7421 ,,http://c ").unwrap();
        assert_eq!(urls, ["http://a:7421", "https://b:7421", "http://c"]);
        assert_eq!(
            parse_gateway_list("http://only:7421").unwrap(),
            ["http://only:7421"]
        );
    }

    #[test]
    fn gateway_url_of_only_commas_is_an_error_naming_the_variable() {
        let error = parse_gateway_list(" , ,").unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidSetting {
                    name: "GATEWAY_URL",
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains("names no gateway URL"),
            "{error}"
        );
    }
}
