//! [`Endpoint`]: which Faktory server to connect to and how (timeouts, TLS
//! trust). Built once from the configuration (`Config::faktory_endpoint`) and
//! shared by the producer connections (`submit/`) and the delivery path
//! (`delivery/`).

use super::connection::ConnectOptions;
use super::url::FaktoryUrl;

/// Where and how to connect to Faktory.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server.
    pub url: FaktoryUrl,
    /// Timeouts, TLS trust and read pacing.
    pub options: ConnectOptions,
}

impl Endpoint {
    /// The same server with paced reads: for connections whose pipelines
    /// Faktory answers one reply at a time (fetch and settle), reading the
    /// replies in a few gulps saves a wakeup and a read per job.
    pub fn pacing_reads(mut self) -> Endpoint {
        self.options.pace_reads = true;
        self
    }
}
