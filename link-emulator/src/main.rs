//! `link-emulator`: the delay proxy as a program, for benchmarks and checks
//! driven from outside Rust (the Python client's benchmark uses it).
//!
//! ```text
//! link-emulator --upstream 127.0.0.1:7421 --one-way-ms 25
//! ```
//! Prints the address it listens on (one line, `127.0.0.1:PORT`), then
//! proxies every connection to the upstream, delaying each direction by the
//! one-way latency, until interrupted.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use link_emulator::LinkEmulator;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "A TCP proxy that delays every byte by a fixed one-way latency")]
struct Config {
    /// Where each accepted connection is proxied to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Delay of each direction in milliseconds (the round trip is twice this).
    #[arg(long, default_value_t = 25)]
    one_way_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    let link =
        LinkEmulator::start(config.upstream, Duration::from_millis(config.one_way_ms)).await?;
    println!("{}", link.addr());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
