//! The `faktory-gateway` binary: parses the configuration (flags with
//! environment fallbacks), sets up `tracing` from `RUST_LOG`, binds the gRPC
//! port and runs [`faktory_gateway::serve`] until SIGINT or SIGTERM; exits 0
//! after a clean drain.

use anyhow::Context;
use clap::Parser;
use faktory_gateway::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
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
