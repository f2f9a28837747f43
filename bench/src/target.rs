//! What plays Faktory: the project's test server in this process (default),
//! or a real Faktory named by `FAKTORY_URL`.

use std::net::SocketAddr;

use faktory_test_server::TestServer;

use crate::Error;

/// The Faktory the benchmark runs against.
pub enum FaktoryTarget {
    /// `faktory_test_server::TestServer` on `127.0.0.1:0`, in process.
    InProcess(TestServer),
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

    /// A fresh in-process test server.
    ///
    /// Fails when it cannot bind.
    pub async fn in_process() -> Result<FaktoryTarget, Error> {
        let server = TestServer::start()
            .await
            .map_err(|e| Error::io("start faktory test server", e))?;
        Ok(FaktoryTarget::InProcess(server))
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
            FaktoryTarget::External { url, .. } => url.clone(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            FaktoryTarget::InProcess(server) => server.addr(),
            FaktoryTarget::External { addr, .. } => *addr,
        }
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            FaktoryTarget::InProcess(_) => {
                "faktory-test-server, in the bench process (set FAKTORY_URL for a real Faktory)"
                    .to_owned()
            }
            FaktoryTarget::External { addr, .. } => format!("Faktory at {addr} (FAKTORY_URL)"),
        }
    }

    /// Stops the in-process server, if any.
    pub async fn shutdown(self) {
        if let FaktoryTarget::InProcess(server) = self {
            server.shutdown().await;
        }
    }
}
