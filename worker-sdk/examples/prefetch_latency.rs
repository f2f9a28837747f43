//! Benchmark: how much prefetch buys across a slow link.
//!
//! Starts the Faktory test server and a gateway in this process, puts a
//! `link-emulator` delay proxy between the gateway and the worker (RTT 50 ms by
//! default), and runs no-op jobs with concurrency 50 twice in the same run:
//! once with prefetch off (`max_prefetch(0)`: window = concurrency, so at most
//! `concurrency / RTT` = 1,000 jobs/s) and once with adaptive prefetch on.
//!
//! ```text
//! cargo run --release -p faktory-gateway-worker --example prefetch_latency -- --seconds 10
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use faktory_gateway_worker::proto::{Job, PushRequest, gateway_client::GatewayClient};
use faktory_gateway_worker::{StopReason, Worker};
use faktory_test_server::{ServerHandle, TestServer};
use link_emulator::LinkEmulator;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, Parser)]
struct Args {
    /// Round-trip time the link adds, in milliseconds.
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// Handler slots.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Cap on prefetch in the "on" phase.
    #[arg(long, default_value_t = 1000)]
    max_prefetch: u32,
    /// Seconds measured per phase (after a warm-up of a quarter of that).
    #[arg(long, default_value_t = 8)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let faktory = TestServer::start().await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = listener.local_addr()?;
    let config = faktory_gateway::Config::try_parse_from([
        "faktory-gateway",
        "--faktory-url",
        &faktory.url(),
        "--metrics-listen",
        "off",
        "--redelivery-grace-ms",
        "0",
    ])?;
    let (stop_gateway, gateway_stopped) = oneshot::channel::<()>();
    let gateway = tokio::spawn(faktory_gateway::serve(config, listener, async {
        let _ = gateway_stopped.await;
    }));
    let link = LinkEmulator::start(gateway_addr, Duration::from_millis(args.rtt_ms) / 2).await?;
    let producer = tokio::spawn(keep_queue_full(gateway_addr, faktory.handle()));

    println!(
        "link RTT {} ms, concurrency {}, no-op jobs; latency bound without prefetch: {:.0} jobs/s",
        args.rtt_ms,
        args.concurrency,
        args.concurrency as f64 / (args.rtt_ms as f64 / 1000.0)
    );
    let off = phase(&args, link.addr(), 0).await?;
    let on = phase(&args, link.addr(), args.max_prefetch).await?;
    println!("prefetch off: {off:.0} jobs/s");
    println!("prefetch on:  {on:.0} jobs/s ({:.1}x)", on / off);

    producer.abort();
    let _ = stop_gateway.send(());
    gateway.await??;
    Ok(())
}

/// Runs one worker for the configured time; returns jobs/s after warm-up.
async fn phase(args: &Args, link: SocketAddr, max_prefetch: u32) -> anyhow::Result<f64> {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::builder()
        .gateway(format!("http://{link}"))
        .concurrency(args.concurrency)
        .max_prefetch(max_prefetch)
        .register("noop", |_job| async { Ok(()) })
        .with_graceful_shutdown(stopped)
        .build()?;
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    let warm_up = Duration::from_secs(args.seconds) / 4;
    tokio::time::sleep(warm_up).await;
    let start = (Instant::now(), stats.snapshot().succeeded);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for _ in 0..args.seconds {
        tick.tick().await;
        let s = stats.snapshot();
        println!(
            "  max_prefetch {max_prefetch:>5}: {:>7.0} jobs/s so far, window {:>5}, running {:>3}, prefetched {:>5}, rtt {:?}",
            (s.succeeded - start.1) as f64 / start.0.elapsed().as_secs_f64(),
            s.window,
            s.running,
            s.prefetched,
            s.rtt.unwrap_or_default(),
        );
    }
    let rate = (stats.snapshot().succeeded - start.1) as f64 / start.0.elapsed().as_secs_f64();
    let _ = stop.send(());
    match run.await?? {
        StopReason::Shutdown => {}
        other => println!("  worker stopped: {other:?}"),
    }
    Ok(rate)
}

/// Keeps at least 20,000 jobs queued, pushing through the gateway directly
/// (not across the slow link).
async fn keep_queue_full(gateway: SocketAddr, faktory: ServerHandle) -> anyhow::Result<()> {
    let mut client = GatewayClient::connect(format!("http://{gateway}"))
        .await?
        .max_encoding_message_size(64 << 20);
    loop {
        if faktory.queue_len("default") >= 20_000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let jobs = (0..5_000)
            .map(|_| Job {
                jobtype: "noop".into(),
                ..Job::default()
            })
            .collect();
        client.push(PushRequest { jobs }).await?;
    }
}
