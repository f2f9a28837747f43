//! Flow control: how many jobs the worker asks the gateway to keep in flight.
//!
//! The window is `concurrency + prefetch`. `concurrency` keeps every handler
//! slot busy; `prefetch` hides the time a finished slot's credit takes to come
//! back as a new job. That time is the link's round trip *plus* the result
//! flush delay (a job's ack waits up to that long in the batch before the
//! gateway learns the slot is free) plus a small floor for scheduling. With
//! prefetch 0, throughput is capped at `concurrency / (RTT + flush delay)`:
//! even next to the gateway, a 5 ms flush delay alone caps 50 slots at 10k
//! jobs/s. Prefetch therefore tracks that bandwidth-delay product: the
//! measured completion rate × (RTT + flush delay + [`MIN_COVER`]) ×
//! [`HEADROOM`], capped by `max_prefetch` and by what the gateway accepts.
//!
//! The estimate is self-correcting in both directions:
//! - while the window limits throughput, the rate is `window / RTT`, so the
//!   target prefetch is `HEADROOM × window` and the window grows geometrically
//!   until something else (handlers, the gateway) becomes the limit;
//! - when handlers are slow, the rate is `concurrency / job time`, so prefetch
//!   falls to `HEADROOM × concurrency × (RTT + flush delay) / job time`: long
//!   jobs are not hoarded in this worker's buffer while other workers idle,
//!   whatever `max_prefetch` allows.

use std::time::Duration;

use tokio::time::Instant;

/// How much more than the measured bandwidth-delay product to prefetch; covers
/// bursts and estimation noise.
pub(crate) const HEADROOM: f64 = 2.0;

/// Added to the time a slot's credit is away, for task scheduling and the
/// gateway's own turnaround, which the ping RTT does not see.
pub(crate) const MIN_COVER: Duration = Duration::from_millis(1);

/// Buffered jobs are only given back once the oldest has waited at least
/// this long (or four round trips, if longer): fast handlers drain the buffer
/// well before, so only genuinely slow ones trigger releases.
pub(crate) const MIN_STALE: Duration = Duration::from_secs(1);

/// The shortest period over which a completion rate is measured.
pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_millis(200);

/// Adaptive window state; persists across reconnects.
#[derive(Debug, Clone)]
pub(crate) struct FlowControl {
    concurrency: u32,
    max_prefetch: u32,
    max_window: u32,
    /// How long a finished job's result may wait before it is sent.
    flush_delay: Duration,
    /// Smoothed RTT (TCP-style EWMA, gain 1/8).
    srtt: Option<Duration>,
    /// Smoothed completions per second.
    rate: f64,
    completed_in_sample: u64,
    sample_start: Instant,
    /// The window the gateway was last told.
    advertised: Option<u32>,
}

impl FlowControl {
    pub(crate) fn new(
        concurrency: u32,
        max_prefetch: u32,
        flush_delay: Duration,
        now: Instant,
    ) -> FlowControl {
        FlowControl {
            concurrency: concurrency.max(1),
            max_prefetch,
            max_window: u32::MAX,
            flush_delay,
            srtt: None,
            rate: 0.0,
            completed_in_sample: 0,
            sample_start: now,
            advertised: None,
        }
    }

    /// The gateway's largest accepted window (from `Welcome`).
    pub(crate) fn set_max_window(&mut self, max_window: u32) {
        if max_window > 0 {
            self.max_window = max_window;
        }
    }

    /// Records a round-trip measurement.
    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(srtt) => (srtt * 7 + rtt) / 8,
        });
    }

    /// The smoothed round-trip time, if measured.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Records `n` finished jobs.
    pub(crate) fn on_completed(&mut self, n: u64) {
        self.completed_in_sample += n;
    }

    /// Folds the completions since the last sample into the rate, if at least
    /// [`SAMPLE_PERIOD`] has passed. Rises quickly, falls slowly: a rate that
    /// is too low costs throughput at once, one that is too high only a
    /// slightly larger buffer for a while.
    pub(crate) fn sample(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.sample_start);
        if elapsed < SAMPLE_PERIOD {
            return;
        }
        let measured = self.completed_in_sample as f64 / elapsed.as_secs_f64();
        let gain = if measured > self.rate { 0.5 } else { 0.2 };
        self.rate += gain * (measured - self.rate);
        self.completed_in_sample = 0;
        self.sample_start = now;
    }

    /// The prefetch the measurements call for: enough jobs for the whole time
    /// a slot's credit is away (RTT + flush delay + [`MIN_COVER`]).
    pub(crate) fn prefetch(&self) -> u32 {
        let Some(rtt) = self.srtt else { return 0 };
        let away = rtt + self.flush_delay + MIN_COVER;
        let bdp = (self.rate * away.as_secs_f64() * HEADROOM).ceil();
        let room = self.max_window.saturating_sub(self.concurrency);
        (bdp.min(u32::MAX as f64) as u32)
            .min(self.max_prefetch)
            .min(room)
    }

    /// The window the measurements call for: `concurrency + prefetch`, at
    /// least 1 and at most the gateway's maximum.
    pub(crate) fn window(&self) -> u32 {
        self.concurrency
            .saturating_add(self.prefetch())
            .clamp(1, self.max_window.max(1))
    }

    /// How many of `buffered` unstarted jobs to give back to the gateway: the
    /// excess over the prefetch the measurements call for, once the oldest has
    /// waited long enough to show handlers are slower than the buffer assumed.
    /// Released jobs go to idle workers instead of waiting here.
    pub(crate) fn excess(&self, buffered: usize, oldest_wait: Duration) -> usize {
        let Some(rtt) = self.srtt else { return 0 };
        if oldest_wait < (rtt * 4).max(MIN_STALE) {
            return 0;
        }
        buffered.saturating_sub(self.prefetch() as usize)
    }

    /// Records that the gateway was told `window` (in `Hello` or an update).
    pub(crate) fn advertised(&mut self, window: u32) {
        self.advertised = Some(window);
    }

    /// A new window worth telling the gateway about: it differs from the one
    /// advertised by at least an eighth (or reaches a bound exactly), so noise
    /// does not turn into a stream of updates.
    pub(crate) fn take_update(&mut self) -> Option<u32> {
        let current = self.advertised?;
        let target = self.window();
        let delta = target.abs_diff(current);
        let at_bound = target == self.concurrency.min(self.max_window)
            || target == self.concurrency.saturating_add(self.max_prefetch);
        if delta == 0 || (delta < (current / 8).max(1) && !at_bound) {
            return None;
        }
        self.advertised = Some(target);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const FLUSH: Duration = Duration::from_millis(5);

    /// Simulates a window-limited worker: every RTT, `window` jobs finish.
    fn run_window_limited(
        flow: &mut FlowControl,
        start: Instant,
        rtt: Duration,
        periods: u32,
    ) -> Instant {
        let mut now = start;
        for _ in 0..periods {
            flow.on_rtt(rtt);
            let per_period = SAMPLE_PERIOD.as_secs_f64() / rtt.as_secs_f64();
            flow.on_completed((flow.window() as f64 * per_period) as u64);
            now += SAMPLE_PERIOD;
            flow.sample(now);
            if let Some(window) = flow.take_update() {
                assert!(window >= 1);
            }
        }
        now
    }

    #[test]
    fn no_measurements_means_window_is_concurrency() {
        let flow = FlowControl::new(50, 1000, FLUSH, Instant::now());
        assert_eq!(flow.window(), 50);
    }

    #[test]
    fn window_grows_past_the_latency_bound_up_to_the_cap() {
        let start = Instant::now();
        let mut flow = FlowControl::new(50, 1000, FLUSH, start);
        flow.advertised(flow.window());
        run_window_limited(&mut flow, start, 50 * MS, 30);
        assert_eq!(flow.window(), 1050, "grows until max_prefetch caps it");
    }

    #[test]
    fn prefetch_off_keeps_window_at_concurrency() {
        let start = Instant::now();
        let mut flow = FlowControl::new(50, 0, FLUSH, start);
        flow.advertised(flow.window());
        run_window_limited(&mut flow, start, 50 * MS, 30);
        assert_eq!(flow.window(), 50);
        assert_eq!(flow.take_update(), None);
    }

    #[test]
    fn slow_handlers_shrink_prefetch() {
        let start = Instant::now();
        // The default cap is high; slow handlers must still keep prefetch small.
        let mut flow = FlowControl::new(10, crate::settings::DEFAULT_MAX_PREFETCH, FLUSH, start);
        flow.advertised(flow.window());
        let now = run_window_limited(&mut flow, start, 50 * MS, 20);
        assert!(
            flow.window() > 200,
            "fast jobs: big window, got {}",
            flow.window()
        );
        // Now jobs are slow: 15 jobs/s, BDP = 15 × (50 + 5 + 1) ms = 0.84.
        let mut now = now;
        for _ in 0..100 {
            flow.on_completed(3);
            now += SAMPLE_PERIOD;
            flow.sample(now);
        }
        assert_eq!(flow.prefetch(), 2, "ceil(15/s × 56 ms × 2)");
        assert_eq!(flow.take_update(), Some(12));
    }

    #[test]
    fn stale_buffers_beyond_the_prefetch_are_given_back() {
        let start = Instant::now();
        let mut flow = FlowControl::new(10, 1000, FLUSH, start);
        assert_eq!(
            flow.excess(100, Duration::from_secs(60)),
            0,
            "nothing measured yet"
        );
        flow.on_rtt(50 * MS);
        flow.on_completed(2); // 10 jobs/s, smoothed to 5: prefetch ceil(5 × 0.056 × 2) = 1
        flow.sample(start + SAMPLE_PERIOD);
        assert_eq!(flow.prefetch(), 1);
        assert_eq!(flow.excess(100, 999 * MS), 0, "not waited long enough");
        assert_eq!(flow.excess(100, MIN_STALE), 99);
        assert_eq!(flow.excess(1, Duration::from_secs(60)), 0);
    }

    #[test]
    fn gateway_maximum_and_small_changes_are_respected() {
        let start = Instant::now();
        let mut flow = FlowControl::new(10, 5, FLUSH, start);
        flow.set_max_window(12);
        flow.advertised(10);
        run_window_limited(&mut flow, start, 50 * MS, 10);
        assert_eq!(flow.window(), 12);
        assert_eq!(
            flow.take_update(),
            None,
            "already told the gateway 12 via the loop"
        );
        let mut flow = FlowControl::new(100, 1000, FLUSH, start);
        flow.advertised(100);
        flow.on_rtt(10 * MS);
        // 500 jobs/s, smoothed to 250, × 16 ms × 2 -> prefetch 8: under 1/8 of 100
        flow.on_completed(100);
        flow.sample(start + SAMPLE_PERIOD);
        assert_eq!(flow.window(), 108);
        assert_eq!(flow.take_update(), None);
    }

    #[test]
    fn prefetch_covers_the_flush_delay_when_the_link_is_instant() {
        let start = Instant::now();
        let mut flow = FlowControl::new(50, crate::settings::DEFAULT_MAX_PREFETCH, FLUSH, start);
        flow.advertised(flow.window());
        // Next to the gateway: the credit of a finished slot is away for the
        // flush delay, not the (near-zero) RTT. Window-limited, every
        // `rtt + FLUSH` the whole window finishes; the window must grow.
        let rtt = Duration::from_micros(100);
        let mut now = start;
        for _ in 0..30 {
            flow.on_rtt(rtt);
            let cycle = (rtt + FLUSH).as_secs_f64();
            flow.on_completed((flow.window() as f64 * SAMPLE_PERIOD.as_secs_f64() / cycle) as u64);
            now += SAMPLE_PERIOD;
            flow.sample(now);
            flow.take_update();
        }
        assert!(
            flow.window() >= 1000,
            "grows past concurrency / flush delay, got {}",
            flow.window()
        );
        // Handler-limited at 24k jobs/s: enough buffered for the flush delay
        // and the floor, twice over.
        let mut flow = FlowControl::new(50, crate::settings::DEFAULT_MAX_PREFETCH, FLUSH, start);
        flow.on_rtt(rtt);
        for i in 1..=20 {
            flow.on_completed(4800);
            flow.sample(start + SAMPLE_PERIOD * i);
        }
        let prefetch = flow.prefetch();
        assert!(
            (280..=300).contains(&prefetch),
            "24k/s × 6.1 ms × 2 ≈ 293, got {prefetch}"
        );
    }
}
