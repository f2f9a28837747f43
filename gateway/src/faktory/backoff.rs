//! [`Backoff`] (exponential with jitter) and [`connect_with_retry`], which keeps reconnecting
//! to Faktory until it succeeds, hits an error that retrying cannot fix, or is cancelled.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::connection::{ConnectOptions, Connection};
use super::error::Error;
use super::handshake::Identity;
use super::url::FaktoryUrl;

/// Exponential backoff with jitter: the n-th delay is drawn uniformly from `[d/2, d]` where
/// `d = min(max, min * 2^n)`, so many clients that lost the same server spread out their
/// reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max` (`max` is raised to `min` if lower).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the ceiling until `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let floor_nanos = ceiling_nanos / 2;
        Duration::from_nanos(rand::rng().random_range(floor_nanos..=ceiling_nanos))
    }

    /// Starts over from `min` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays have been handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// [`connect_with_retry_using`] with [`ConnectOptions::default`].
///
/// # Errors
/// As [`connect_with_retry_using`].
pub async fn connect_with_retry(
    url: &FaktoryUrl,
    identity: Option<&Identity>,
    backoff: &Backoff,
    cancel: &CancellationToken,
) -> Result<Connection, Error> {
    connect_with_retry_using(url, identity, &ConnectOptions::default(), backoff, cancel).await
}

/// Connects, retrying retryable failures ([`Error::is_retryable`]: unreachable server, dropped
/// connection, timeouts) after delays from a copy of `backoff`, until it succeeds or `cancel`
/// fires.
///
/// # Errors
/// [`Error::Cancelled`] when `cancel` fires first; the first non-retryable error (wrong
/// password, bad TLS configuration or certificate, ...) at once.
pub async fn connect_with_retry_using(
    url: &FaktoryUrl,
    identity: Option<&Identity>,
    options: &ConnectOptions,
    backoff: &Backoff,
    cancel: &CancellationToken,
) -> Result<Connection, Error> {
    let mut backoff = backoff.clone();
    loop {
        // Both arms are cancellation-safe: a half-done connect is simply dropped.
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            attempt = Connection::connect_with(url, identity, options) => attempt,
        };
        let error = match attempt {
            Ok(conn) => {
                if backoff.attempts() > 0 {
                    tracing::info!(url = %url, attempts = backoff.attempts(), "reconnected to faktory");
                }
                return Ok(conn);
            }
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::warn!(url = %url, error = %error, cause = ?std::error::Error::source(&error), ?delay, "cannot connect to faktory; retrying");
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_cap() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max);
        for n in 0..40u32 {
            let ceiling = min.saturating_mul(2u32.saturating_pow(n)).min(max);
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {n}: {d:?} vs {ceiling:?}"
            );
        }
        assert_eq!(b.attempts(), 40);
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "20 draws from [0.5 s, 1 s] were all equal");
    }

    #[test]
    fn max_below_min_is_raised() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_millis(1));
        assert!(b.next_delay() >= Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_retrying() {
        // A port nobody listens on: bind, read the port, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = FaktoryUrl::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { connect_with_retry(&url, None, &Backoff::default(), &cancel).await }
        });
        // Let it fail and back off a few times on virtual time.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!task.is_finished());
        cancel.cancel();
        let result = task.await.unwrap();
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    }
}
