//! The `faktory-gateway` binary: parses the configuration (flags with
//! environment fallbacks), sets up `tracing` from `RUST_LOG` (text or JSON
//! lines, `--log-format`), starts the runtime `runtime::build` makes of it
//! (threads, wake coalescing), binds the gRPC port and runs
//! [`faktory_gateway::serve`] until SIGINT or SIGTERM; exits 0 after a clean
//! drain.
//!
//! Subcommands talk to a running gateway (found by `gateway_target`):
//! `faktory-gateway health` (in `health_check`) asks whether it is SERVING
//! and exits 0 only if so (the Docker image's `HEALTHCHECK`);
//! `faktory-gateway workers` (in `list_workers`) prints its open `Work`
//! sessions as a table.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use faktory_gateway::Config;
use faktory_gateway::config::LogFormat;
use tracing_subscriber::EnvFilter;

mod gateway_target;
mod health_check;
mod list_workers;

/// The command line: the gateway's options, or a subcommand.
#[derive(Parser)]
#[command(
    name = "faktory-gateway",
    version,
    long_about = None,
    about = "A gRPC gateway that runs beside Faktory and streams jobs in bulk to remote workers.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a running gateway's gRPC health service whether it is SERVING
    /// (exit 0) or not (exit 1). Needs no Faktory.
    Health(health_check::HealthArgs),
    /// List the open Work sessions of a running gateway (Admin.ListWorkers)
    /// as a table. Needs no Faktory.
    Workers(list_workers::WorkersArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        let runtime = faktory_gateway::runtime::build(&cli.config)
            .context("cannot start the tokio runtime")?;
        runtime.block_on(run_gateway(cli.config))?;
        return Ok(ExitCode::SUCCESS);
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    match command {
        Command::Health(args) => {
            let serving = runtime.block_on(health_check::run(&args))?;
            Ok(if serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Workers(args) => {
            runtime.block_on(list_workers::run(&args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the gateway until SIGINT or SIGTERM, then drains it.
async fn run_gateway(config: Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        // Span fields (session id, worker, host) ride along on each line.
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    // Signal handlers go in before the port opens: a SIGTERM that arrives as
    // soon as the gateway is reachable must drain it, not kill it.
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (GATEWAY_LISTEN)", config.listen))?;
    faktory_gateway::serve(config, listener, shutdown)
        .await
        .context("gateway failed")?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the returned future resolves
/// on the first of either.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        {
            // Both arms are cancellation-safe signal waits.
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutdown signal received");
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for ctrl-c");
                std::future::pending::<()>().await;
            }
            tracing::info!("shutdown signal received");
        }
    })
}
