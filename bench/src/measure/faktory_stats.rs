//! Faktory's own view of a scenario, read from `INFO` on a connection of
//! its own: jobs processed (acknowledged) server-wide, the reserved set
//! (jobs fetched and not yet acknowledged), and queue sizes.
//!
//! A job only counts for users once Faktory has its `ACK`: a worker-side
//! count runs ahead of that by whatever is finished but not yet
//! acknowledged, which through a gateway can be thousands of jobs. Both the
//! real Faktory 1.10 and the project's test server report
//! `faktory.total_processed` and `faktory.tasks.Busy.size`. The counts are
//! server-wide, so a scenario's rate is only its own while nothing else
//! runs against the same Faktory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faktory_gateway::faktory::Connection;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::workers::producer::connect;

/// How often the poller asks for `INFO`: often enough that a measurement
/// window's ends are within a few percent, rarely enough that Faktory
/// hardly notices.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The counts of one `INFO` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoCounts {
    /// `faktory.total_processed`: jobs acknowledged since Faktory started.
    pub processed: u64,
    /// `faktory.tasks.Busy.size`: jobs reserved (fetched, not yet
    /// acknowledged or failed).
    pub reserved: u64,
    /// `faktory.total_failures`: FAILs (and expired reservations) since
    /// Faktory started.
    pub failures: u64,
    /// `faktory.tasks.Retries.size`: jobs waiting in the retry set.
    pub retries: u64,
}

impl InfoCounts {
    /// Reads the counts from an `INFO` document; `None` when a field is
    /// missing.
    pub fn parse(info: &Value) -> Option<InfoCounts> {
        let faktory = info.get("faktory")?;
        Some(InfoCounts {
            processed: faktory.get("total_processed")?.as_u64()?,
            reserved: faktory.pointer("/tasks/Busy/size")?.as_u64()?,
            failures: faktory.get("total_failures")?.as_u64()?,
            retries: faktory.pointer("/tasks/Retries/size")?.as_u64()?,
        })
    }
}

/// Jobs waiting in `queue` according to an `INFO` document (0 when Faktory
/// does not list it).
pub fn queue_size(info: &Value, queue: &str) -> u64 {
    info.pointer("/faktory/queues")
        .and_then(|queues| queues.get(queue))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The latest reading of a [`InfoPoller`].
#[derive(Debug, Clone, Copy)]
pub struct InfoReading {
    /// When the reply arrived.
    pub at: Instant,
    /// What it said.
    pub counts: InfoCounts,
    /// Jobs waiting in the watched queue.
    pub queued: u64,
}

/// Peaks since the poller started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    /// Largest reserved set seen.
    pub reserved: u64,
    /// Largest worker window seen at the same instants (what the workers
    /// may hold unfinished: slots for direct workers, concurrency +
    /// prefetch for SDK workers).
    pub window: u64,
}

/// Reads the workers' current window.
type WindowSource = Box<dyn Fn() -> u64 + Send>;

struct Shared {
    latest: InfoReading,
    peaks: Peaks,
    window: Option<WindowSource>,
}

/// Polls `INFO` in the background and keeps the latest reading (with the
/// size of one watched queue) and the peaks.
pub struct InfoPoller {
    shared: Arc<Mutex<Shared>>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

impl InfoPoller {
    /// Connects to Faktory at `url`, takes a first reading, and keeps
    /// polling; `queue` is the queue whose size readings carry.
    ///
    /// Fails when the connection or the first `INFO` fails.
    pub async fn start(url: &str, queue: &str) -> Result<InfoPoller, Error> {
        let mut connection = connect(url).await?;
        let queue = queue.to_owned();
        let first = read(&mut connection, &queue).await?;
        let shared = Arc::new(Mutex::new(Shared {
            latest: first,
            peaks: Peaks {
                reserved: first.counts.reserved,
                window: 0,
            },
            window: None,
        }));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(poll(connection, queue, Arc::clone(&shared), cancel.clone()));
        Ok(InfoPoller {
            shared,
            cancel,
            task,
        })
    }

    /// From now on reads `window` at every poll for [`Peaks::window`] (the
    /// workers start after the poller, whose connection must not count as
    /// theirs).
    pub fn watch_window(&self, window: impl Fn() -> u64 + Send + 'static) {
        let mut shared = self.shared.lock();
        shared.peaks.window = shared.peaks.window.max(window());
        shared.window = Some(Box::new(window));
    }

    /// The latest reading.
    pub fn latest(&self) -> InfoReading {
        self.shared.lock().latest
    }

    /// The peaks so far.
    pub fn peaks(&self) -> Peaks {
        self.shared.lock().peaks
    }

    /// Stops polling.
    ///
    /// Fails when a poll had failed.
    pub async fn stop(self) -> Result<(), Error> {
        self.cancel.cancel();
        self.task
            .await
            .map_err(|e| Error::Setup(format!("info poller task: {e}")))?
    }
}

async fn poll(
    mut connection: Connection,
    queue: String,
    shared: Arc<Mutex<Shared>>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Only the tick is raced against cancellation: an INFO in flight
        // finishes, so the connection never stops mid-reply.
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let reading = read(&mut connection, &queue).await?;
        let mut shared = shared.lock();
        let window = shared.window.as_ref().map_or(0, |window| window());
        shared.latest = reading;
        shared.peaks.reserved = shared.peaks.reserved.max(reading.counts.reserved);
        shared.peaks.window = shared.peaks.window.max(window);
    }
    let _ = connection.end().await;
    Ok(())
}

/// One `INFO` round trip on `connection`.
///
/// Fails when the call fails.
pub async fn info(connection: &mut Connection) -> Result<Value, Error> {
    connection
        .info()
        .await
        .map_err(|e| Error::Protocol(format!("INFO: {e}")))
}

async fn read(connection: &mut Connection, queue: &str) -> Result<InfoReading, Error> {
    let document = info(connection).await?;
    let counts = InfoCounts::parse(&document)
        .ok_or_else(|| Error::Protocol(format!("INFO without the counts: {document}")))?;
    Ok(InfoReading {
        at: Instant::now(),
        counts,
        queued: queue_size(&document, queue),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_faktory_1_10_info() {
        // The shape of a real Faktory 1.10.0 INFO reply, trimmed.
        let info: Value = serde_json::json!({
            "faktory": {
                "total_failures": 3,
                "total_processed": 123456,
                "total_enqueued": 7,
                "queues": {"bench-ab12-direct-50-0ms-noop": 7},
                "tasks": {
                    "Busy": {"size": 99, "reaped": 0},
                    "Retries": {"size": 2, "reaped": 0},
                    "Dead": {"size": 0},
                },
            },
            "server": {"faktory_version": "1.10.0"},
        });
        assert_eq!(
            InfoCounts::parse(&info),
            Some(InfoCounts {
                processed: 123_456,
                reserved: 99,
                failures: 3,
                retries: 2,
            })
        );
        assert_eq!(queue_size(&info, "bench-ab12-direct-50-0ms-noop"), 7);
        assert_eq!(queue_size(&info, "other"), 0);
        assert_eq!(InfoCounts::parse(&serde_json::json!({"faktory": {}})), None);
    }

    #[tokio::test]
    async fn polls_the_test_server() {
        let server = faktory_test_server::TestServer::start().await.unwrap();
        let mut connection = connect(&server.url()).await.unwrap();
        crate::workers::producer::push_batch(
            &mut connection,
            "q",
            crate::runs::scenario::Workload::Noop,
            3,
        )
        .await
        .unwrap();
        let poller = InfoPoller::start(&server.url(), "q").await.unwrap();
        poller.watch_window(|| 42);
        assert_eq!(poller.latest().counts.processed, 0);
        assert_eq!(poller.latest().queued, 3);
        assert_eq!(poller.peaks().window, 42);
        poller.stop().await.unwrap();
        server.shutdown().await;
    }
}
