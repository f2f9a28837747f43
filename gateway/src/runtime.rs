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
                let wait = RHYTHM.with_borrow_mut(|r| r.before_park());
                if wait {
                    std::thread::sleep(window);
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

/// One worker thread's record of how soon events follow each other, which
/// decides whether its next park waits the coalescing time first.
#[derive(Debug, Default)]
struct ParkRhythm {
    /// When the current park began (after any wait).
    parked_at: Option<Instant>,
    /// Whether the current park waited first.
    waited: bool,
    /// Whether the last park without a wait ended within the coalescing time.
    busy: bool,
}

impl ParkRhythm {
    /// Whether the park about to begin should wait first.
    fn before_park(&mut self) -> bool {
        self.waited = self.busy;
        self.waited
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
        self.busy = !self.waited && gap.is_some_and(|gap| gap < window);
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

    /// Runs one park of `rhythm` whose event comes `gap` after it begins;
    /// returns whether it waited first.
    fn park(rhythm: &mut ParkRhythm, start: Instant, gap: Duration, window: Duration) -> bool {
        let waited = rhythm.before_park();
        rhythm.parking(start);
        rhythm.unparked(start + gap, window);
        waited
    }

    #[test]
    fn waits_only_while_events_come_sooner_than_the_window() {
        let window = Duration::from_millis(1);
        let mut rhythm = ParkRhythm::default();
        let t = Instant::now();
        let quick = Duration::from_micros(40);
        let slow = Duration::from_millis(3);
        assert!(
            !park(&mut rhythm, t, quick, window),
            "the first park never waits"
        );
        // Under load: every park after a quick one waits, every park after
        // a wait is a probe without one.
        let under_load: Vec<bool> = (0..6)
            .map(|_| park(&mut rhythm, t, quick, window))
            .collect();
        assert_eq!(under_load, [true, false, true, false, true, false]);
        // A lone caller whose events are further apart never waits.
        let lone: Vec<bool> = (0..4).map(|_| park(&mut rhythm, t, slow, window)).collect();
        assert_eq!(
            lone,
            [true, false, false, false],
            "one wait left from the load, then none"
        );
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
