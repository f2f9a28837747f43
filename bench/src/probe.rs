//! The body every benchmark handler runs, whichever client calls it: note
//! the push → start latency from the job's stamp, do the workload's work,
//! count the job as done. Also builds the args producers put in jobs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::measure::{LatencyHistogram, unix_micros};
use crate::scenario::Workload;

/// Shared by all handlers of one scenario.
#[derive(Default)]
pub struct Probe {
    done: AtomicU64,
    latency: LatencyHistogram,
    work: Option<Duration>,
}

impl Probe {
    /// A probe whose handlers do `workload`'s work.
    pub fn new(workload: Workload) -> Probe {
        Probe {
            work: workload.handler_time(),
            ..Probe::default()
        }
    }

    /// Runs one job given its args array. The first element is the push
    /// stamp (microseconds since the epoch); 0 means "not a latency sample".
    pub async fn run(&self, args: &[Value]) {
        let stamp = args.first().and_then(Value::as_u64).unwrap_or(0);
        self.started(stamp);
        if let Some(work) = self.work {
            tokio::time::sleep(work).await;
        }
        self.finished();
    }

    /// Like [`Probe::run`], for handlers that see the args as raw JSON text.
    pub async fn run_raw(&self, args_json: &[u8]) {
        let args: Vec<Value> = serde_json::from_slice(args_json).unwrap_or_default();
        self.run(&args).await;
    }

    fn started(&self, stamp: u64) {
        if stamp != 0 {
            self.latency
                .record_micros(unix_micros().saturating_sub(stamp));
        }
    }

    fn finished(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs finished so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Push → handler start latencies of stamped jobs.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }
}

/// The args of one benchmark job: `[stamp, padding]` (padding omitted when
/// the workload has none). `stamp` 0 marks a throughput job.
pub fn job_args(workload: Workload, stamp: u64) -> Vec<Value> {
    let mut args = vec![Value::from(stamp)];
    let padding = workload.padding_len();
    if padding > 0 {
        args.push(Value::from("x".repeat(padding)));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_jobs_and_records_only_stamped_ones() {
        let probe = Probe::new(Workload::Noop);
        probe.run(&job_args(Workload::Noop, 0)).await;
        probe.run(&job_args(Workload::Noop, unix_micros())).await;
        let raw = serde_json::to_vec(&job_args(Workload::Args100B, unix_micros())).unwrap();
        probe.run_raw(&raw).await;
        assert_eq!(probe.done(), 3);
        assert_eq!(probe.latency().count(), 2);
    }

    #[test]
    fn args_have_the_workload_size() {
        let json = serde_json::to_vec(&job_args(Workload::Args10KiB, unix_micros())).unwrap();
        assert!((10_000..10_300).contains(&json.len()), "{}", json.len());
        let json = serde_json::to_vec(&job_args(Workload::Args100B, unix_micros())).unwrap();
        assert!((95..110).contains(&json.len()), "{}", json.len());
    }
}
