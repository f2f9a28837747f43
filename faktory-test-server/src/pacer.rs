//! [`Pacer`]: serves one connection's commands at the pace of a [`CostModel`].
//!
//! Each connection keeps a timeline: a command starts when the one before it is done (plus the
//! turnaround if the connection waited for its client) and is done a service time later. The
//! connection executes a command at its start and writes its reply at its end, so a pipelined
//! client sees replies trickle in.
//!
//! Tokio's timers tick once a millisecond, far coarser than a 200 µs FETCH, so the pacer never
//! sleeps for less than [`TIMER_SLACK`]: a reply due within it goes out at once and the
//! timeline, not the wall clock, carries the debt. Replies may leave up to the slack early,
//! or a timer tick late; a late reply's lateness is given back to the next command, so over
//! any longer span the rate is the model's. One timer per wait, no spinning: the model
//! costs little CPU.
//!
//! The server-wide count of connections in service (for processor sharing) counts a connection
//! from the start of a command until its timeline runs out or it blocks in a FETCH.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::cost::{CostModel, Work};

/// The pacer does not sleep for a deadline closer than this (see the module docs).
const TIMER_SLACK: Duration = Duration::from_millis(1);
/// Lateness beyond this is the client's own pace, not a coarse timer's.
const MAX_LATE: Duration = Duration::from_millis(2);

/// One connection's service timeline.
#[derive(Debug)]
pub(crate) struct Pacer<'a> {
    model: &'a CostModel,
    /// Connections in service, server-wide.
    in_service: &'a AtomicUsize,
    /// Whether this connection is counted in `in_service`.
    counted: bool,
    /// When the last command started is done.
    busy_until: Instant,
    /// When the command being started begins.
    start: Instant,
    /// When the input not yet served arrived (commands cannot start before it).
    arrived: Instant,
    /// The connection waited for its client since the last command started.
    waited: bool,
    /// How late the last replies went out (a timer fired after they were due).
    late: Duration,
}

impl<'a> Pacer<'a> {
    pub(crate) fn new(model: &'a CostModel, in_service: &'a AtomicUsize) -> Pacer<'a> {
        let now = Instant::now();
        Pacer {
            model,
            in_service,
            counted: false,
            busy_until: now,
            start: now,
            arrived: now,
            waited: false,
            late: Duration::ZERO,
        }
    }

    /// More input arrived; if the read had to wait for the client, the next command pays the
    /// turnaround.
    pub(crate) fn read(&mut self, waited: bool) {
        // A client answering a late reply is late by as much; the timeline is not.
        let now = Instant::now();
        self.arrived = now
            .checked_sub(std::mem::take(&mut self.late))
            .unwrap_or(now);
        self.waited |= waited;
    }

    /// Every reply so far was written: note how late the last one was.
    pub(crate) fn replied(&mut self) {
        let late = Instant::now().saturating_duration_since(self.busy_until);
        self.late = late.min(MAX_LATE);
    }

    /// Schedules the next command. Returns when to wake before executing it (the previous
    /// command is done then, so its reply is due), or `None` to execute it now.
    pub(crate) fn next_command(&mut self) -> Option<Instant> {
        // From arrival, not from now: a late timer wake-up must not push the timeline back.
        self.start = self.busy_until.max(self.arrived);
        if std::mem::take(&mut self.waited) {
            self.start += self.model.turnaround;
        }
        self.count_in();
        wake_for(self.start, Instant::now())
    }

    /// The command scheduled by [`next_command`](Self::next_command) was executed as `work`.
    pub(crate) fn served(&mut self, work: Work) {
        let others = self.in_service.load(Ordering::Relaxed).saturating_sub(1);
        self.busy_until = self.start + self.model.service_time(work, others);
    }

    /// When to wake so that every executed command is done, or `None` if they are (within
    /// the slack).
    pub(crate) fn all_done(&self) -> Option<Instant> {
        wake_for(self.busy_until, Instant::now())
    }

    /// When this connection leaves service if nothing more arrives; `None` if it is out.
    pub(crate) fn leaves_service(&self) -> Option<Instant> {
        self.counted.then_some(self.busy_until)
    }

    /// The connection stops using the server: its timeline ran out, or a FETCH blocks.
    pub(crate) fn idle(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.in_service.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A blocked FETCH was answered now: the timeline resumes from here.
    pub(crate) fn resume(&mut self) {
        self.arrived = Instant::now();
        self.busy_until = self.busy_until.max(self.arrived);
    }

    fn count_in(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.in_service.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Pacer<'_> {
    fn drop(&mut self) {
        self.idle();
    }
}

/// The wake-up for something due at `due`, or `None` if it is due within the slack.
fn wake_for(due: Instant, now: Instant) -> Option<Instant> {
    let wake = due.checked_sub(TIMER_SLACK)?;
    (wake > now).then_some(wake)
}
