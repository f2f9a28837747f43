//! What plays Faktory: the project's test server in this process (default),
//! the test server in a child process (its CPU and RSS apart), or a real
//! Faktory named by `FAKTORY_URL`.

use std::net::SocketAddr;
use std::path::Path;

use faktory_test_server::{CostModel, ServerConfig, TestServer};

use crate::Error;
use crate::setup::child::{ChildProcess, announce};

/// First argument that turns the bench binary into a test-server child.
pub const TEST_SERVER_CHILD_ARG: &str = "__test-server-child";

/// Second argument of a test-server child that runs it in [`Pace::Fast`].
const FAST_ARG: &str = "--fast";

/// How fast the test server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// At the pace of a real Faktory 1.10 (`CostModel::faktory_1_10`): the
    /// default, so ratios to direct workers mean what they would against
    /// Faktory.
    Faktory1_10,
    /// As fast as memory allows: measures the gateway's own cost, with
    /// Faktory out of the way.
    Fast,
}

impl Pace {
    /// [`Pace::Fast`] when the `--fast-test-server` flag was given, else
    /// [`Pace::Faktory1_10`].
    pub fn from_fast_flag(fast_test_server: bool) -> Pace {
        if fast_test_server {
            Pace::Fast
        } else {
            Pace::Faktory1_10
        }
    }

    fn cost(self) -> Option<CostModel> {
        match self {
            Pace::Faktory1_10 => Some(CostModel::faktory_1_10()),
            Pace::Fast => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Pace::Faktory1_10 => "at Faktory 1.10's pace (cost model)",
            Pace::Fast => "fast mode, no cost model",
        }
    }
}

/// The Faktory the benchmark runs against.
pub enum FaktoryTarget {
    /// `faktory_test_server::TestServer` on `127.0.0.1:0`, in process.
    InProcess(TestServer, Pace),
    /// `faktory_test_server::TestServer` in a child process.
    Child {
        /// The child.
        process: Box<ChildProcess>,
        /// How fast it answers.
        pace: Pace,
        /// Its URL.
        url: String,
        /// Its address.
        addr: SocketAddr,
    },
    /// A server reached by URL.
    External {
        /// `tcp://[:password@]host:port`.
        url: String,
        /// Its resolved address (the link proxies to it).
        addr: SocketAddr,
    },
}

impl FaktoryTarget {
    /// A real Faktory when `FAKTORY_URL` is set, else a fresh in-process
    /// test server at `pace`.
    ///
    /// Fails when the test server cannot start or the URL's host does not
    /// resolve.
    pub async fn from_env(pace: Pace) -> Result<FaktoryTarget, Error> {
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.trim().is_empty() => FaktoryTarget::external(url.trim()).await,
            _ => FaktoryTarget::in_process(pace).await,
        }
    }

    /// A fresh test server at `pace` in a child process started from `exe`
    /// (the bench binary).
    ///
    /// Fails when the child cannot start.
    pub async fn child(exe: &Path, pace: Pace) -> Result<FaktoryTarget, Error> {
        let mut args = vec![TEST_SERVER_CHILD_ARG.to_owned()];
        if pace == Pace::Fast {
            args.push(FAST_ARG.to_owned());
        }
        let process = ChildProcess::start(exe, &args, "test server").await?;
        let url = process.announced().to_owned();
        let addr = url
            .strip_prefix("tcp://")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| Error::Setup(format!("test server child announced {url:?}")))?;
        Ok(FaktoryTarget::Child {
            process: Box::new(process),
            pace,
            url,
            addr,
        })
    }

    /// A fresh in-process test server at `pace`.
    ///
    /// Fails when it cannot bind.
    pub async fn in_process(pace: Pace) -> Result<FaktoryTarget, Error> {
        Ok(FaktoryTarget::InProcess(
            start_test_server(pace).await?,
            pace,
        ))
    }

    /// A server at `url`.
    ///
    /// Fails when the URL's host does not resolve.
    pub async fn external(url: &str) -> Result<FaktoryTarget, Error> {
        let (_, rest) = url.split_once("://").unwrap_or(("tcp", url));
        let host_port = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:7419")
        };
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .map_err(|e| Error::io(format!("resolve {host_port}"), e))?
            .next()
            .ok_or_else(|| Error::Setup(format!("{host_port} resolves to nothing")))?;
        Ok(FaktoryTarget::External {
            url: url.to_owned(),
            addr,
        })
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        match self {
            FaktoryTarget::InProcess(server, _) => server.url(),
            FaktoryTarget::Child { url, .. } | FaktoryTarget::External { url, .. } => url.clone(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            FaktoryTarget::InProcess(server, _) => server.addr(),
            FaktoryTarget::Child { addr, .. } | FaktoryTarget::External { addr, .. } => *addr,
        }
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            FaktoryTarget::InProcess(_, pace) => format!(
                "faktory-test-server {}, in the bench process (set FAKTORY_URL for a real Faktory)",
                pace.describe()
            ),
            FaktoryTarget::Child { pace, .. } => format!(
                "faktory-test-server {}, in a child process",
                pace.describe()
            ),
            FaktoryTarget::External { addr, .. } => format!("Faktory at {addr} (FAKTORY_URL)"),
        }
    }

    /// The test server's process id when it runs as a child.
    pub fn child_pid(&self) -> Option<u32> {
        match self {
            FaktoryTarget::Child { process, .. } => Some(process.pid()),
            _ => None,
        }
    }

    /// Stops the test server, if the bench started one.
    pub async fn shutdown(self) {
        match self {
            FaktoryTarget::InProcess(server, _) => server.shutdown().await,
            FaktoryTarget::Child { process, .. } => {
                if let Err(e) = process.stop().await {
                    tracing::warn!(error = %e, "test server child did not stop cleanly");
                }
            }
            FaktoryTarget::External { .. } => {}
        }
    }
}

/// The child side: runs a test server on `127.0.0.1:0` (in [`Pace::Fast`]
/// when `args`, those after [`TEST_SERVER_CHILD_ARG`], say `--fast`),
/// announces its URL, and stops when stdin closes.
///
/// Fails when the server cannot start or stdout cannot be written.
pub async fn run_test_server_child(args: &[String]) -> Result<(), Error> {
    let pace = Pace::from_fast_flag(args.iter().any(|arg| arg == FAST_ARG));
    let server = start_test_server(pace).await?;
    let stdin_closed = announce(&server.url())?;
    stdin_closed.await;
    server.shutdown().await;
    Ok(())
}

/// Starts the test server the bench and the demo run against, in process
/// or as the child, at `pace`.
///
/// Fails when it cannot bind.
async fn start_test_server(pace: Pace) -> Result<TestServer, Error> {
    let config = ServerConfig {
        cost: pace.cost(),
        ..ServerConfig::default()
    };
    TestServer::start_with(config)
        .await
        .map_err(|e| Error::io("start faktory test server", e))
}
