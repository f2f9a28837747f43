//! [`Pacer`]: serves one connection's commands at the pace of a [`CostModel`].
//!
//! Each connection keeps a timeline: a command starts when the one before it is done (plus the
//! turnaround if the connection waited for its client) and is done a service time (plus the
//! wake work after such a wait) later. The
//! connection executes a command at its start and writes its reply at its end, so a pipelined
//! client sees replies trickle in.
//!
//! The server's capacity is one clock shared by every connection (`Shared::capacity_free_at`):
//! each command adds its work divided by [`CostModel::capacity`] to it, and a command is done
//! no earlier than its own service time after its start and no earlier than that clock. An
//! idle server serves a command in its service time; a busy one is a queue that drains at
//! `capacity` commands' worth of work at once, whatever the number of connections. Connections
//! whose clients are slow to answer use less of it, as with a real server.
//!
//! Tokio's timers tick once a millisecond, far coarser than a 200 µs FETCH, so the pacer never
//! sleeps for less than [`TIMER_SLACK`]: a reply due within it goes out at once and the
//! timeline, not the wall clock, carries the debt. Replies may leave up to the slack early,
//! or a timer tick late; a late reply's lateness is given back to the next command, so over
//! any longer span the rate is the model's. One timer per wait, no spinning: the model
//! costs little CPU.

use std::time::Duration;

use parking_lot::Mutex;
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
    /// When the server's shared capacity is free, server-wide.
    capacity_free_at: &'a Mutex<Option<Instant>>,
    /// When the last command started is done.
    busy_until: Instant,
    /// When the command being started begins.
    start: Instant,
    /// When the input not yet served arrived (commands cannot start before it).
    arrived: Instant,
    /// The connection waited for its client since the last command started.
    waited: bool,
    /// The command being started follows such a wait, so it pays the wake work.
    woken: bool,
    /// How late the last replies went out (a timer fired after they were due).
    late: Duration,
}

impl<'a> Pacer<'a> {
    pub(crate) fn new(
        model: &'a CostModel,
        capacity_free_at: &'a Mutex<Option<Instant>>,
    ) -> Pacer<'a> {
        let now = Instant::now();
        Pacer {
            model,
            capacity_free_at,
            busy_until: now,
            start: now,
            arrived: now,
            waited: false,
            woken: false,
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
        self.woken = std::mem::take(&mut self.waited);
        if self.woken {
            self.start += self.model.turnaround;
        }
        wake_for(self.start, Instant::now())
    }

    /// The command scheduled by [`next_command`](Self::next_command) was executed as `work`.
    pub(crate) fn served(&mut self, work: Work) {
        let mut service = self.model.service_time(work);
        if std::mem::take(&mut self.woken) {
            service += self.model.wake;
        }
        let share = service.div_f64(self.model.capacity.max(f64::MIN_POSITIVE));
        // The work reaches the shared clock when it is executed, or at its start if a timer
        // fired late. A start still ahead (within the slack, e.g. after a turnaround) must not
        // move the clock there: that idle gap would be capacity lost to every connection.
        let entered = self.start.min(Instant::now());
        let free_at = {
            let mut free_at = self.capacity_free_at.lock();
            let done = free_at.map_or(entered, |at| at.max(entered)) + share;
            *free_at = Some(done);
            done
        };
        self.busy_until = (self.start + service).max(free_at);
    }

    /// When to wake so that every executed command is done, or `None` if they are (within
    /// the slack).
    pub(crate) fn all_done(&self) -> Option<Instant> {
        wake_for(self.busy_until, Instant::now())
    }

    /// A blocked FETCH was answered now: the timeline resumes from here.
    pub(crate) fn resume(&mut self) {
        self.arrived = Instant::now();
        self.busy_until = self.busy_until.max(self.arrived);
    }
}

/// The wake-up for something due at `due`, or `None` if it is due within the slack.
fn wake_for(due: Instant, now: Instant) -> Option<Instant> {
    let wake = due.checked_sub(TIMER_SLACK)?;
    (wake > now).then_some(wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FETCH 10 ms, capacity 1, and a turnaround short enough to fall within the timer slack
    /// (the other commands are not used).
    fn model() -> CostModel {
        CostModel {
            fetch: Duration::from_millis(10),
            turnaround: Duration::from_micros(900),
            wake: Duration::ZERO,
            capacity: 1.0,
            ..CostModel::faktory_1_10()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_clock_takes_work_when_it_is_executed() {
        let (model, clock) = (model(), Mutex::new(None));
        let mut pacer = Pacer::new(&model, &clock);
        let now = Instant::now();
        pacer.read(true);
        // The turnaround puts the start 0.9 ms ahead, within the slack: execute now.
        assert_eq!(pacer.next_command(), None);
        pacer.served(Work::Fetch);
        // The server's capacity is busy from now, not from the start ahead of it...
        assert_eq!(*clock.lock(), Some(now + Duration::from_millis(10)));
        // ...while the command itself is done a service time after its start.
        assert_eq!(pacer.busy_until, now + Duration::from_micros(10_900));
    }
}
