//! [`Metrics`]: the gateway's counters, gauges and the Faktory round-trip
//! histogram (plain atomics, shared through `Arc`), rendered in the
//! Prometheus text format by [`Metrics::render`] and served on their own port
//! by [`serve_metrics`], a tiny HTTP/1.1 responder (`GET /metrics`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (which may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the round-trip histogram buckets.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram of durations with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The Faktory commands whose round trips are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaktoryOp {
    /// `PUSH` / `PUSHB`.
    Push,
    /// `FETCH` (one pipelined round).
    Fetch,
    /// `ACK` (one pipelined round).
    Ack,
    /// `FAIL` (one pipelined round).
    Fail,
    /// `BEAT`.
    Beat,
}

impl FaktoryOp {
    const ALL: [FaktoryOp; 5] = [
        FaktoryOp::Push,
        FaktoryOp::Fetch,
        FaktoryOp::Ack,
        FaktoryOp::Fail,
        FaktoryOp::Beat,
    ];

    fn name(self) -> &'static str {
        match self {
            FaktoryOp::Push => "push",
            FaktoryOp::Fetch => "fetch",
            FaktoryOp::Ack => "ack",
            FaktoryOp::Fail => "fail",
            FaktoryOp::Beat => "beat",
        }
    }
}

/// Every metric the gateway exports. Share one instance through `Arc`; all
/// updates are lock-free.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `Push` calls answered (whole-call errors included).
    pub push_calls: Counter,
    /// Jobs Faktory accepted from `Push`.
    pub jobs_pushed: Counter,
    /// Jobs Faktory refused.
    pub jobs_rejected: Counter,
    /// Jobs that failed validation.
    pub jobs_invalid: Counter,
    /// Jobs answered UNAVAILABLE (Faktory unreachable or too slow).
    pub jobs_unavailable: Counter,
    /// `PUSHB` commands sent.
    pub pushb_sent: Counter,
    /// Jobs fetched from Faktory.
    pub jobs_fetched: Counter,
    /// Deliveries sent to workers (redeliveries included).
    pub jobs_delivered: Counter,
    /// Jobs acked to Faktory.
    pub jobs_acked: Counter,
    /// Jobs failed to Faktory.
    pub jobs_failed: Counter,
    /// Jobs released back to Faktory (PUSH copy + ACK).
    pub jobs_released: Counter,
    /// Jobs delivered again after a worker vanished or released them.
    pub jobs_redelivered: Counter,
    /// Jobs fetched and not yet acked, failed or released.
    pub jobs_in_flight: Gauge,
    /// Sum of the open window slots of all sessions.
    pub window_open: Gauge,
    /// Open `Work` sessions.
    pub sessions: Gauge,
    /// Settlements (ACK, FAIL, release) queued or sent and not yet answered
    /// by Faktory: mostly jobs workers finished that Faktory still holds
    /// reserved.
    pub settle_backlog: Gauge,
    /// Jobs fetched and at no worker yet (waiting for a session, or assigned
    /// and not yet sent): what a gateway crash would leave to Faktory's
    /// reservation expiry.
    pub jobs_undelivered: Gauge,
    /// Tasks (Faktory connections) in the fetch pool.
    pub fetch_connections: Gauge,
    /// Tasks (Faktory connections) in the settle pool.
    pub settle_connections: Gauge,
    push_latency: Histogram,
    fetch_latency: Histogram,
    ack_latency: Histogram,
    fail_latency: Histogram,
    beat_latency: Histogram,
}

impl Metrics {
    /// A fresh set of metrics, all zero.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The round-trip histogram of one Faktory command.
    pub fn faktory_latency(&self, op: FaktoryOp) -> &Histogram {
        match op {
            FaktoryOp::Push => &self.push_latency,
            FaktoryOp::Fetch => &self.fetch_latency,
            FaktoryOp::Ack => &self.ack_latency,
            FaktoryOp::Fail => &self.fail_latency,
            FaktoryOp::Beat => &self.beat_latency,
        }
    }

    /// Records one Faktory round trip.
    pub fn observe_faktory(&self, op: FaktoryOp, elapsed: Duration) {
        self.faktory_latency(op).observe(elapsed);
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &Counter, &str); 12] = [
            ("push_calls", &self.push_calls, "Push calls answered."),
            (
                "jobs_pushed",
                &self.jobs_pushed,
                "Jobs Faktory accepted from Push.",
            ),
            (
                "jobs_rejected",
                &self.jobs_rejected,
                "Pushed jobs Faktory refused.",
            ),
            (
                "jobs_invalid",
                &self.jobs_invalid,
                "Pushed jobs that failed validation.",
            ),
            (
                "jobs_unavailable",
                &self.jobs_unavailable,
                "Pushed jobs answered UNAVAILABLE.",
            ),
            (
                "pushb_sent",
                &self.pushb_sent,
                "PUSHB commands sent to Faktory.",
            ),
            (
                "jobs_fetched",
                &self.jobs_fetched,
                "Jobs fetched from Faktory.",
            ),
            (
                "jobs_delivered",
                &self.jobs_delivered,
                "Deliveries sent to workers.",
            ),
            ("jobs_acked", &self.jobs_acked, "Jobs acked to Faktory."),
            ("jobs_failed", &self.jobs_failed, "Jobs failed to Faktory."),
            (
                "jobs_released",
                &self.jobs_released,
                "Jobs released back to Faktory.",
            ),
            (
                "jobs_redelivered",
                &self.jobs_redelivered,
                "Jobs redelivered to a worker.",
            ),
        ];
        for (name, counter, help) in counters {
            let _ = writeln!(out, "# HELP faktory_gateway_{name}_total {help}");
            let _ = writeln!(out, "# TYPE faktory_gateway_{name}_total counter");
            let _ = writeln!(out, "faktory_gateway_{name}_total {}", counter.get());
        }
        let gauges: [(&str, &Gauge, &str); 7] = [
            (
                "jobs_in_flight",
                &self.jobs_in_flight,
                "Jobs fetched and not yet finished.",
            ),
            (
                "window_open",
                &self.window_open,
                "Open window slots over all sessions.",
            ),
            ("sessions", &self.sessions, "Open Work sessions."),
            (
                "settle_backlog",
                &self.settle_backlog,
                "Acks, fails and releases not yet answered by Faktory.",
            ),
            (
                "jobs_undelivered",
                &self.jobs_undelivered,
                "Jobs fetched and at no worker yet (left to Faktory's reservation expiry if the gateway crashed).",
            ),
            (
                "fetch_connections",
                &self.fetch_connections,
                "Faktory connections in the fetch pool.",
            ),
            (
                "settle_connections",
                &self.settle_connections,
                "Faktory connections in the settle pool.",
            ),
        ];
        for (name, gauge, help) in gauges {
            let _ = writeln!(out, "# HELP faktory_gateway_{name} {help}");
            let _ = writeln!(out, "# TYPE faktory_gateway_{name} gauge");
            let _ = writeln!(out, "faktory_gateway_{name} {}", gauge.get());
        }
        let name = "faktory_gateway_faktory_roundtrip_seconds";
        let _ = writeln!(out, "# HELP {name} Round-trip time of Faktory commands.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for op in FaktoryOp::ALL {
            let labels = format!("command=\"{}\"", op.name());
            self.faktory_latency(op).render(&mut out, name, &labels);
        }
        out
    }
}

/// Longest request head the metrics endpoint reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `cancel` fires. Every other path
/// gets 404. One short-lived task per connection; the connection is closed
/// after each response.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let tasks = TaskTracker::new();
    loop {
        // Both arms are cancellation-safe: accept() loses nothing when dropped.
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let metrics = metrics.clone();
                tasks.spawn(async move {
                    if let Err(error) = answer(stream, &metrics).await {
                        tracing::debug!(%error, "metrics request failed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if read.is_err() {
        return Ok(());
    }
    read.unwrap_or(Ok(()))?;
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        (b"GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_counters_gauges_and_histogram() {
        let m = Metrics::new();
        m.jobs_pushed.add(3);
        m.sessions.inc();
        m.sessions.inc();
        m.sessions.dec();
        m.observe_faktory(FaktoryOp::Push, Duration::from_micros(700));
        m.observe_faktory(FaktoryOp::Push, Duration::from_secs(10));
        let text = m.render();
        assert!(
            text.contains("faktory_gateway_jobs_pushed_total 3\n"),
            "{text}"
        );
        assert!(text.contains("faktory_gateway_sessions 1\n"));
        let hist = "faktory_gateway_faktory_roundtrip_seconds";
        assert!(text.contains(&format!(
            "{hist}_bucket{{command=\"push\",le=\"0.0005\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "{hist}_bucket{{command=\"push\",le=\"0.001\"}} 1\n"
        )));
        assert!(text.contains(&format!("{hist}_bucket{{command=\"push\",le=\"5\"}} 1\n")));
        assert!(text.contains(&format!(
            "{hist}_bucket{{command=\"push\",le=\"+Inf\"}} 2\n"
        )));
        assert!(text.contains(&format!("{hist}_count{{command=\"fetch\"}} 0\n")));
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn http_endpoint_serves_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Metrics::new();
        m.jobs_acked.add(7);
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve_metrics(listener, m.clone(), cancel.clone()));
        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("faktory_gateway_jobs_acked_total 7\n"));
        let missing = get(addr, "/nope").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        cancel.cancel();
        server.await.unwrap();
    }
}
