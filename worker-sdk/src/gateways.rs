//! [`Gateways`]: which gateway the worker connects to next.
//!
//! The worker is given one or more gateway URLs; a host name that resolves to
//! several addresses counts as several gateways. Names are resolved when the
//! worker starts and again whenever its rotation comes round to the start, so
//! a changed DNS answer is seen at the next move; each address is dialled
//! with the URL's host kept as the request authority and TLS name (the
//! endpoint itself is built in `connect.rs`).
//!
//! Policy:
//! - **Spread**: the rotation starts at an index derived from the worker id,
//!   so a fleet spreads evenly over the gateways.
//! - **Fail over**: a gateway that cannot be connected is left for the next.
//! - **Sticky**: after a lost stream the worker retries the same gateway
//!   once, so a brief cut does not move it; after a drain (the gateway is
//!   shutting down) it moves on at once.
//! - **Backoff** (`faktory_gateway_backoff::Backoff`, shared with the
//!   gateway: exponential, each delay drawn from `[d/2, d]`): reset when a stream opens and when moving to
//!   a gateway not tried since the last stream opened, so the delay stays
//!   short while untried gateways remain; it grows only once every gateway
//!   has failed.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_backoff::Backoff;
use tonic::codegen::http::Uri;
use tonic::transport::Endpoint;
use tracing::{debug, warn};

use crate::Error;
use crate::connect;
use crate::settings::Settings;

/// How long resolving one host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured gateway URL, validated.
#[derive(Debug, Clone)]
struct GatewayUrl {
    url: String,
    /// The host to resolve and its port; `None` when the URL's host is an IP
    /// address (nothing to resolve).
    lookup: Option<(String, u16)>,
    /// The endpoint for the URL as given (dialled when it is not resolved).
    endpoint: Endpoint,
}

/// One address to connect to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Index of its URL in the configured list.
    url_index: usize,
    url: String,
    /// The resolved address dialled, if the URL's host was a name.
    addr: Option<SocketAddr>,
    pub(crate) endpoint: Endpoint,
}

impl Target {
    fn key(&self) -> (usize, Option<SocketAddr>) {
        (self.url_index, self.addr)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{} ({addr})", self.url),
            None => f.write_str(&self.url),
        }
    }
}

/// The worker's gateways and its place among them; see the module docs.
#[derive(Debug)]
pub(crate) struct Gateways {
    settings: Arc<Settings>,
    urls: Vec<GatewayUrl>,
    /// This round's addresses; empty until resolved.
    targets: Vec<Target>,
    /// Set when the rotation came round: the next `target` resolves afresh.
    stale: bool,
    /// Where this worker's rounds start (derived from its id).
    start: usize,
    /// Position in the current round: `targets[(start + step) % len]`.
    step: usize,
    /// Targets tried since the last stream opened.
    tried: HashSet<(usize, Option<SocketAddr>)>,
    backoff: Backoff,
}

impl Gateways {
    /// Validates the configured URLs and builds their endpoints.
    ///
    /// Fails when no URL is given, a URL is not `http://` or `https://` with
    /// a host, or the transport rejects it or the TLS options.
    pub(crate) fn new(settings: Arc<Settings>) -> Result<Gateways, Error> {
        if settings.gateways.is_empty() {
            return Err(Error::InvalidSetting {
                name: "gateways",
                reason: "no gateway URL given".into(),
            });
        }
        let urls = settings
            .gateways
            .iter()
            .map(|url| parse(&settings, url))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Gateways {
            urls,
            start: start_index(&settings.worker_id),
            backoff: Backoff::new(settings.reconnect_min, settings.reconnect_max),
            settings,
            targets: Vec::new(),
            stale: false,
            step: 0,
            tried: HashSet::new(),
        })
    }

    /// The configured URLs, for logs.
    pub(crate) fn urls(&self) -> Vec<&str> {
        self.urls.iter().map(|u| u.url.as_str()).collect()
    }

    /// The gateway to connect to now, resolving host names at the start of a
    /// round. Cancellation-safe: an interrupted resolution is redone.
    pub(crate) async fn target(&mut self) -> Target {
        if self.targets.is_empty() || self.stale {
            self.targets = self.resolve().await;
            self.stale = false;
            self.step = 0;
        }
        self.targets[(self.start + self.step) % self.targets.len()].clone()
    }

    /// A stream opened on the current target: it becomes the one to come back
    /// to, and every gateway counts as untried again.
    pub(crate) fn opened(&mut self) {
        self.backoff.reset();
        self.tried.clear();
    }

    /// The stream was lost: retry the same gateway once (if that attempt
    /// fails, [`refused`](Self::refused) moves on). Returns the delay before
    /// the next attempt.
    pub(crate) fn lost(&mut self) -> Duration {
        self.mark_tried();
        self.backoff.next_delay()
    }

    /// The gateway drained the stream (it is shutting down): move on at once.
    /// Returns the delay before the next attempt.
    pub(crate) fn drained(&mut self) -> Duration {
        self.mark_tried();
        self.move_on()
    }

    /// The current gateway could not be connected: move on. Returns the
    /// delay before the next attempt.
    pub(crate) fn refused(&mut self) -> Duration {
        self.mark_tried();
        self.move_on()
    }

    fn mark_tried(&mut self) {
        if !self.targets.is_empty() {
            let current = (self.start + self.step) % self.targets.len();
            self.tried.insert(self.targets[current].key());
        }
    }

    /// Steps to the next target; after the last, the next round starts with
    /// a fresh resolution. The backoff starts over when the next target is
    /// untried (judged by this round's list: a fresh answer usually matches
    /// it).
    fn move_on(&mut self) -> Duration {
        let len = self.targets.len().max(1);
        self.step += 1;
        if self.step >= len {
            self.step = 0;
            self.stale = true;
        }
        let untried = self
            .targets
            .get((self.start + self.step) % len)
            .is_none_or(|next| !self.tried.contains(&next.key()));
        if untried {
            self.backoff.reset();
        }
        self.backoff.next_delay()
    }

    /// Every configured URL's addresses, in order; a name that cannot be
    /// resolved stays one target dialled by name, so its error is reported
    /// where connection errors are.
    async fn resolve(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for (url_index, gateway) in self.urls.iter().enumerate() {
            let as_given = Target {
                url_index,
                url: gateway.url.clone(),
                addr: None,
                endpoint: gateway.endpoint.clone(),
            };
            let Some((host, port)) = &gateway.lookup else {
                targets.push(as_given);
                continue;
            };
            let addrs = match resolve_host(host, *port).await {
                Ok(addrs) if !addrs.is_empty() => addrs,
                Ok(_) => {
                    warn!(gateway = %gateway.url, "host name resolved to no address");
                    targets.push(as_given);
                    continue;
                }
                Err(reason) => {
                    warn!(gateway = %gateway.url, %reason, "cannot resolve the gateway's host name");
                    targets.push(as_given);
                    continue;
                }
            };
            debug!(gateway = %gateway.url, ?addrs, "resolved");
            for addr in addrs {
                match connect::endpoint(&self.settings.tls, &gateway.url, Some((addr, host))) {
                    Ok(endpoint) => targets.push(Target {
                        url_index,
                        url: gateway.url.clone(),
                        addr: Some(addr),
                        endpoint,
                    }),
                    // The URL was valid with its name; an address in its
                    // place cannot make it invalid, but if it does the name
                    // still works.
                    Err(error) => {
                        warn!(gateway = %gateway.url, %addr, %error, "cannot dial the address");
                    }
                }
            }
            if targets.last().is_none_or(|t| t.url_index != url_index) {
                targets.push(as_given);
            }
        }
        targets
    }
}

/// Validates one URL and builds its endpoint.
fn parse(settings: &Settings, url: &str) -> Result<GatewayUrl, Error> {
    let invalid = |reason: &str| Error::InvalidSetting {
        name: "gateway",
        reason: format!("{url:?}: {reason}"),
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("not a URL (expected http://host:port or https://host:port)"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("the scheme must be http:// or https://")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    let endpoint = connect::endpoint(&settings.tls, url, None)?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let lookup = if literal.parse::<IpAddr>().is_ok() {
        None
    } else {
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some((host.to_owned(), port))
    };
    Ok(GatewayUrl {
        url: url.to_owned(),
        lookup,
        endpoint,
    })
}

async fn resolve_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let mut addrs: Vec<SocketAddr> = addrs.collect();
            // Resolvers may list an address twice (one per socket type).
            let mut seen = HashSet::new();
            addrs.retain(|a| seen.insert(*a));
            Ok(addrs)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
    }
}

/// Where a worker's rotation starts: a stable hash of its id (FNV-1a), so
/// workers with different ids spread over the gateways.
fn start_index(worker_id: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in worker_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as usize
}

#[cfg(test)]
mod tests;
