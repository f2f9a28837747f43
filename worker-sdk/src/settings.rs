//! Resolved worker settings: builder values, else environment variables, else
//! defaults.

use std::time::Duration;

use crate::Error;
use crate::connect::{Bearer, Tls};

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

/// How long before a job's reservation deadline its cancellation fires, by
/// default: enough to send the result (batch delay, one round trip) before
/// Faktory gives up on the job.
pub(crate) const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The client environment variables, one set for every client of the
/// project (the worker-sdk README has the table). Blank counts as unset.
pub(crate) mod vars {
    /// Gateway URL, or a comma-separated list.
    pub(crate) const GATEWAY_URL: &str = "GATEWAY_URL";
    /// Bearer token for `Work`.
    pub(crate) const GATEWAY_WORKER_TOKEN: &str = "GATEWAY_WORKER_TOKEN";
    /// Bearer token for `Push`.
    pub(crate) const GATEWAY_PRODUCER_TOKEN: &str = "GATEWAY_PRODUCER_TOKEN";
    /// Path of a CA certificate (PEM) to trust for the gateway.
    pub(crate) const GATEWAY_TLS_CA: &str = "GATEWAY_TLS_CA";
    /// Name to verify the gateway's certificate against.
    pub(crate) const GATEWAY_TLS_DOMAIN: &str = "GATEWAY_TLS_DOMAIN";
    /// Handler slots.
    pub(crate) const WORKER_CONCURRENCY: &str = "WORKER_CONCURRENCY";
    /// Queues, comma-separated, highest priority first.
    pub(crate) const WORKER_QUEUES: &str = "WORKER_QUEUES";
    /// Labels, comma-separated.
    pub(crate) const WORKER_LABELS: &str = "WORKER_LABELS";
    /// Cap on prefetched jobs.
    pub(crate) const WORKER_MAX_PREFETCH: &str = "WORKER_MAX_PREFETCH";
    /// The worker process's id.
    pub(crate) const WORKER_ID: &str = "WORKER_ID";
}

/// Everything a running worker needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Gateway URLs as given (validated and resolved in `gateways.rs`).
    pub(crate) gateways: Vec<String>,
    pub(crate) token: Option<Bearer>,
    pub(crate) tls: Tls,
    pub(crate) worker_id: String,
    pub(crate) hostname: String,
    pub(crate) labels: Vec<String>,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) max_prefetch: u32,
    pub(crate) shutdown_timeout: Duration,
    /// How long before its reservation deadline a job's cancellation fires.
    pub(crate) deadline_margin: Duration,
    pub(crate) max_message_bytes: u32,
    pub(crate) flush_count: usize,
    pub(crate) flush_delay: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

/// Where settings not given to a builder are looked up: the process
/// environment, or a fixed map in tests.
pub(crate) struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'static> {
    /// The process environment.
    pub(crate) fn process() -> Env<'static> {
        Env(&|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    /// Looks names up with `lookup` (tests).
    #[cfg(test)]
    pub(crate) fn from_fn(lookup: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env(lookup)
    }

    /// The variable's value, trimmed; `None` when unset or blank.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A positive integer.
    ///
    /// Fails, naming the variable, when it is set to anything else.
    pub(crate) fn positive<T>(&self, name: &'static str) -> Result<Option<T>, Error>
    where
        T: std::str::FromStr + PartialOrd + Default,
    {
        self.parsed(name, "a positive integer", |n: &T| *n > T::default())
    }

    /// A non-negative integer.
    ///
    /// Fails, naming the variable, when it is set to anything else.
    pub(crate) fn number<T>(&self, name: &'static str) -> Result<Option<T>, Error>
    where
        T: std::str::FromStr + PartialOrd + Default,
    {
        self.parsed(name, "a non-negative integer", |n: &T| *n >= T::default())
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, Error> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.parse::<T>() {
            Ok(n) if valid(&n) => Ok(Some(n)),
            _ => Err(invalid(name, format!("{value:?} is not {expected}"))),
        }
    }

    /// A comma-separated list; blanks around and between the commas are
    /// ignored.
    ///
    /// Fails, naming the variable, when it is set but lists nothing (e.g.
    /// `","`).
    pub(crate) fn list(&self, name: &'static str) -> Result<Option<Vec<String>>, Error> {
        self.get(name)
            .map(|value| parse_list(name, &value))
            .transpose()
    }

    /// The `given` gateway URLs, else `GATEWAY_URL` (one URL or a
    /// comma-separated list), else the default.
    ///
    /// Fails when the variable is set but names no URL (e.g. `","`).
    pub(crate) fn gateways(&self, given: Option<Vec<String>>) -> Result<Vec<String>, Error> {
        if let Some(urls) = given {
            return Ok(urls);
        }
        Ok(self
            .list(vars::GATEWAY_URL)?
            .unwrap_or_else(|| vec![DEFAULT_GATEWAY.to_owned()]))
    }

    /// The `given` bearer token (set with the builder method `method`), else
    /// the one in `var`.
    ///
    /// Fails, naming the method or variable, when the token cannot be sent
    /// in an HTTP header.
    pub(crate) fn token(
        &self,
        given: Option<String>,
        method: &'static str,
        var: &'static str,
    ) -> Result<Option<Bearer>, Error> {
        match given {
            Some(token) => Bearer::new(&token, method).map(Some),
            None => self.get(var).map(|t| Bearer::new(&t, var)).transpose(),
        }
    }

    /// TLS options: the builder's, else `GATEWAY_TLS_CA` (read from the file
    /// it names) and `GATEWAY_TLS_DOMAIN`.
    ///
    /// Fails when `GATEWAY_TLS_CA` names a file that cannot be read.
    pub(crate) fn tls(
        &self,
        ca_pem: Option<Vec<u8>>,
        domain: Option<String>,
    ) -> Result<Tls, Error> {
        let ca_pem = match ca_pem {
            Some(pem) => Some(pem),
            None => self
                .get(vars::GATEWAY_TLS_CA)
                .map(|path| {
                    std::fs::read(&path).map_err(|source| Error::SettingFile {
                        name: vars::GATEWAY_TLS_CA,
                        path: path.into(),
                        source,
                    })
                })
                .transpose()?,
        };
        Ok(Tls {
            ca_pem,
            domain: domain.or_else(|| self.get(vars::GATEWAY_TLS_DOMAIN)),
        })
    }
}

fn invalid(name: &'static str, reason: String) -> Error {
    Error::InvalidSetting { name, reason }
}

/// Splits a comma-separated value; blanks around and between the commas are
/// ignored.
fn parse_list(name: &'static str, value: &str) -> Result<Vec<String>, Error> {
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err(invalid(name, format!("{value:?} lists nothing")));
    }
    Ok(items)
}

/// A worker id unique enough for logs: host, pid and a random suffix.
pub(crate) fn generate_worker_id(hostname: &str) -> String {
    let suffix: u32 = rand::random();
    format!("{hostname}-{}-{suffix:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of<'a>(vars: &'a HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> + 'a {
        |name| vars.get(name).map(|v| (*v).to_owned())
    }

    fn setting_name(error: &Error) -> &'static str {
        match error {
            Error::InvalidSetting { name, .. } | Error::SettingFile { name, .. } => name,
            other => panic!("not a setting error: {other}"),
        }
    }

    #[test]
    fn gateway_url_takes_a_comma_separated_list() {
        let vars = HashMap::from([("GATEWAY_URL", " http://a:7421, https://b:7421 ,,http://c ")]);
        let lookup = env_of(&vars);
        let urls = Env::from_fn(&lookup).gateways(None).unwrap();
        assert_eq!(urls, ["http://a:7421", "https://b:7421", "http://c"]);
        let none = HashMap::new();
        let lookup = env_of(&none);
        let env = Env::from_fn(&lookup);
        assert_eq!(env.gateways(None).unwrap(), [DEFAULT_GATEWAY]);
        let given = vec!["http://given:1".to_owned()];
        assert_eq!(env.gateways(Some(given.clone())).unwrap(), given);
    }

    #[test]
    fn a_list_of_only_commas_is_an_error_naming_the_variable() {
        let vars = HashMap::from([("GATEWAY_URL", " , ,"), ("WORKER_QUEUES", ",")]);
        let lookup = env_of(&vars);
        let env = Env::from_fn(&lookup);
        let error = env.gateways(None).unwrap_err();
        assert_eq!(setting_name(&error), "GATEWAY_URL");
        assert!(error.to_string().contains("lists nothing"), "{error}");
        let error = env.list(vars::WORKER_QUEUES).unwrap_err();
        assert_eq!(setting_name(&error), "WORKER_QUEUES");
    }

    #[test]
    fn numbers_are_checked_and_blank_means_unset() {
        let vars = HashMap::from([
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_MAX_PREFETCH", "lots"),
            ("WORKER_ID", "  "),
        ]);
        let lookup = env_of(&vars);
        let env = Env::from_fn(&lookup);
        let error = env.positive::<usize>(vars::WORKER_CONCURRENCY).unwrap_err();
        assert_eq!(setting_name(&error), "WORKER_CONCURRENCY");
        assert!(error.to_string().contains("\"0\""), "{error}");
        let error = env.number::<u32>(vars::WORKER_MAX_PREFETCH).unwrap_err();
        assert_eq!(setting_name(&error), "WORKER_MAX_PREFETCH");
        assert_eq!(env.get(vars::WORKER_ID), None);

        let vars = HashMap::from([("WORKER_CONCURRENCY", " 12 "), ("WORKER_MAX_PREFETCH", "0")]);
        let lookup = env_of(&vars);
        let env = Env::from_fn(&lookup);
        assert_eq!(
            env.positive::<usize>(vars::WORKER_CONCURRENCY).unwrap(),
            Some(12)
        );
        assert_eq!(
            env.number::<u32>(vars::WORKER_MAX_PREFETCH).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn tls_ca_is_read_from_the_named_file_and_builder_values_win() {
        let dir = std::env::temp_dir().join(format!("sdk-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, b"PEM").unwrap();
        let ca_path = ca.to_string_lossy().into_owned();
        let vars = HashMap::from([
            ("GATEWAY_TLS_CA", ca_path.as_str()),
            ("GATEWAY_TLS_DOMAIN", "gw.internal"),
        ]);
        let lookup = env_of(&vars);
        let env = Env::from_fn(&lookup);
        let tls = env.tls(None, None).unwrap();
        assert_eq!(
            (tls.ca_pem.as_deref(), tls.domain.as_deref()),
            (Some(&b"PEM"[..]), Some("gw.internal"))
        );
        let tls = env
            .tls(Some(b"MINE".to_vec()), Some("mine".into()))
            .unwrap();
        assert_eq!(
            (tls.ca_pem.as_deref(), tls.domain.as_deref()),
            (Some(&b"MINE"[..]), Some("mine"))
        );

        let missing = dir.join("missing.pem").to_string_lossy().into_owned();
        let vars = HashMap::from([("GATEWAY_TLS_CA", missing.as_str())]);
        let lookup = env_of(&vars);
        let error = Env::from_fn(&lookup).tls(None, None).unwrap_err();
        assert_eq!(setting_name(&error), "GATEWAY_TLS_CA");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_an_error_naming_the_variable() {
        let vars = HashMap::from([
            ("GATEWAY_WORKER_TOKEN", "bad\ntoken"),
            ("GATEWAY_PRODUCER_TOKEN", "fine"),
        ]);
        let lookup = env_of(&vars);
        let env = Env::from_fn(&lookup);
        let error = env
            .token(None, "token", vars::GATEWAY_WORKER_TOKEN)
            .unwrap_err();
        assert_eq!(setting_name(&error), "GATEWAY_WORKER_TOKEN");
        let given = env.token(Some("a\nb".into()), "token", vars::GATEWAY_WORKER_TOKEN);
        assert_eq!(setting_name(&given.unwrap_err()), "token");
        assert!(
            env.token(None, "token", vars::GATEWAY_PRODUCER_TOKEN)
                .unwrap()
                .is_some()
        );
    }
}
