//! Reconnect delays for Faktory Gateway and its worker SDK: [`Backoff`], exponential growth with
//! "equal jitter", so many clients that lost the same server at the same moment spread out their
//! reconnects instead of retrying in lockstep.
//!
//! The gateway uses it between attempts to reach Faktory (`faktory_gateway::faktory::Backoff`
//! is this type, with `connect_with_retry` beside it in the gateway), the SDK between attempts to
//! reach a gateway.
//!
//! # Why a crate of its own
//! The gateway and the SDK do not depend on each other, and the wire contract
//! (`faktory-gateway-proto`) is no place for reconnect policy, so the one shared home is this
//! crate. The crates.io crate `exponential-backoff` (2.1.1) was considered and does not fit: its
//! jitter draws a delay either below `d` or 1.25–1.5 times above it before clamping to
//! `[min, max]` (so half the delays exceed `d`, the first delay is never below `min`, and with
//! `min == max` there is no jitter at all); it has no reset (a new iterator instead) and ends
//! after a fixed number of attempts. The semantics here (every delay within `[d/2, d]`, capped
//! at `max`, [`Backoff::reset`]) are what the gateway's and the SDK's tests assert.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with equal jitter: the n-th delay is drawn uniformly from `[d/2, d]`
/// where `d = min(max, min * 2^n)`.
///
/// ```
/// use std::time::Duration;
/// use faktory_gateway_backoff::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// backoff.reset(); // after a success: the next delay is short again
/// ```
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

    /// The worker SDK's test, moved here with its `Backoff`.
    #[test]
    fn delays_grow_within_bounds_and_reset() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::new(min, max);
        let mut ceiling = min;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
