//! [`Target`]: the Faktory a chaos run works against. Without `FAKTORY_URL`
//! it is the project's test server, in process: its clock can be moved on
//! (retries come back at once, reservations can be made to expire) and its
//! tables read directly. With `FAKTORY_URL` it is that (real) Faktory,
//! shared with others: the run touches only its own queue, leaves its
//! retries to Faktory's own schedule (see [`Target::bring_back_retries`]),
//! and reads what is left at the end with [`inventory`](crate::inventory).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use faktory_gateway::faktory::{Connection, FaktoryUrl};
use faktory_gateway_bench::setup::link::url_with_addr;
use faktory_gateway_bench::workers::producer::connect;
use faktory_test_server::{ServerConfig, TestServer};

use crate::inventory::{self, Place};

/// How long the test server's blocking FETCH waits on empty queues.
const FETCH_BLOCK: Duration = Duration::from_millis(250);

/// The Faktory under test; see the module docs.
pub(crate) enum Target {
    /// The in-process test server.
    TestServer(TestServer),
    /// A Faktory at `url`, with a connection of the run's own.
    Real { url: String, connection: Connection },
}

impl Target {
    /// The Faktory of `FAKTORY_URL`, else a fresh test server.
    ///
    /// Fails when the test server cannot start, or `FAKTORY_URL` does not
    /// parse, resolve or answer.
    pub(crate) async fn from_env() -> anyhow::Result<Target> {
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.is_empty() => {
                let connection = connect(&url)
                    .await
                    .with_context(|| format!("connect to FAKTORY_URL {url}"))?;
                Ok(Target::Real { url, connection })
            }
            _ => Ok(Target::TestServer(
                TestServer::start_with(ServerConfig {
                    fetch_block: FETCH_BLOCK,
                    ..ServerConfig::default()
                })
                .await
                .context("start the faktory test server")?,
            )),
        }
    }

    /// Whether this is a real Faktory (`FAKTORY_URL`).
    pub(crate) fn is_real(&self) -> bool {
        matches!(self, Target::Real { .. })
    }

    /// Faktory's URL.
    pub(crate) fn url(&self) -> String {
        match self {
            Target::TestServer(server) => server.url(),
            Target::Real { url, .. } => url.clone(),
        }
    }

    /// Faktory's socket address (where a link emulator forwards to).
    ///
    /// Fails when the URL's host does not resolve.
    pub(crate) async fn addr(&self) -> anyhow::Result<SocketAddr> {
        match self {
            Target::TestServer(server) => Ok(server.addr()),
            Target::Real { url, .. } => {
                let parsed = FaktoryUrl::parse(url).context("parse FAKTORY_URL")?;
                tokio::net::lookup_host((parsed.host(), parsed.port()))
                    .await
                    .context("resolve FAKTORY_URL")?
                    .next()
                    .ok_or_else(|| anyhow!("FAKTORY_URL resolves to no address"))
            }
        }
    }

    /// Faktory's URL with its address replaced by `addr` (a link emulator
    /// in front of it), password kept.
    pub(crate) fn url_via(&self, addr: SocketAddr) -> String {
        url_with_addr(&self.url(), addr)
    }

    /// The test server's handle, if this is the test server.
    pub(crate) fn handle(&self) -> Option<faktory_test_server::ServerHandle> {
        match self {
            Target::TestServer(server) => Some(server.handle()),
            Target::Real { .. } => None,
        }
    }

    /// Brings the run's retries back now: the test server's clock moves on
    /// by `step`. A real Faktory is left to its own retry scheduler (a first
    /// retry comes back within ~45 s): its `MUTATE requeue` pushes each
    /// entry to the queue before removing it from the set, walks the set
    /// with a `ZSCAN` that may return an entry twice, and races the
    /// scheduler, so under load it can put one retry in the queue twice
    /// (two runs of a finished job that no gateway caused). Returns whether
    /// anything was done.
    pub(crate) fn bring_back_retries(&self, step: Duration) -> bool {
        match self {
            Target::TestServer(server) => {
                server.handle().advance_clock(step);
                true
            }
            Target::Real { .. } => false,
        }
    }

    /// How long recovery waits for the next job to resolve before it gives
    /// up: a real Faktory's retries come back on its own schedule (up to
    /// ~45 s for a first failure), the test server's when its clock moves.
    pub(crate) fn stall_limit(&self) -> Duration {
        match self {
            Target::TestServer(_) => Duration::from_secs(15),
            Target::Real { .. } => Duration::from_secs(60),
        }
    }

    /// Where each of `jids` (on `queue`) is at Faktory; jids Faktory no
    /// longer holds are absent. Against a real Faktory this empties what the
    /// run left there (see [`inventory`](crate::inventory)).
    ///
    /// Fails when the real Faktory's inventory fails.
    pub(crate) async fn places(
        &self,
        queue: &str,
        jids: &[String],
    ) -> anyhow::Result<HashMap<String, Place>> {
        let server = match self {
            Target::Real { url, .. } => {
                return Ok(inventory::take(url, queue, jids).await?.places);
            }
            Target::TestServer(server) => server.handle(),
        };
        let dead: HashSet<String> = server
            .dead()
            .iter()
            .filter_map(|job| job["jid"].as_str().map(str::to_owned))
            .collect();
        let reserved: HashSet<String> = server.reserved_jids().into_iter().collect();
        Ok(jids
            .iter()
            .filter_map(|jid| {
                let job = server.job(jid)?;
                let errtype = job["failure"]["errtype"].as_str().unwrap_or("").to_owned();
                let place = if dead.contains(jid) {
                    Place::Dead(errtype)
                } else if reserved.contains(jid) {
                    Place::Reserved
                } else if errtype.is_empty() {
                    Place::Queued
                } else {
                    Place::Retry(errtype)
                };
                Some((jid.clone(), place))
            })
            .collect())
    }

    /// Stops the test server; closes the connection to a real Faktory.
    pub(crate) async fn shutdown(self) {
        match self {
            Target::TestServer(server) => server.shutdown().await,
            Target::Real { connection, .. } => {
                let _ = connection.end().await;
            }
        }
    }
}
