//! [`QueueCounters`]: jobs pushed, delivered, acked and failed per Faktory
//! queue, for the `faktory_gateway_queue_jobs_*_total{queue="..."}` series.
//!
//! Queue names are chosen by users, so the label set is bounded: the first
//! [`MAX_QUEUE_LABELS`] distinct names seen get their own series; jobs of
//! any later name are counted under `queue="_other"`. A gateway restart
//! starts the list afresh.

use crate::fast_hash::Map;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::RwLock;

use super::Counter;

/// Most queue names with series of their own.
pub const MAX_QUEUE_LABELS: usize = 100;

/// The label value of every queue beyond [`MAX_QUEUE_LABELS`].
pub const OTHER_QUEUES: &str = "_other";

/// What happened to jobs of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEvent {
    /// Faktory accepted them from `Push` (gRPC or HTTP).
    Pushed,
    /// They were sent to a worker (redeliveries included).
    Delivered,
    /// A worker acked them (the gateway held their lease; relayed to
    /// Faktory).
    Acked,
    /// A worker failed them (as for acks).
    Failed,
}

impl QueueEvent {
    const ALL: [QueueEvent; 4] = [
        QueueEvent::Pushed,
        QueueEvent::Delivered,
        QueueEvent::Acked,
        QueueEvent::Failed,
    ];

    fn metric(self) -> (&'static str, &'static str) {
        match self {
            QueueEvent::Pushed => ("pushed", "Jobs Faktory accepted from Push, per queue."),
            QueueEvent::Delivered => ("delivered", "Deliveries sent to workers, per queue."),
            QueueEvent::Acked => ("acked", "Jobs workers acked, per queue."),
            QueueEvent::Failed => ("failed", "Jobs workers failed, per queue."),
        }
    }
}

/// The counters of one queue.
#[derive(Debug, Default)]
struct QueueCount {
    pushed: Counter,
    delivered: Counter,
    acked: Counter,
    failed: Counter,
}

impl QueueCount {
    fn counter(&self, event: QueueEvent) -> &Counter {
        match event {
            QueueEvent::Pushed => &self.pushed,
            QueueEvent::Delivered => &self.delivered,
            QueueEvent::Acked => &self.acked,
            QueueEvent::Failed => &self.failed,
        }
    }
}

/// Per-queue job counters with a bounded label set (see the module docs).
#[derive(Debug, Default)]
pub struct QueueCounters {
    queues: RwLock<Map<String, Arc<QueueCount>>>,
    other: QueueCount,
}

impl QueueCounters {
    /// Counts `n` jobs of `queue` (empty means `default`).
    pub fn add(&self, queue: &str, event: QueueEvent, n: u64) {
        let queue = if queue.is_empty() { "default" } else { queue };
        if let Some(count) = self.queues.read().get(queue) {
            count.counter(event).add(n);
            return;
        }
        let mut queues = self.queues.write();
        if queues.len() >= MAX_QUEUE_LABELS && !queues.contains_key(queue) {
            drop(queues);
            self.other.counter(event).add(n);
            return;
        }
        queues
            .entry(queue.to_owned())
            .or_default()
            .counter(event)
            .add(n);
    }

    /// Counts one job per item of `queues` (runs of the same name are
    /// counted at once: a batch's jobs mostly share a queue).
    pub fn add_each<'a>(&self, queues: impl IntoIterator<Item = &'a str>, event: QueueEvent) {
        let mut run: Option<(&str, u64)> = None;
        for queue in queues {
            match &mut run {
                Some((name, n)) if *name == queue => *n += 1,
                _ => {
                    if let Some((name, n)) = run.replace((queue, 1)) {
                        self.add(name, event, n);
                    }
                }
            }
        }
        if let Some((name, n)) = run {
            self.add(name, event, n);
        }
    }

    /// The count of `event` for `queue` (`_other` for the overflow).
    pub fn get(&self, queue: &str, event: QueueEvent) -> u64 {
        if queue == OTHER_QUEUES {
            return self.other.counter(event).get();
        }
        self.queues
            .read()
            .get(queue)
            .map_or(0, |c| c.counter(event).get())
    }

    /// Appends the series in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        let queues = self.queues.read();
        let mut names: Vec<&String> = queues.keys().collect();
        names.sort();
        for event in QueueEvent::ALL {
            let (what, help) = event.metric();
            let name = format!("faktory_gateway_queue_jobs_{what}_total");
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for queue in &names {
                let value = queues[*queue].counter(event).get();
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {value}", escape(queue));
            }
            let other = self.other.counter(event).get();
            if other > 0 {
                let _ = writeln!(out, "{name}{{queue=\"{OTHER_QUEUES}\"}} {other}");
            }
        }
    }
}

/// A Prometheus label value: backslash, quote and newline escaped (queue
/// names are validated, but the escape keeps the output well-formed anyway).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_queue_and_folds_the_overflow() {
        let q = QueueCounters::default();
        q.add("", QueueEvent::Pushed, 2);
        q.add("default", QueueEvent::Pushed, 1);
        q.add_each(["mail", "mail", "default", "mail"], QueueEvent::Acked);
        q.add("mail", QueueEvent::Acked, 2);
        assert_eq!(q.get("default", QueueEvent::Pushed), 3);
        assert_eq!(q.get("default", QueueEvent::Acked), 1);
        assert_eq!(q.get("mail", QueueEvent::Acked), 5);
        for i in 0..MAX_QUEUE_LABELS {
            q.add(&format!("q{i}"), QueueEvent::Delivered, 1);
        }
        assert_eq!(q.get(OTHER_QUEUES, QueueEvent::Delivered), 2);
        // Queues that already have a series keep it.
        q.add("mail", QueueEvent::Failed, 1);
        assert_eq!(q.get("mail", QueueEvent::Failed), 1);
        let mut text = String::new();
        q.render(&mut text);
        assert!(
            text.contains("faktory_gateway_queue_jobs_pushed_total{queue=\"default\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("faktory_gateway_queue_jobs_delivered_total{queue=\"_other\"} 2\n"));
        assert!(text.contains("# TYPE faktory_gateway_queue_jobs_failed_total counter\n"));
        assert_eq!(
            text.matches("queue=").count(),
            4 * MAX_QUEUE_LABELS + 1,
            "one series per queue and event, plus the overflow"
        );
    }
}
