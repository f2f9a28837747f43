//! [`Metrics`]: the gateway's counters, gauges and histograms (Faktory
//! round trips, workers' heartbeat round trips), plain atomics shared through
//! `Arc`, rendered in the Prometheus text format by [`Metrics::render`]. The
//! HTTP server (`gateway/src/http/`) serves them as `GET /metrics`.
//!
//! - [`queues`]: per-queue job counters with a bounded label set.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub mod queues;

pub use queues::{QueueCounters, QueueEvent};

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

    /// Appends the series of this histogram; `labels` (`a="x",b="y"`, or
    /// empty) go on every line.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {count}");
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
    /// Jobs pushed, delivered, acked and failed, per queue.
    pub queues: QueueCounters,
    /// Round trips of the gateway's heartbeat pings on `Work` streams (to
    /// the worker and back, through every proxy in between).
    pub heartbeat_rtt: Histogram,
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
        let name = "faktory_gateway_worker_heartbeat_rtt_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Round-trip time of heartbeat pings to workers over their Work streams."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.heartbeat_rtt.render(&mut out, name, "");
        self.queues.render(&mut out);
        out
    }
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
        m.heartbeat_rtt.observe(Duration::from_millis(30));
        m.queues.add("mail", QueueEvent::Delivered, 4);
        let text = m.render();
        let rtt = "faktory_gateway_worker_heartbeat_rtt_seconds";
        assert!(
            text.contains(&format!("{rtt}_bucket{{le=\"0.05\"}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{rtt}_count 1\n")), "{text}");
        assert!(text.contains("faktory_gateway_queue_jobs_delivered_total{queue=\"mail\"} 4\n"));
    }
}
