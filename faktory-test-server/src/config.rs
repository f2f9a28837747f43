//! [`ServerConfig`] and [`TlsIdentity`]: how a test server is started.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cost::CostModel;

/// Options for [`TestServer::start_with`](crate::TestServer::start_with). Defaults match real
/// Faktory's timings; only `listen` differs (an ephemeral loopback port).
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to bind. Default `127.0.0.1:0` (the binary defaults to `127.0.0.1:7419`).
    pub listen: SocketAddr,
    /// Require this password in HELLO (sent challenge: iterations + salt).
    pub password: Option<String>,
    /// Serve TLS with this certificate and key (the URL becomes `tcp+tls://`).
    pub tls: Option<TlsIdentity>,
    /// How long FETCH blocks on empty queues before answering `$-1`. Faktory: 2 s.
    pub fetch_block: Duration,
    /// How often scheduled and retry jobs are moved into queues. Faktory: 5 s.
    pub scheduler_interval: Duration,
    /// How often expired reservations and silent workers are reaped. Faktory: 15 s.
    pub reaper_interval: Duration,
    /// Time allowed between accepting a socket and a valid HELLO. Faktory: 2 s.
    pub handshake_timeout: Duration,
    /// Longest command line accepted; longer lines get `-ERR` and the connection is closed.
    pub max_line: usize,
    /// Serve commands at the pace of this model of a real Faktory (see [`CostModel`]);
    /// `None` answers as fast as memory allows.
    pub cost: Option<CostModel>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            password: None,
            tls: None,
            fetch_block: Duration::from_secs(2),
            scheduler_interval: Duration::from_secs(5),
            reaper_interval: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(2),
            max_line: 16 * 1024 * 1024,
            cost: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls.is_some())
            .field("fetch_block", &self.fetch_block)
            .field("scheduler_interval", &self.scheduler_interval)
            .field("reaper_interval", &self.reaper_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_line", &self.max_line)
            .field("cost", &self.cost)
            .finish()
    }
}

/// A TLS certificate chain and private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: String,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}
