//! [`GatewayProcess`]: a gateway (`faktory_gateway::serve`) on its own tokio
//! runtime, so that it can be stopped the graceful way (its shutdown future:
//! drain, release, END) or killed abruptly (the runtime is shut down: every
//! task is dropped mid-flight, every socket closed, nothing released), and
//! started again on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a graceful stop may take before the gateway is killed instead.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How long to keep trying to bind the port again after a stop.
const REBIND_LIMIT: Duration = Duration::from_secs(10);

/// A running gateway; see the module docs.
pub(crate) struct GatewayProcess {
    addr: SocketAddr,
    flags: Vec<String>,
    running: Option<Running>,
}

struct Running {
    runtime: Runtime,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), faktory_gateway::Error>>,
}

impl GatewayProcess {
    /// Starts a gateway on a free loopback port with `flags` (after the
    /// program name).
    pub(crate) async fn start(flags: Vec<String>) -> anyhow::Result<GatewayProcess> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind the gateway")?;
        let mut gateway = GatewayProcess {
            addr: listener.local_addr()?,
            flags,
            running: None,
        };
        gateway.serve(listener)?;
        Ok(gateway)
    }

    /// Where it listens (the same after every restart).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&mut self, listener: std::net::TcpListener) -> anyhow::Result<()> {
        let mut args = vec!["faktory-gateway".to_owned()];
        args.extend(self.flags.iter().cloned());
        let config = faktory_gateway::Config::try_parse_from(args).context("gateway flags")?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway")
            .enable_all()
            .build()
            .context("gateway runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .expect("a listener registered on the gateway runtime");
            faktory_gateway::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running = Some(Running {
            runtime,
            stop,
            task,
        });
        Ok(())
    }

    /// Graceful stop: the shutdown future fires and `serve` drains.
    ///
    /// Fails when `serve` returns an error or does not return in time (it is
    /// killed then).
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let _ = running.stop.send(());
        let mut task = running.task;
        let outcome = tokio::time::timeout(STOP_LIMIT, &mut task).await;
        running.runtime.shutdown_background();
        match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("serve failed")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("serve task")),
            Err(_) => bail!("the gateway did not stop within {STOP_LIMIT:?}"),
        }
    }

    /// Abrupt stop: every gateway task is dropped where it stands.
    pub(crate) fn kill(&mut self) {
        if let Some(running) = self.running.take() {
            running.runtime.shutdown_background();
        }
    }

    /// Starts again on the same port (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)), retrying the bind while the old socket goes.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        let give_up = tokio::time::Instant::now() + REBIND_LIMIT;
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(error = %e, "gateway port still taken; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e).context("rebind the gateway port"),
            }
        };
        self.serve(listener)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
