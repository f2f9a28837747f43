//! `faktory-test-server`: run the Faktory stand-in on a TCP port (for demos, benchmarks and the
//! other-language examples).
//!
//! By default it serves commands at the pace of a real Faktory 1.10.0
//! (`--cost-model faktory-1.10`, see `docs/test-server-model.md`); `--cost-model none` answers
//! as fast as memory allows.

use std::net::SocketAddr;

use clap::Parser;
use faktory_test_server::{CostModel, ServerConfig, TestServer};

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
    /// How fast to answer: like a real Faktory 1.10.0, or as fast as possible.
    #[arg(
        long,
        env = "FAKTORY_TEST_SERVER_COST_MODEL",
        value_enum,
        default_value = "faktory-1.10"
    )]
    cost_model: CostModelName,
}

/// The `--cost-model` choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CostModelName {
    /// Service times calibrated against Faktory 1.10.0 ([`CostModel::faktory_1_10`]).
    #[value(name = "faktory-1.10")]
    Faktory110,
    /// No model: answer at memory speed.
    None,
}

impl CostModelName {
    fn model(self) -> Option<CostModel> {
        match self {
            CostModelName::Faktory110 => Some(CostModel::faktory_1_10()),
            CostModelName::None => None,
        }
    }
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
        cost: args.cost_model.model(),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await?;
    println!(
        "faktory-test-server listening at {} (cost model: {:?})",
        server.addr(),
        args.cost_model
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_model_defaults_to_faktory_and_can_be_turned_off() {
        let args = Args::try_parse_from(["faktory-test-server"]).unwrap();
        assert_eq!(args.cost_model.model(), Some(CostModel::faktory_1_10()));
        let args = Args::try_parse_from(["faktory-test-server", "--cost-model", "none"]).unwrap();
        assert_eq!(args.cost_model.model(), None);
        assert!(Args::try_parse_from(["faktory-test-server", "--cost-model", "fast"]).is_err());
    }
}
