//! `faktory-gateway workers`: calls a running gateway's `Admin.ListWorkers`
//! and prints one line per open `Work` session: worker id, host, labels,
//! queues, job types, window, jobs in flight, done, failed, jobs/s over the
//! last minute, heartbeat round trip, and how long it has been connected.
//! Finds the gateway as `health` does (see `gateway_target`); the token
//! comes from `--token` or `GATEWAY_ADMIN_TOKEN`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use faktory_gateway_proto::v1::admin_client::AdminClient;
use faktory_gateway_proto::v1::{ListWorkersRequest, WorkerInfo};
use tonic::metadata::MetadataValue;

use crate::gateway_target::TargetArgs;

/// Options of the `workers` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WorkersArgs {
    #[command(flatten)]
    target: TargetArgs,

    /// Bearer token for the listing: the gateway's admin token, or its
    /// producer or worker token when it has no admin token.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_TOKEN",
        value_name = "GATEWAY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Asks the gateway for its workers and prints them as a table on stdout.
///
/// # Errors
/// The gateway cannot be reached or refuses the call (e.g. a missing or
/// wrong token), or the options are bad.
pub(crate) async fn run(args: &WorkersArgs) -> anyhow::Result<()> {
    let url = args.target.target();
    let endpoint = args.target.endpoint(&url)?;
    let mut request = tonic::Request::new(ListWorkersRequest {});
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .context("the token cannot be sent as a header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    let call = async {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach the gateway at {url}"))?;
        let response = AdminClient::new(channel)
            .list_workers(request)
            .await
            .map_err(|status| anyhow::anyhow!("{url} refused ListWorkers: {}", status.message()))?;
        anyhow::Ok(response.into_inner().workers)
    };
    let workers = tokio::time::timeout(args.target.timeout(), call)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {:?}", args.target.timeout()))??;
    print!("{}", table(&workers, unix_now_ms()));
    Ok(())
}

fn unix_now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

const HEADER: [&str; 12] = [
    "WORKER",
    "HOST",
    "LABELS",
    "QUEUES",
    "JOBTYPES",
    "WINDOW",
    "IN-FLIGHT",
    "DONE",
    "FAILED",
    "JOBS/S",
    "RTT",
    "CONNECTED",
];

/// The table for `workers`, one line each under a header, columns padded
/// to their widest cell; `now_ms` dates the connection ages.
fn table(workers: &[WorkerInfo], now_ms: i64) -> String {
    if workers.is_empty() {
        return "no workers connected\n".to_owned();
    }
    let list = |items: &[String], none: &str| {
        if items.is_empty() {
            none.to_owned()
        } else {
            items.join(",")
        }
    };
    let mut rows: Vec<[String; 12]> = vec![HEADER.map(str::to_owned)];
    for w in workers {
        let host = if w.hostname.is_empty() {
            "-"
        } else {
            &w.hostname
        };
        let mut worker = w.worker_id.clone();
        if w.draining {
            worker.push_str(" (draining)");
        }
        let rtt = match w.heartbeat_rtt_us {
            0 => "-".to_owned(),
            us => format!("{:.1}ms", us as f64 / 1000.0),
        };
        let age = u64::try_from(now_ms.saturating_sub(w.connected_unix_ms)).unwrap_or(0);
        rows.push([
            worker,
            host.to_owned(),
            list(&w.labels, "-"),
            list(&w.queues, "-"),
            list(&w.jobtypes, "*"),
            w.window.to_string(),
            w.in_flight.to_string(),
            w.jobs_done.to_string(),
            w.jobs_failed.to_string(),
            format!("{:.1}", w.jobs_per_second),
            rtt,
            format!("{} ago", age_text(Duration::from_millis(age))),
        ]);
    }
    let mut widths = [0usize; 12];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A short age: `42s`, `3m05s`, `2h07m`, `3d04h`.
fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, host: &str) -> WorkerInfo {
        WorkerInfo {
            session_id: format!("gw-{id}"),
            worker_id: id.into(),
            hostname: host.into(),
            labels: vec!["region:eu".into(), "gpu".into()],
            queues: vec!["critical".into(), "default".into()],
            jobtypes: Vec::new(),
            window: 64,
            in_flight: 3,
            jobs_done: 1200,
            jobs_failed: 4,
            jobs_per_second: 20.04,
            heartbeat_rtt_us: 1_530,
            connected_unix_ms: 1_000,
            draining: false,
        }
    }

    #[test]
    fn prints_one_aligned_line_per_worker() {
        let mut slow = worker("w-2", "");
        slow.heartbeat_rtt_us = 0;
        slow.jobtypes = vec!["add".into(), "mail".into()];
        slow.draining = true;
        let text = table(&[worker("w-1", "host-a"), slow], 1_000 + 185_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("WORKER"), "{text}");
        assert!(
            lines[1].contains("host-a") && lines[1].contains("region:eu,gpu"),
            "{text}"
        );
        assert!(lines[1].contains("critical,default"), "{text}");
        assert!(
            lines[1].contains("1.5ms") && lines[1].contains("20.0"),
            "{text}"
        );
        assert!(lines[1].ends_with("3m05s ago"), "{text}");
        assert!(lines[2].contains("w-2 (draining)") && lines[2].contains("add,mail"));
        // Columns line up: every row has its host at the header's offset.
        let host_at = lines[0].find("HOST").unwrap();
        assert_eq!(&lines[1][host_at..host_at + 6], "host-a");
        assert_eq!(&lines[2][host_at..host_at + 1], "-");
        assert_eq!(table(&[], 0), "no workers connected\n");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age_text(Duration::from_secs(42)), "42s");
        assert_eq!(age_text(Duration::from_secs(7_620)), "2h07m");
        assert_eq!(
            age_text(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }
}
