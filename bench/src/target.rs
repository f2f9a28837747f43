//! What plays Faktory: the project's test server in this process (default),
//! the test server in a child process (its CPU and RSS apart), or a real
//! Faktory named by `FAKTORY_URL`.

use std::net::SocketAddr;
use std::path::Path;

use faktory_test_server::TestServer;

use crate::Error;
use crate::child::{ChildProcess, announce};

/// First argument that turns the bench binary into a test-server child.
pub const TEST_SERVER_CHILD_ARG: &str = "__test-server-child";

/// The Faktory the benchmark runs against.
pub enum FaktoryTarget {
    /// `faktory_test_server::TestServer` on `127.0.0.1:0`, in process.
    InProcess(TestServer),
    /// `faktory_test_server::TestServer` in a child process.
    Child {
        /// The child.
        process: Box<ChildProcess>,
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
    /// test server.
    ///
    /// Fails when the test server cannot start or the URL's host does not
    /// resolve.
    pub async fn from_env() -> Result<FaktoryTarget, Error> {
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.trim().is_empty() => FaktoryTarget::external(url.trim()).await,
            _ => FaktoryTarget::in_process().await,
        }
    }

    /// A fresh test server in a child process started from `exe` (the
    /// bench binary).
    ///
    /// Fails when the child cannot start.
    pub async fn child(exe: &Path) -> Result<FaktoryTarget, Error> {
        let args = [TEST_SERVER_CHILD_ARG.to_owned()];
        let process = ChildProcess::start(exe, &args, "test server").await?;
        let url = process.announced().to_owned();
        let addr = url
            .strip_prefix("tcp://")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| Error::Setup(format!("test server child announced {url:?}")))?;
        Ok(FaktoryTarget::Child {
            process: Box::new(process),
            url,
            addr,
        })
    }

    /// A fresh in-process test server.
    ///
    /// Fails when it cannot bind.
    pub async fn in_process() -> Result<FaktoryTarget, Error> {
        Ok(FaktoryTarget::InProcess(start_test_server().await?))
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
            FaktoryTarget::InProcess(server) => server.url(),
            FaktoryTarget::Child { url, .. } | FaktoryTarget::External { url, .. } => url.clone(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            FaktoryTarget::InProcess(server) => server.addr(),
            FaktoryTarget::Child { addr, .. } | FaktoryTarget::External { addr, .. } => *addr,
        }
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            FaktoryTarget::InProcess(_) => {
                "faktory-test-server, in the bench process (set FAKTORY_URL for a real Faktory)"
                    .to_owned()
            }
            FaktoryTarget::Child { .. } => "faktory-test-server, in a child process".to_owned(),
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
            FaktoryTarget::InProcess(server) => server.shutdown().await,
            FaktoryTarget::Child { process, .. } => {
                if let Err(e) = process.stop().await {
                    tracing::warn!(error = %e, "test server child did not stop cleanly");
                }
            }
            FaktoryTarget::External { .. } => {}
        }
    }
}

/// The child side: runs a test server on `127.0.0.1:0`, announces its URL,
/// and stops when stdin closes.
///
/// Fails when the server cannot start or stdout cannot be written.
pub async fn run_test_server_child() -> Result<(), Error> {
    let server = start_test_server().await?;
    let stdin_closed = announce(&server.url())?;
    stdin_closed.await;
    server.shutdown().await;
    Ok(())
}

/// Starts the test server the bench and the demo run against, in process
/// or as the child. This is where its cost model is chosen once the test
/// server has one (branch `model`: `ServerConfig::cost`); until then it is
/// the fast mode, which measures the gateway's own cost, not Faktory's.
///
/// Fails when it cannot bind.
async fn start_test_server() -> Result<TestServer, Error> {
    TestServer::start()
        .await
        .map_err(|e| Error::io("start faktory test server", e))
}
