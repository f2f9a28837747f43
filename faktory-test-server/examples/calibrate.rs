//! Calibrates [`CostModel::faktory_1_10`] against a real Faktory: runs the same workloads
//! against an in-process test server with the model and, when `FAKTORY_URL` is set, against
//! that server, and prints jobs/s side by side. It then fits the model's constants to the real
//! server's rates (`faktory_test_server::cost_fit`), prints them, and measures the fitted model
//! the same way, so one run says how close the committed constants are on this machine and
//! which constants would be closer.
//!
//! ```text
//! FAKTORY_URL=tcp://127.0.0.1:7419 cargo run --release -p faktory-test-server --example calibrate
//! ```
//! Each point pre-fills a queue of its own (`calibrate-<random>-<point>-<round>`) with PUSHB,
//! measures for a fixed time, then removes that queue (`QUEUE REMOVE`, never `FLUSH`: others
//! may share the server). Every fetched job is ACKed, so nothing stays reserved.
//!
//! A real server's rate at one point moves by tens of percent between runs minutes apart, so
//! every point is measured `CALIBRATE_ROUNDS` times (default 3), the model and the real server
//! taking turns, and the table compares medians; the real server's lowest and highest rate are
//! printed beside its median, so a spread wider than the model's miss is visible.

mod raw;

use std::time::{Duration, Instant};

use faktory_test_server::cost_fit::{self, Observed, fit};
use faktory_test_server::{CostModel, ServerConfig, TestServer};
use raw::Client;

/// How long each point measures.
const MEASURE: Duration = Duration::from_millis(2500);
/// Connections that pre-fill a backlog.
const FILLERS: usize = 4;
const BATCH: usize = cost_fit::BATCH;
/// Rounds per point when `CALIBRATE_ROUNDS` is not set.
const DEFAULT_ROUNDS: usize = 3;
/// How far the model may be from the real server at a point and still count as calibrated.
const TOLERANCE: f64 = 0.25;

/// One measured workload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    /// `conns` connections, each: FETCH, wait, ACK, wait.
    FetchAck { conns: usize },
    /// `conns` connections, each: FETCH x depth written at once, then ACK x depth.
    Pipelined { conns: usize, depth: usize },
    /// `conns` connections, each: PUSHB of 100 jobs, wait.
    PushBatch { conns: usize },
    /// One connection: PUSH, wait.
    Push,
}

const POINTS: [Point; 12] = [
    Point::FetchAck { conns: 1 },
    Point::FetchAck { conns: 10 },
    Point::FetchAck { conns: 50 },
    Point::FetchAck { conns: 200 },
    Point::Pipelined { conns: 1, depth: 1 },
    Point::Pipelined { conns: 1, depth: 8 },
    Point::Pipelined {
        conns: 1,
        depth: 16,
    },
    Point::Pipelined {
        conns: 1,
        depth: 32,
    },
    Point::Pipelined {
        conns: 32,
        depth: 8,
    },
    Point::PushBatch { conns: 1 },
    Point::PushBatch { conns: 4 },
    Point::Push,
];

impl Point {
    fn label(self) -> String {
        match self {
            Point::FetchAck { conns } => format!("FETCH+ACK one at a time, {conns} conns"),
            Point::Pipelined { conns, depth } => {
                format!("FETCH x{depth} then ACK x{depth}, {conns} conns")
            }
            Point::PushBatch { conns } => format!("PUSHB batch {BATCH}, {conns} conns"),
            Point::Push => "PUSH one at a time, 1 conn".to_owned(),
        }
    }

    /// Jobs to queue before measuring: more than the fastest server seen does in `MEASURE`.
    fn backlog(self) -> usize {
        match self {
            Point::FetchAck { conns: 1 } | Point::Pipelined { conns: 1, .. } => 30_000,
            Point::FetchAck { .. } | Point::Pipelined { .. } => 60_000,
            Point::PushBatch { .. } | Point::Push => 0,
        }
    }
}

/// What one point measured.
struct Measured {
    jobs_per_sec: f64,
    /// A FETCH found the queue empty: the backlog was too small and the rate is too low.
    ran_dry: bool,
}

#[tokio::main]
async fn main() {
    let base = CostModel::faktory_1_10();
    let model = start_model(&base).await;
    let real_url = std::env::var("FAKTORY_URL").ok();
    let rounds = match std::env::var("CALIBRATE_ROUNDS") {
        Ok(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("CALIBRATE_ROUNDS must be a positive whole number, not {text:?}"),
        },
        Err(_) => DEFAULT_ROUNDS,
    };
    let run = format!("{:08x}", rand::random::<u32>());
    println!("model: {base:?}");
    if let Some(url) = &real_url {
        println!("real: {url}, {}", version(url).await);
    }
    println!("{rounds} rounds per point, {MEASURE:?} each; medians (real: lowest-highest)");
    print_header("model");
    let (mut rows, mut reals) = (Vec::new(), Vec::new());
    for (n, point) in POINTS.into_iter().enumerate() {
        let (mut modelled, mut real) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let queue = format!("calibrate-{run}-{n}-{round}");
            modelled.push(measure(&model.url(), point, &queue).await);
            if let Some(url) = &real_url {
                real.push(measure(url, point, &queue).await);
            }
        }
        let row = Row::new(point, &modelled, &real);
        row.print();
        rows.push(row);
        reals.push(real);
    }
    model.shutdown().await;
    let Some(url) = &real_url else { return };
    print_within(&rows);

    // The constants that would have matched this server, and how close they come.
    let fitted = fit(
        &base,
        &observed(&rows, |row| row.model),
        &observed(&rows, Row::real_median),
    );
    println!("\nfitted to this server: {fitted:?}");
    let fitted_server = start_model(&fitted).await;
    print_header("fitted");
    let mut fitted_rows = Vec::new();
    for (n, (point, real)) in POINTS.into_iter().zip(&reals).enumerate() {
        let mut modelled = Vec::new();
        for round in 0..rounds {
            let queue = format!("calibrate-{run}-fit-{n}-{round}");
            modelled.push(measure(&fitted_server.url(), point, &queue).await);
        }
        let fitted_row = Row::new(point, &modelled, real);
        fitted_row.print();
        fitted_rows.push(fitted_row);
    }
    fitted_server.shutdown().await;
    print_within(&fitted_rows);
    check_nothing_left(url, &run).await;
}

async fn start_model(model: &CostModel) -> TestServer {
    TestServer::start_with(ServerConfig {
        cost: Some(model.clone()),
        ..ServerConfig::default()
    })
    .await
    .expect("start the model server")
}

fn print_header(model: &str) {
    println!(
        "{:<40} {:>24} {:>12} {:>11}",
        "workload (jobs/s)",
        "real",
        model,
        format!("{model}/real")
    );
}

fn print_within(rows: &[Row]) {
    let within = rows.iter().filter(|row| row.within_tolerance()).count();
    println!(
        "model within {:.0}% of the real server's median: {within} of {} points",
        TOLERANCE * 100.0,
        rows.len()
    );
}

/// The fit's inputs, read from the rows by `rate`.
fn observed(rows: &[Row], rate: impl Fn(&Row) -> f64) -> Observed {
    let at = |wanted: Point| {
        let row = rows
            .iter()
            .find(|row| row.point == wanted)
            .unwrap_or_else(|| panic!("no calibration point {wanted:?}"));
        rate(row)
    };
    let depth = cost_fit::DEPTH;
    Observed {
        one_at_a_time: at(Point::FetchAck { conns: 1 }),
        pipelined: at(Point::Pipelined { conns: 1, depth }),
        one_at_a_time_busy: at(Point::FetchAck { conns: 200 }),
        pipelined_busy: at(Point::Pipelined { conns: 32, depth }),
        push: at(Point::Push),
        push_batch: at(Point::PushBatch { conns: 1 }),
    }
}

/// One line of the table: the medians of a point's rounds.
struct Row {
    point: Point,
    model: f64,
    /// Median, lowest and highest of the real server's rounds, if it was measured.
    real: Option<(f64, f64, f64)>,
    ran_dry: bool,
}

impl Row {
    fn new(point: Point, model: &[Measured], real: &[Measured]) -> Row {
        let rates = |rounds: &[Measured]| -> Vec<f64> {
            let mut rates: Vec<f64> = rounds.iter().map(|m| m.jobs_per_sec).collect();
            rates.sort_by(f64::total_cmp);
            rates
        };
        let model_rates = rates(model);
        let real_rates = rates(real);
        Row {
            point,
            model: median(&model_rates),
            real: (!real_rates.is_empty()).then(|| {
                (
                    median(&real_rates),
                    real_rates[0],
                    real_rates[real_rates.len() - 1],
                )
            }),
            ran_dry: model.iter().chain(real).any(|m| m.ran_dry),
        }
    }

    /// The real server's median (0 when it was not measured).
    fn real_median(&self) -> f64 {
        self.real.map_or(0.0, |(median, _, _)| median)
    }

    fn within_tolerance(&self) -> bool {
        self.real
            .is_some_and(|(real, _, _)| (self.model / real - 1.0).abs() <= TOLERANCE)
    }

    fn print(&self) {
        let (real_cell, ratio) = match self.real {
            Some((median, low, high)) => (
                format!("{median:.0} ({low:.0}-{high:.0})"),
                format!(
                    "{:.2}{}",
                    self.model / median,
                    if self.within_tolerance() { "" } else { " *" }
                ),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<40} {real_cell:>24} {:>12.0} {ratio:>11}",
            self.point.label(),
            self.model
        );
        if self.ran_dry {
            println!("  ! a FETCH found the queue empty in some round: that rate is too low");
        }
    }
}

/// The median of sorted, non-empty `rates`.
fn median(rates: &[f64]) -> f64 {
    let mid = rates.len() / 2;
    if rates.len() % 2 == 1 {
        rates[mid]
    } else {
        (rates[mid - 1] + rates[mid]) / 2.0
    }
}

/// Pre-fills `queue`, measures `point` against `url`, removes `queue`.
async fn measure(url: &str, point: Point, queue: &str) -> Measured {
    fill(url, queue, point.backlog()).await;
    let clients = match point {
        Point::FetchAck { conns } | Point::PushBatch { conns } | Point::Pipelined { conns, .. } => {
            conns
        }
        Point::Push => 1,
    };
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(Client::connect(url).await);
    }
    let started = Instant::now();
    let until = started + MEASURE;
    let tasks: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(n, client)| {
            let queue = queue.to_owned();
            tokio::spawn(async move {
                match point {
                    Point::FetchAck { .. } => fetch_ack(client, &queue, 1, until).await,
                    Point::Pipelined { depth, .. } => fetch_ack(client, &queue, depth, until).await,
                    Point::PushBatch { .. } => push(client, &queue, n, BATCH, until).await,
                    Point::Push => push(client, &queue, n, 1, until).await,
                }
            })
        })
        .collect();
    let (mut jobs, mut ran_dry) = (0, false);
    for task in tasks {
        let (done, dry) = task.await.expect("client task");
        jobs += done;
        ran_dry |= dry;
    }
    let secs = started.elapsed().as_secs_f64();
    remove_queue(url, queue).await;
    Measured {
        jobs_per_sec: jobs as f64 / secs,
        ran_dry,
    }
}

/// FETCH x `depth` then ACK x `depth` until `until`; returns jobs done and whether the queue
/// ran dry.
async fn fetch_ack(mut client: Client, queue: &str, depth: usize, until: Instant) -> (usize, bool) {
    let fetches = format!("FETCH {queue}\r\n").repeat(depth);
    let (mut payload, mut acks) = (Vec::new(), Vec::new());
    let mut done = 0;
    while Instant::now() < until {
        client.write(fetches.as_bytes()).await;
        acks.clear();
        let mut fetched = 0;
        for _ in 0..depth {
            client.reply(&mut payload).await;
            if !payload.is_empty() {
                raw::ack_for(&payload, &mut acks);
                fetched += 1;
            }
        }
        client.write(&acks).await;
        for _ in 0..fetched {
            client.reply(&mut payload).await;
        }
        done += fetched;
        if fetched < depth {
            return (done, true);
        }
    }
    (done, false)
}

/// PUSHB of `batch` jobs (or PUSH when `batch` is 1) until `until`; returns jobs pushed.
async fn push(
    mut client: Client,
    queue: &str,
    conn: usize,
    batch: usize,
    until: Instant,
) -> (usize, bool) {
    let (mut payload, mut out) = (Vec::new(), Vec::new());
    let mut done = 0;
    while Instant::now() < until {
        out.clear();
        let prefix = format!("{queue}-c{conn}-{done}");
        if batch == 1 {
            out.extend_from_slice(format!("PUSH {}\r\n", raw::job(queue, &prefix)).as_bytes());
        } else {
            raw::push_batch(queue, &prefix, batch, &mut out);
        }
        client.write(&out).await;
        client.reply(&mut payload).await;
        done += batch;
    }
    (done, false)
}

/// Queues `jobs` jobs on `queue` with PUSHB from a few connections.
async fn fill(url: &str, queue: &str, jobs: usize) {
    let batches = jobs.div_ceil(BATCH);
    let tasks: Vec<_> = (0..FILLERS)
        .map(|filler| {
            let (url, queue) = (url.to_owned(), queue.to_owned());
            tokio::spawn(async move {
                let mut client = Client::connect(&url).await;
                let (mut payload, mut out) = (Vec::new(), Vec::new());
                for batch in (filler..batches).step_by(FILLERS) {
                    out.clear();
                    raw::push_batch(&queue, &format!("{queue}-f{batch}"), BATCH, &mut out);
                    client.write(&out).await;
                    client.reply(&mut payload).await;
                    assert_eq!(payload, b"{}", "PUSHB refused jobs");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("filler task");
    }
}

async fn remove_queue(url: &str, queue: &str) {
    let mut client = Client::connect(url).await;
    client
        .write(format!("QUEUE REMOVE {queue}\r\n").as_bytes())
        .await;
    client.reply(&mut Vec::new()).await;
}

async fn info(url: &str) -> serde_json::Value {
    let mut client = Client::connect(url).await;
    client.write(b"INFO\r\n").await;
    let mut payload = Vec::new();
    client.reply(&mut payload).await;
    serde_json::from_slice(&payload).expect("INFO JSON")
}

async fn version(url: &str) -> String {
    let info = info(url).await;
    format!(
        "{} {}",
        info["server"]["description"].as_str().unwrap_or("?"),
        info["server"]["faktory_version"].as_str().unwrap_or("?")
    )
}

/// Warns if a queue of this run is still on the real server.
async fn check_nothing_left(url: &str, run: &str) {
    let info = info(url).await;
    let prefix = format!("calibrate-{run}-");
    let left: Vec<_> = info["faktory"]["queues"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, size)| name.starts_with(&prefix) && size.as_u64() != Some(0))
        .collect();
    if left.is_empty() {
        println!("left behind on {url}: nothing");
    } else {
        println!("left behind on {url}: {left:?}");
    }
}
