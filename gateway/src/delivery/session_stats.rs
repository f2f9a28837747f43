//! [`SessionStats`]: what one session has seen of its worker, for the
//! workers listing (`GET /v1/workers`, `Admin.ListWorkers`): when it
//! connected, results it sent (done and failed), their rate over the last
//! minute and the latest heartbeat round trip. The session task writes
//! them; listings read them through the dispatcher's registry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Seconds the completion rate looks back over.
pub(crate) const RATE_WINDOW_SECS: u64 = 60;

/// Counters of one session, shared between its task and the registry.
#[derive(Debug)]
pub(crate) struct SessionStats {
    /// When the session opened, Unix milliseconds.
    pub(crate) connected_unix_ms: i64,
    done: AtomicU64,
    failed: AtomicU64,
    /// Latest heartbeat round trip in microseconds; 0 = not measured yet.
    rtt_micros: AtomicU64,
    recent: Mutex<Recent>,
}

/// Results per second of the last [`RATE_WINDOW_SECS`] seconds, in a ring.
#[derive(Debug)]
struct Recent {
    started: Instant,
    /// `buckets[s % RATE_WINDOW_SECS]` counts second `s` since `started`.
    buckets: [u64; RATE_WINDOW_SECS as usize],
    /// The latest second written to.
    second: u64,
}

impl Recent {
    /// Moves the ring forward to second `now`, zeroing the seconds skipped.
    fn advance(&mut self, now: u64) {
        if now <= self.second {
            return;
        }
        let skipped = (now - self.second).min(RATE_WINDOW_SECS);
        for s in (now + 1 - skipped)..=now {
            self.buckets[(s % RATE_WINDOW_SECS) as usize] = 0;
        }
        self.second = now;
    }

    fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs()
    }
}

impl SessionStats {
    /// Fresh counters for a session opening now.
    pub(crate) fn new(connected_unix_ms: i64) -> SessionStats {
        SessionStats {
            connected_unix_ms,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            recent: Mutex::new(Recent {
                started: Instant::now(),
                buckets: [0; RATE_WINDOW_SECS as usize],
                second: 0,
            }),
        }
    }

    /// Records `done` acks and `failed` fails the worker sent.
    pub(crate) fn record_results(&self, done: u64, failed: u64) {
        self.done.fetch_add(done, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        let mut recent = self.recent.lock();
        let second = recent.second_of(Instant::now());
        recent.advance(second);
        recent.buckets[(second % RATE_WINDOW_SECS) as usize] += done + failed;
    }

    /// Records a heartbeat round trip.
    pub(crate) fn record_rtt(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.rtt_micros.store(micros, Ordering::Relaxed);
    }

    /// Acks the worker sent.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Fails the worker sent.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The latest heartbeat round trip, if one was measured.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// Results (acks and fails) per second over the last minute, or over
    /// the session's life when it is younger (at least one second).
    pub(crate) fn per_second(&self) -> f64 {
        let now = Instant::now();
        let mut recent = self.recent.lock();
        let second = recent.second_of(now);
        recent.advance(second);
        let total: u64 = recent.buckets.iter().sum();
        let span = now
            .saturating_duration_since(recent.started)
            .as_secs_f64()
            .clamp(1.0, RATE_WINDOW_SECS as f64);
        total as f64 / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_results_and_their_rate_over_the_last_minute() {
        let stats = SessionStats::new(1_000);
        assert_eq!(stats.per_second(), 0.0);
        assert_eq!(stats.rtt(), None);
        stats.record_results(10, 2);
        assert_eq!((stats.done(), stats.failed()), (10, 2));
        // Younger than a second: counted over one second.
        assert_eq!(stats.per_second(), 12.0);
        tokio::time::advance(Duration::from_secs(30)).await;
        stats.record_results(18, 0);
        assert!(
            (stats.per_second() - 1.0).abs() < 0.01,
            "{}",
            stats.per_second()
        );
        // 61 s after the first results only the later ones count.
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(
            (stats.per_second() - 0.3).abs() < 0.01,
            "{}",
            stats.per_second()
        );
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(stats.per_second(), 0.0);
        assert_eq!((stats.done(), stats.failed()), (28, 2));
        stats.record_rtt(Duration::from_millis(42));
        assert_eq!(stats.rtt(), Some(Duration::from_millis(42)));
    }
}
