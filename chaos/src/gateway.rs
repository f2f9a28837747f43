//! [`Gateway`]: one gateway of the run, a real child process (the chaos
//! binary re-executed as `faktory_gateway_bench::setup::gateway_process`'s gateway
//! child), so that it can be stopped the graceful way (stdin closed: drain,
//! release, END) or killed with SIGKILL (nothing drained, nothing released,
//! every socket closed by the kernel), and started again on the same port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use faktory_gateway_bench::setup::gateway_process::GatewayProcess;

/// How long to keep trying to start again on the same port after a stop.
const REBIND_LIMIT: Duration = Duration::from_secs(10);

/// A gateway child process; see the module docs.
pub(crate) struct Gateway {
    exe: PathBuf,
    faktory_url: String,
    flags: Vec<String>,
    addr: SocketAddr,
    running: Option<GatewayProcess>,
}

impl Gateway {
    /// Starts a gateway for the Faktory at `faktory_url` on a free loopback
    /// port, with `flags` added to its configuration.
    ///
    /// Fails when the child cannot be started or does not report its
    /// address.
    pub(crate) async fn start(faktory_url: String, flags: Vec<String>) -> anyhow::Result<Gateway> {
        let exe = std::env::current_exe().context("the chaos binary's path")?;
        let process = GatewayProcess::start(&exe, &faktory_url, &flags)
            .await
            .context("start a gateway child")?;
        Ok(Gateway {
            exe,
            faktory_url,
            flags,
            addr: process.addr(),
            running: Some(process),
        })
    }

    /// Where it listens (the same after every restart).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: the child drains, releases and exits.
    ///
    /// Fails when it exits with an error or had to be killed.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        match self.running.take() {
            Some(process) => process.stop().await.context("graceful gateway stop"),
            None => Ok(()),
        }
    }

    /// Abrupt stop: SIGKILL.
    ///
    /// Fails when the signal cannot be sent.
    pub(crate) async fn kill(&mut self) -> anyhow::Result<()> {
        match self.running.take() {
            Some(process) => process.kill().await.context("kill the gateway"),
            None => Ok(()),
        }
    }

    /// Starts again on the same port (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)), retrying while the old socket goes.
    ///
    /// Fails when the port stays taken for [`REBIND_LIMIT`].
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        let give_up = tokio::time::Instant::now() + REBIND_LIMIT;
        loop {
            match GatewayProcess::start_on(&self.exe, &self.faktory_url, self.addr, &self.flags)
                .await
            {
                Ok(process) => {
                    self.running = Some(process);
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(error = %e, "gateway port still taken; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(anyhow!(e).context("restart the gateway on its port")),
            }
        }
    }
}
