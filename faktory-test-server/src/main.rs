//! `faktory-test-server`: run the Faktory stand-in on a TCP port (for demos and for the
//! other-language examples).

use std::net::SocketAddr;

use clap::Parser;
use faktory_test_server::{ServerConfig, TestServer};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "faktory-test-server",
    about = "A Faktory protocol stand-in for tests and demos"
)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "FAKTORY_TEST_SERVER_LISTEN",
        default_value = "127.0.0.1:7419"
    )]
    listen: SocketAddr,
    /// Require this password (clients use tcp://:PASSWORD@host:port).
    #[arg(long, env = "FAKTORY_TEST_SERVER_PASSWORD")]
    password: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = ServerConfig {
        listen: args.listen,
        password: args.password,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await?;
    println!("faktory-test-server listening at {}", server.addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
