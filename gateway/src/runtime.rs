//! The gateway's tokio runtime: its worker threads (`--runtime-threads`)
//! and the wait before a thread sleeps on I/O (`--wake-coalesce-us`).
//!
//! Against a real Faktory most of the gateway's CPU went to its threads
//! falling asleep and being woken again, not to its own work: Faktory answers
//! one connection's commands one after another, so its replies, the workers'
//! messages and the ACK answers arrive one by one, and each one woke a
//! sleeping thread (measured with `perf` on a 2-core VM against Faktory
//! 1.10.0: a fifth of the gateway's CPU in the kernel's task switch under
//! `epoll_wait`, and about 25 µs of CPU per wakeup). So while events come
//! closer together than the coalescing time, a worker thread about to sleep
//! waiting for I/O first waits that long; everything that arrived meanwhile
//! is then handled in one go, and a busy gateway wakes about twice per
//! coalescing time instead of once per reply.
//!
//! The wait is only worth it under load: a lone caller (one `Push` after
//! another, say) would only be slowed by it. So each thread keeps a
//! [`ParkRhythm`]: it waits before parking only when its last park without
//! a wait ended sooner than the coalescing time, and after every wait it
//! parks once without one, to see how soon the next event really comes.
//!
//! Under steady load from many sources the wait stretches: while the work
//! a wait gathers takes at least twice what the following probe gathered,
//! each wait is a quarter longer than the last, up to two and a half
//! coalescing times; it falls back to one as soon as a wait gathers less
//! (a lone caller answering each reply gathers one event either way).
//! Against Faktory 1.10.0 on a 2-core VM this took the gateway's CPU per
//! job from 0.14 to 0.125 of Faktory's own (co-located, alternating runs)
//! with the same latency and `Push` rates.
//!
//! One thread is the default: one thread carries several times what one
//! Faktory can serve (the gateway spends ~15-20 µs of CPU per job), and a
//! second one adds wakeups between the threads.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};

use crate::Config;

/// Builds the runtime `config` asks for (`--runtime-threads`,
/// `--wake-coalesce-us`), with I/O and timers enabled.
///
/// # Errors
/// When the operating system refuses the runtime's threads or its I/O driver.
pub fn build(config: &Config) -> io::Result<Runtime> {
    let mut builder = Builder::new_multi_thread();
    builder
        .worker_threads(usize::try_from(config.runtime_threads).unwrap_or(1).max(1))
        .thread_name("gateway-worker")
        .enable_all();
    let window = config.wake_coalesce();
    if !window.is_zero() {
        // Both run on the worker thread: just before it parks (sleeps on the
        // I/O driver until something is ready), and when it wakes. What
        // arrives during the wait is found ready by the driver's poll, which
        // then does not sleep at all.
        builder
            .on_thread_park(move || {
                let wait = RHYTHM.with_borrow_mut(|r| r.before_park(Instant::now(), window));
                if let Some(wait) = wait {
                    std::thread::sleep(wait);
                }
                RHYTHM.with_borrow_mut(|r| r.parking(Instant::now()));
            })
            .on_thread_unpark(move || {
                RHYTHM.with_borrow_mut(|r| r.unparked(Instant::now(), window));
            });
    }
    builder.build()
}

thread_local! {
    /// The current worker thread's rhythm (threads outside a coalescing
    /// runtime never touch it).
    static RHYTHM: RefCell<ParkRhythm> = RefCell::new(ParkRhythm::default());
}

/// How many times the run after a wait must outlast the run after a probe
/// for the wait to count as gathering work (see [`ParkRhythm::stretch`]).
const GATHERING: u32 = 2;

/// The longest wait, in coalescing windows (as a fraction: 5/2).
const MAX_STRETCH: (u32, u32) = (5, 2);

/// One worker thread's record of how soon events follow each other, which
/// decides whether its next park waits first, and how long.
#[derive(Debug, Default)]
struct ParkRhythm {
    /// When the current park began (after any wait).
    parked_at: Option<Instant>,
    /// When the thread last woke, which starts the run the next park ends.
    unparked_at: Option<Instant>,
    /// The current park's wait, if it waited.
    waited: Option<Duration>,
    /// Whether the last park without a wait ended within the coalescing time.
    busy: bool,
    /// How long the run after the last wait lasted.
    run_after_wait: Option<Duration>,
    /// The wait the next waiting park takes (zero: the window).
    wait: Duration,
}

impl ParkRhythm {
    /// Whether the park about to begin at `now` should wait first, and how
    /// long.
    fn before_park(&mut self, now: Instant, window: Duration) -> Option<Duration> {
        let run = self
            .unparked_at
            .take()
            .map(|at| now.saturating_duration_since(at));
        match (self.waited, run) {
            (Some(_), run) => self.run_after_wait = run,
            (None, Some(run)) => self.stretch(run, window),
            (None, None) => {}
        }
        self.waited = self.busy.then(|| self.wait.max(window));
        self.waited
    }

    /// After a probe whose run lasted `probe_run`: the wait grows while the
    /// work a wait gathers takes at least [`GATHERING`] times what a probe
    /// gathers (many sources, steady load: each longer wait saves
    /// wakeups), up to [`MAX_STRETCH`] windows, and falls back to the
    /// window as soon as it does not (one caller answering each reply,
    /// whose every wait is pure delay, or a lull).
    fn stretch(&mut self, probe_run: Duration, window: Duration) {
        let gathering = self
            .run_after_wait
            .take()
            .is_some_and(|after_wait| after_wait >= probe_run * GATHERING);
        self.wait = if self.busy && gathering {
            let longest = window * MAX_STRETCH.0 / MAX_STRETCH.1;
            (self.wait.max(window) * 5 / 4).min(longest)
        } else {
            window
        };
    }

    /// The park (after any wait) begins at `now`.
    fn parking(&mut self, now: Instant) {
        self.parked_at = Some(now);
    }

    /// The park ended at `now`. Only a park without a wait tells how soon
    /// events come; after a wait the next park is such a probe.
    fn unparked(&mut self, now: Instant, window: Duration) {
        let gap = self
            .parked_at
            .take()
            .map(|at| now.saturating_duration_since(at));
        self.busy = self.waited.is_none() && gap.is_some_and(|gap| gap < window);
        self.unparked_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("faktory-gateway").chain(args.iter().copied()))
            .expect("valid flags")
    }

    /// Echoes `rounds` messages over loopback TCP on `runtime`, each sent
    /// only after the last came back, so every one needs a wakeup.
    fn echo_rounds(runtime: &Runtime, rounds: usize) {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut byte = [0u8; 1];
                while socket.read_exact(&mut byte).await.is_ok() {
                    socket.write_all(&byte).await.unwrap();
                }
            });
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut byte = [0u8; 1];
            for i in 0..rounds {
                client.write_all(&[i as u8]).await.unwrap();
                client.read_exact(&mut byte).await.unwrap();
                assert_eq!(byte[0], i as u8);
            }
            drop(client);
            server.await.unwrap();
        });
    }

    /// A thread's parks on a virtual clock.
    struct Thread {
        rhythm: ParkRhythm,
        now: Instant,
        window: Duration,
    }

    impl Thread {
        fn new() -> Self {
            Thread {
                rhythm: ParkRhythm::default(),
                now: Instant::now(),
                window: Duration::from_millis(1),
            }
        }

        /// One park whose event comes `gap` after it begins (after any
        /// wait), then a run of `run`; returns the wait the park took.
        fn park(&mut self, gap: Duration, run: Duration) -> Option<Duration> {
            let waited = self.rhythm.before_park(self.now, self.window);
            self.now += waited.unwrap_or_default();
            self.rhythm.parking(self.now);
            self.now += gap;
            self.rhythm.unparked(self.now, self.window);
            self.now += run;
            waited
        }
    }

    const QUICK: Duration = Duration::from_micros(40);
    const RUN: Duration = Duration::from_micros(30);

    #[test]
    fn waits_only_while_events_come_sooner_than_the_window() {
        let mut thread = Thread::new();
        let ms = Duration::from_millis(1);
        assert_eq!(thread.park(QUICK, RUN), None, "the first park never waits");
        // Under load: every park after a quick one waits, every park after
        // a wait is a probe without one.
        let under_load: Vec<_> = (0..6).map(|_| thread.park(QUICK, RUN)).collect();
        assert_eq!(under_load, [Some(ms), None, Some(ms), None, Some(ms), None]);
        // A lone caller whose events are further apart never waits.
        let slow = Duration::from_millis(3);
        let lone: Vec<_> = (0..4).map(|_| thread.park(slow, RUN)).collect();
        assert_eq!(
            lone,
            [Some(ms), None, None, None],
            "one wait left from the load, then none"
        );
    }

    /// Parks under steady load, the run after each wait `after_wait` long
    /// and after each probe `RUN`; returns the waits taken.
    fn steady(thread: &mut Thread, cycles: usize, after_wait: Duration) -> Vec<Duration> {
        (0..cycles)
            .filter_map(|_| {
                let waited = thread.park(Duration::ZERO, after_wait);
                thread.park(QUICK, RUN);
                waited
            })
            .collect()
    }

    #[test]
    fn the_wait_grows_only_while_it_gathers_more_than_a_probe() {
        let mut thread = Thread::new();
        thread.park(QUICK, RUN);
        let ms = Duration::from_millis(1);
        // One caller answering each reply: a wait gathers what a probe does.
        let one_caller = steady(&mut thread, 6, RUN);
        assert!(one_caller.iter().all(|&wait| wait == ms), "{one_caller:?}");
        // Many sources: a wait gathers several probes' work, and the wait
        // grows by a quarter each time, up to two and a half windows.
        let gathering = steady(&mut thread, 8, RUN * 5);
        assert!(gathering.windows(2).all(|w| w[1] >= w[0]), "{gathering:?}");
        assert!(gathering[1] > ms, "{gathering:?}");
        assert_eq!(*gathering.last().unwrap(), ms * 5 / 2, "{gathering:?}");
        // Back to the window as soon as a wait gathers less than twice what
        // a probe does.
        let after = steady(&mut thread, 3, RUN * 3 / 2);
        assert_eq!(after[1..], [ms, ms], "{after:?}");
        // And after a lull: a slow event ends the busy rhythm.
        steady(&mut thread, 8, RUN * 5);
        thread.park(Duration::from_millis(3), RUN);
        thread.park(QUICK, RUN);
        assert_eq!(thread.park(QUICK, RUN * 5), Some(ms));
    }

    #[test]
    fn runs_the_threads_asked_for() {
        let runtime = build(&config(&[])).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 1, "one thread by default");
        let runtime = build(&config(&["--runtime-threads", "3"])).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
    }

    #[test]
    fn coalescing_delays_but_loses_no_wakeup() {
        // Each echo needs the runtime to park and be woken twice (the echo
        // server's read, then the client's), quickly on loopback, so one of
        // the two parks waits 2 ms first; every wakeup still comes.
        let coalesced = build(&config(&["--wake-coalesce-us", "2000"])).unwrap();
        let started = std::time::Instant::now();
        echo_rounds(&coalesced, 50);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50),
            "50 round trips, each with a 2 ms wait: {took:?}"
        );
        let immediate = build(&config(&["--wake-coalesce-us", "0"])).unwrap();
        echo_rounds(&immediate, 50);
    }
}
