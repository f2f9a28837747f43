//! [`CostModel`]: how long a real Faktory takes to serve each command, so the test server can
//! answer at Faktory's pace instead of at memory speed.
//!
//! The model has three parts, each seen in measurements of Faktory 1.10.0 (see
//! `docs/test-server-model.md`):
//! - **One connection is served serially.** Faktory handles a connection's commands one after
//!   another, each waiting on its Redis round trips, so pipelining saves network round trips
//!   but not service time.
//! - **Waking costs.** A command that arrives after the connection sat waiting for its client
//!   starts [`CostModel::turnaround`] later and costs [`CostModel::wake`] more work (waking
//!   the connection's goroutine, the read and write system calls, Redis woken for it);
//!   pipelined commands already in the buffer pay neither. This is why pipelining beats one
//!   command at a time on one connection, and why a busy server clears more pipelined work
//!   than one-at-a-time work.
//! - **A server-wide capacity.** Redis and Faktory share two cores among all connections: at
//!   most [`CostModel::capacity`] commands' worth of work is done at once. Total throughput
//!   grows with connections until the server is busy, then stays there (Faktory 1.10.0 did
//!   about the same with 50 and with 200 connections); a connection whose client is slow to
//!   answer uses less of it.
//!
//! How the server applies the model over time is `pacer.rs`.

use std::time::Duration;

/// Service times of a Faktory server, used by a test server started with
/// [`ServerConfig::cost`](crate::ServerConfig::cost). Every duration is what one command costs
/// when it is the only one in service; see the module docs for how load stretches them.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// `FETCH` (served from a non-empty queue; a FETCH that blocks is then answered when a job
    /// arrives or after the fetch timeout, as without a model).
    pub fetch: Duration,
    /// `ACK`.
    pub ack: Duration,
    /// `FAIL`.
    pub fail: Duration,
    /// `PUSH` of one job.
    pub push: Duration,
    /// `PUSHB`, per command (added to `push_batch_job` per job in the batch).
    pub push_batch: Duration,
    /// `PUSHB`, per job in the batch.
    pub push_batch_job: Duration,
    /// `BEAT`.
    pub beat: Duration,
    /// `INFO`.
    pub info: Duration,
    /// Any other command (`QUEUE`, `FLUSH`, unknown verbs).
    pub other: Duration,
    /// How much later the first command read after the connection waited for its client
    /// starts (latency only: it does not use the server's capacity).
    pub turnaround: Duration,
    /// Work added to that first command's service time (it uses the server's capacity, so a
    /// busy server serves fewer one-at-a-time commands than pipelined ones).
    pub wake: Duration,
    /// How many commands' worth of work the server does at once (dimensionless, > 0): with
    /// every connection busy it serves `capacity / service time` commands per second.
    pub capacity: f64,
}

impl CostModel {
    /// Faktory 1.10.0 with Redis 7 on a 2-core VM, fitted by
    /// `cargo run --release -p faktory-test-server --example calibrate` (results in
    /// `docs/test-server-model.md`; machines of this kind differ by up to 4x, so recalibrate on
    /// yours). `FAIL`, `BEAT`, `INFO` and `other` were not measured: they are estimates from
    /// the Redis work each does, scaled with the FETCH+ACK pair.
    pub fn faktory_1_10() -> CostModel {
        CostModel {
            fetch: Duration::from_micros(317),
            ack: Duration::from_micros(250),
            fail: Duration::from_micros(267),
            push: Duration::from_micros(88),
            push_batch: Duration::from_micros(100),
            push_batch_job: Duration::from_micros(140),
            beat: Duration::from_micros(67),
            info: Duration::from_micros(668),
            other: Duration::from_micros(67),
            turnaround: Duration::from_micros(153),
            wake: Duration::ZERO,
            capacity: 3.82,
        }
    }

    /// Service time of `work` on an otherwise idle server.
    pub(crate) fn service_time(&self, work: Work) -> Duration {
        match work {
            Work::Fetch => self.fetch,
            Work::Ack => self.ack,
            Work::Fail => self.fail,
            Work::Push => self.push,
            Work::PushBatch { jobs } => {
                self.push_batch + self.push_batch_job * u32::try_from(jobs).unwrap_or(u32::MAX)
            }
            Work::Beat => self.beat,
            Work::Info => self.info,
            Work::Other => self.other,
        }
    }
}

/// What a command cost the server, as far as the model can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    Fetch,
    Ack,
    Fail,
    Push,
    PushBatch { jobs: usize },
    Beat,
    Info,
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cost_per_command_and_per_job() {
        let model = CostModel::faktory_1_10();
        assert_eq!(
            model.service_time(Work::PushBatch { jobs: 100 }),
            model.push_batch + model.push_batch_job * 100
        );
    }
}
