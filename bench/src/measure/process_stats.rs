//! Measurement primitives: a lock-free latency histogram, wall-clock
//! stamps, per-process CPU time and peak RSS read from `/proc`, and counts of
//! established TCP connections to a port read from `/proc/net/tcp{,6}`.
//!
//! Everything here reads Linux `/proc`; on other systems the process and
//! connection figures come back as `None`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, the stamp producers put in a job's
/// first argument so the handler can compute push → start latency.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Relative width of one histogram bucket: 2%, so percentiles are within 2%.
const BUCKET_GROWTH: f64 = 1.02;
/// Enough buckets to cover well over an hour in microseconds.
const BUCKETS: usize = 1200;

/// A histogram of durations in microseconds with logarithmic buckets (2%
/// resolution), safe to record into from many tasks without locks.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one duration given in microseconds.
    pub fn record_micros(&self, micros: u64) {
        let index = bucket_index(micros);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q`-quantile (`0.0..=1.0`), or `None` when nothing was recorded.
    /// Reported as the upper edge of its bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Duration::from_micros(bucket_upper_micros(index)));
            }
        }
        Some(Duration::from_micros(bucket_upper_micros(BUCKETS - 1)))
    }
}

fn bucket_index(micros: u64) -> usize {
    if micros == 0 {
        return 0;
    }
    let index = ((micros as f64).ln() / BUCKET_GROWTH.ln()).floor() as usize + 1;
    index.min(BUCKETS - 1)
}

fn bucket_upper_micros(index: usize) -> u64 {
    if index == 0 {
        return 0;
    }
    BUCKET_GROWTH.powi(index as i32).ceil() as u64
}

/// What `/proc/<pid>` says about one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSample {
    /// User plus system CPU time so far, in seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`) since start or the last
    /// [`reset_peak_rss`], in bytes.
    pub peak_rss_bytes: u64,
}

/// Clock ticks per second used by `/proc/<pid>/stat` (`USER_HZ`): 100 on
/// every mainstream Linux architecture.
const USER_HZ: f64 = 100.0;

/// Reads CPU time and peak RSS of process `pid` (`None`: this process).
/// Returns `None` when `/proc` is unavailable or the process is gone.
pub fn sample_process(pid: Option<u32>) -> Option<ProcessSample> {
    let dir = proc_dir(pid);
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are
    // space separated. utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let peak_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    Some(ProcessSample {
        cpu_seconds: (utime + stime) / USER_HZ,
        peak_rss_bytes: peak_kib * 1024,
    })
}

/// The CPU time of several processes together, with the largest of their
/// peak RSS. `None` when `pids` is empty or any of them cannot be read (a
/// sum missing a process would understate the CPU).
pub fn sample_processes(pids: &[u32]) -> Option<ProcessSample> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(
        ProcessSample {
            cpu_seconds: 0.0,
            peak_rss_bytes: 0,
        },
        |sum, pid| {
            let sample = sample_process(Some(*pid))?;
            Some(ProcessSample {
                cpu_seconds: sum.cpu_seconds + sample.cpu_seconds,
                peak_rss_bytes: sum.peak_rss_bytes.max(sample.peak_rss_bytes),
            })
        },
    )
}

/// Resets the peak RSS (`VmHWM`) of process `pid` (`None`: this process) to
/// its current RSS, so a later sample shows the peak of one scenario.
/// Best effort: returns false when the kernel refuses.
pub fn reset_peak_rss(pid: Option<u32>) -> bool {
    std::fs::write(format!("{}/clear_refs", proc_dir(pid)), "5").is_ok()
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    }
}

/// Counts established TCP connections whose remote port is `port`, i.e.
/// the client ends of connections to a server on `port` (IPv4 and IPv6),
/// in every process of this network namespace. Counting client ends works
/// whether the server is local or remote. `None` when `/proc/net` is
/// unreadable.
pub fn established_to_port(port: u16) -> Option<usize> {
    let mut total = 0;
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        total += text
            .lines()
            .skip(1)
            .filter(|line| is_established_to(line, port))
            .count();
    }
    readable.then_some(total)
}

fn is_established_to(line: &str, port: u16) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(_slot), Some(_local), Some(remote), Some(state)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    const ESTABLISHED: &str = "01";
    let remote_port = remote
        .rsplit(':')
        .next()
        .and_then(|hex| u16::from_str_radix(hex, 16).ok());
    state == ESTABLISHED && remote_port == Some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_resolution() {
        let histogram = LatencyHistogram::default();
        for micros in 1..=1000 {
            histogram.record_micros(micros * 100);
        }
        let p50 = histogram.quantile(0.5).unwrap().as_micros() as f64;
        let p99 = histogram.quantile(0.99).unwrap().as_micros() as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.03, "p50 {p50}");
        assert!((p99 / 99_000.0 - 1.0).abs() < 0.03, "p99 {p99}");
        assert_eq!(histogram.count(), 1000);
    }

    #[test]
    fn empty_histogram_has_no_quantile() {
        assert!(LatencyHistogram::default().quantile(0.5).is_none());
    }

    #[test]
    fn parses_established_lines() {
        let line = "   0: 0100007F:1CFD 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 20 4 30 10 -1";
        assert!(is_established_to(line, 0xD2F0));
        assert!(!is_established_to(line, 0x1CFD));
        let closing = line.replace(" 01 ", " 06 ");
        assert!(!is_established_to(&closing, 0xD2F0));
    }

    #[test]
    fn reads_own_process() {
        let sample = sample_process(None).expect("linux /proc");
        assert!(sample.peak_rss_bytes > 0);
    }

    #[test]
    fn counts_an_accepted_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        assert_eq!(established_to_port(port), Some(1));
    }
}
