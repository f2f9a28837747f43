//! The body every benchmark handler runs, whichever client calls it: note
//! the push → start latency from the job's stamp, do the workload's work,
//! count the job as done. Also builds the args and the Faktory job JSON
//! producers push.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::measure::process_stats::{LatencyHistogram, unix_micros};
use crate::runs::scenario::{JOBTYPE, Workload};

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

/// A jid unique to this process run: a per-process prefix from the clock
/// and a counter.
pub fn next_jid() -> String {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| unix_micros() ^ u64::from(std::process::id()));
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:012x}{:012x}",
        *PREFIX & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Appends one Faktory job (JSON object) for `queue` to `out`.
pub fn write_job_json(out: &mut Vec<u8>, queue: &str, workload: Workload, stamp: u64) {
    let job = serde_json::json!({
        "jid": next_jid(),
        "jobtype": JOBTYPE,
        "queue": queue,
        "args": job_args(workload, stamp),
        // Faktory's default, spelled out: the `faktory` crate's workers
        // cannot deserialize a job without it.
        "reserve_for": 1800,
    });
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &job);
}

/// A JSON array of `count` jobs for `PUSHB`.
pub fn jobs_array_json(queue: &str, workload: Workload, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (64 + workload.padding_len()) + 2);
    out.push(b'[');
    for index in 0..count {
        if index > 0 {
            out.push(b',');
        }
        write_job_json(&mut out, queue, workload, 0);
    }
    out.push(b']');
    out
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
    fn job_arrays_are_valid_json_with_unique_jids() {
        let array: Vec<Value> =
            serde_json::from_slice(&jobs_array_json("q", Workload::Noop, 3)).unwrap();
        assert_eq!(array.len(), 3);
        assert_ne!(array[0]["jid"], array[1]["jid"]);
        assert_eq!(array[2]["queue"], "q");
        assert_eq!(array[2]["jobtype"], JOBTYPE);
    }

    #[test]
    fn args_have_the_workload_size() {
        let json = serde_json::to_vec(&job_args(Workload::Args10KiB, unix_micros())).unwrap();
        assert!((10_000..10_300).contains(&json.len()), "{}", json.len());
        let json = serde_json::to_vec(&job_args(Workload::Args100B, unix_micros())).unwrap();
        assert!((95..110).contains(&json.len()), "{}", json.len());
    }
}
