//! The gateway as a child process (see [`crate::setup::child`]), so its CPU time
//! and peak RSS can be read apart from the workers and producers.
//!
//! The child is the bench (or chaos) binary itself, re-executed with
//! [`CHILD_ARG`] as its first argument: it runs the same
//! `faktory_gateway::serve` the `faktory-gateway` binary runs, on the same
//! runtime (`faktory_gateway::runtime`), on `127.0.0.1:0` or on an address
//! the parent names (to start a gateway again on the port of one that was
//! killed).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::Error;
use crate::measure::process_stats::ProcessSample;
use crate::setup::child::{ChildProcess, announce};

/// First argument that turns the bench binary into a gateway child.
pub const CHILD_ARG: &str = "__gateway-child";

/// A running gateway child process.
pub struct GatewayProcess {
    process: ChildProcess,
    addr: SocketAddr,
}

impl GatewayProcess {
    /// Starts `exe` (the bench binary) as a gateway for Faktory at
    /// `faktory_url`, with `extra_args` passed on to its configuration
    /// (e.g. `--fetch-concurrency=8`). The metrics endpoint is off and the
    /// shutdown grace period 3 s.
    ///
    /// Fails when the child cannot be started or does not report its
    /// address.
    pub async fn start(
        exe: &Path,
        faktory_url: &str,
        extra_args: &[String],
    ) -> Result<GatewayProcess, Error> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        GatewayProcess::start_on(exe, faktory_url, any_port, extra_args).await
    }

    /// As [`start`](Self::start), listening on `listen` (port 0: any free
    /// port).
    ///
    /// Fails as [`start`](Self::start), and when `listen` cannot be bound.
    pub async fn start_on(
        exe: &Path,
        faktory_url: &str,
        listen: SocketAddr,
        extra_args: &[String],
    ) -> Result<GatewayProcess, Error> {
        let mut args = vec![
            CHILD_ARG.to_owned(),
            format!("--listen={listen}"),
            "--faktory-url".to_owned(),
            faktory_url.to_owned(),
            "--metrics-listen=off".to_owned(),
            // Workers are stopped before the gateway; a long grace only
            // delays the next scenario.
            "--shutdown-grace-ms=3000".to_owned(),
        ];
        args.extend_from_slice(extra_args);
        let process = ChildProcess::start(exe, &args, "gateway").await?;
        let addr = process.announced().parse().map_err(|_| {
            Error::Setup(format!("gateway child announced {:?}", process.announced()))
        })?;
        Ok(GatewayProcess { process, addr })
    }

    /// The gateway's gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// CPU time and peak RSS so far.
    pub fn sample(&self) -> Option<ProcessSample> {
        self.process.sample()
    }

    /// Resets the peak RSS so the next sample shows a fresh peak.
    pub fn reset_peak_rss(&self) -> bool {
        self.process.reset_peak_rss()
    }

    /// Asks the gateway to shut down, waits for it to drain and exit, and
    /// kills it if it takes longer than 15 s.
    ///
    /// Fails when it had to be killed or exited with an error.
    pub async fn stop(self) -> Result<(), Error> {
        self.process.stop().await
    }

    /// Kills the gateway with SIGKILL (nothing drained, nothing released)
    /// and waits for it to be gone.
    ///
    /// Fails when the signal cannot be sent.
    pub async fn kill(self) -> Result<(), Error> {
        self.process.kill().await
    }
}

/// The child side, the whole process (the binary's `main` hands over to it
/// when its first argument is [`CHILD_ARG`]): logs to stderr when `RUST_LOG`
/// is set, parses `args` as the gateway's options and runs the gateway on
/// the runtime [`faktory_gateway::runtime::build`] makes of them, as the
/// gateway binary does (see [`run_child`]).
pub fn child_main(args: Vec<String>) -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let argv = std::iter::once("faktory-gateway".to_owned()).chain(args);
    let result = <faktory_gateway::Config as clap::Parser>::try_parse_from(argv)
        .map_err(|e| Error::Setup(format!("gateway configuration: {e}")))
        .and_then(|config| {
            let runtime = faktory_gateway::runtime::build(&config)
                .map_err(|e| Error::io("start the gateway's runtime", e))?;
            runtime.block_on(run_child(config))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway child: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `config` on its `--listen` address, announces the address, and
/// shuts down gracefully when stdin closes.
///
/// Fails when binding fails, or the gateway fails.
async fn run_child(config: faktory_gateway::Config) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io("bind gateway listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("gateway listener address", e))?;
    let stdin_closed = announce(&addr.to_string())?;
    faktory_gateway::serve(config, listener, stdin_closed)
        .await
        .map_err(|e| Error::Setup(format!("gateway: {e}")))
}
