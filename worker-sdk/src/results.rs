//! Job results on their way to the gateway: batching (flush at a count or
//! after a short delay) and confirmation tracking.
//!
//! A result is *confirmed* once the gateway answers it with `Settled` (Faktory
//! has it) or `ResultRejected` (it cannot be applied). Results not confirmed
//! when a stream ends are sent again on the next stream, to whichever gateway
//! that is: an ack sent twice is harmless at Faktory, an ack lost would leave
//! a finished job to run again.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use faktory_gateway_proto::v1::{self, worker_message::Kind};
use tokio::time::Instant;

/// One job's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Report {
    /// The handler succeeded.
    Ack(String),
    /// The handler failed.
    Fail(v1::JobFailure),
}

impl Report {
    pub(crate) fn jid(&self) -> &str {
        match self {
            Report::Ack(jid) => jid,
            Report::Fail(failure) => &failure.jid,
        }
    }

    /// Rough encoded size, for splitting batches under the message limit.
    fn size(&self) -> usize {
        match self {
            Report::Ack(jid) => jid.len() + 4,
            Report::Fail(f) => {
                f.jid.len()
                    + f.errtype.len()
                    + f.message.len()
                    + f.backtrace.iter().map(|l| l.len() + 4).sum::<usize>()
                    + 16
            }
        }
    }
}

/// Results not yet confirmed by the gateway.
#[derive(Debug)]
pub(crate) struct Results {
    flush_count: usize,
    flush_delay: Duration,
    unsent: VecDeque<Report>,
    oldest_unsent: Option<Instant>,
    /// Sent on the current stream and not yet settled or rejected, by jid.
    sent: HashMap<String, Report>,
}

impl Results {
    pub(crate) fn new(flush_count: usize, flush_delay: Duration) -> Results {
        Results {
            flush_count: flush_count.max(1),
            flush_delay,
            unsent: VecDeque::new(),
            oldest_unsent: None,
            sent: HashMap::new(),
        }
    }

    /// Queues a result for the next flush.
    pub(crate) fn push(&mut self, report: Report, now: Instant) {
        self.oldest_unsent.get_or_insert(now);
        self.unsent.push_back(report);
    }

    /// When the queued results must go out at the latest.
    pub(crate) fn flush_deadline(&self) -> Option<Instant> {
        if self.unsent.len() >= self.flush_count {
            return self.oldest_unsent;
        }
        self.oldest_unsent.map(|t| t + self.flush_delay)
    }

    /// Takes every queued result as messages of at most about `max_bytes`
    /// each (acks and fails separately), and remembers them as sent.
    pub(crate) fn take_messages(&mut self, max_bytes: usize) -> Vec<v1::WorkerMessage> {
        self.oldest_unsent = None;
        let mut messages = Vec::new();
        let (mut acks, mut fails) = (Vec::new(), Vec::new());
        let (mut ack_bytes, mut fail_bytes) = (0, 0);
        for report in self.unsent.drain(..) {
            let size = report.size();
            match &report {
                Report::Ack(jid) => {
                    if ack_bytes + size > max_bytes && !acks.is_empty() {
                        messages.push(acks_message(std::mem::take(&mut acks)));
                        ack_bytes = 0;
                    }
                    ack_bytes += size;
                    acks.push(jid.clone());
                }
                Report::Fail(failure) => {
                    if fail_bytes + size > max_bytes && !fails.is_empty() {
                        messages.push(fails_message(std::mem::take(&mut fails)));
                        fail_bytes = 0;
                    }
                    fail_bytes += size;
                    fails.push(failure.clone());
                }
            }
            self.sent.insert(report.jid().to_owned(), report);
        }
        if !acks.is_empty() {
            messages.push(acks_message(acks));
        }
        if !fails.is_empty() {
            messages.push(fails_message(fails));
        }
        messages
    }

    /// The gateway confirmed (Faktory has it) or rejected the result for
    /// `jid`: it is done with. Returns whether it was waiting.
    pub(crate) fn done(&mut self, jid: &str) -> bool {
        self.sent.remove(jid).is_some()
    }

    /// A stream ended: every result sent on it and not confirmed goes back to
    /// the front of the queue, to be sent on the next stream. Returns them.
    pub(crate) fn requeue_unconfirmed(&mut self, now: Instant) -> Vec<Report> {
        let again: Vec<Report> = std::mem::take(&mut self.sent).into_values().collect();
        for report in again.iter().rev() {
            self.unsent.push_front(report.clone());
        }
        if !self.unsent.is_empty() {
            self.oldest_unsent = Some(now);
        }
        again
    }

    /// Every result not confirmed yet, sent or not.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Report> {
        self.unsent.iter().chain(self.sent.values())
    }

    /// Whether every result is confirmed.
    pub(crate) fn is_settled(&self) -> bool {
        self.unsent.is_empty() && self.sent.is_empty()
    }

    /// How many results are not confirmed.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.unsent.len() + self.sent.len()
    }
}

fn acks_message(jids: Vec<String>) -> v1::WorkerMessage {
    v1::WorkerMessage {
        kind: Some(Kind::Acks(v1::Acks { jids })),
    }
}

fn fails_message(failures: Vec<v1::JobFailure>) -> v1::WorkerMessage {
    v1::WorkerMessage {
        kind: Some(Kind::Fails(v1::Fails { failures })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ack(i: usize) -> Report {
        Report::Ack(format!("jid-{i}"))
    }

    fn fail(i: usize) -> Report {
        Report::Fail(v1::JobFailure {
            jid: format!("jid-{i}"),
            errtype: "E".into(),
            message: "m".into(),
            backtrace: vec![],
        })
    }

    #[test]
    fn flush_at_count_or_after_delay() {
        let start = Instant::now();
        let mut results = Results::new(3, 5 * MS);
        assert_eq!(results.flush_deadline(), None);
        results.push(ack(1), start);
        results.push(ack(2), start + MS);
        assert_eq!(results.flush_deadline(), Some(start + 5 * MS));
        results.push(fail(3), start + 2 * MS);
        assert_eq!(
            results.flush_deadline(),
            Some(start),
            "count reached: flush now"
        );
        let messages = results.take_messages(1 << 20);
        assert_eq!(messages.len(), 2, "one acks and one fails message");
        assert_eq!(results.flush_deadline(), None);
    }

    #[test]
    fn batches_are_split_by_size() {
        let mut results = Results::new(1000, MS);
        for i in 0..100 {
            results.push(ack(i), Instant::now());
        }
        let messages = results.take_messages(100);
        assert!(messages.len() > 5);
        let total: usize = messages
            .iter()
            .map(|m| match &m.kind {
                Some(Kind::Acks(a)) => a.jids.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn results_are_kept_until_settled_and_resent_otherwise() {
        let now = Instant::now();
        let mut results = Results::new(10, MS);
        results.push(ack(1), now);
        results.push(fail(2), now);
        results.take_messages(1 << 20);
        results.push(ack(3), now);
        results.take_messages(1 << 20);
        assert!(results.done("jid-1"));
        assert!(!results.done("jid-1"), "only once");
        assert!(!results.done("never-sent"));
        assert_eq!(results.unconfirmed(), 2);
        // The stream breaks: 2 and 3 go again, before anything newer.
        let mut again: Vec<String> = results
            .requeue_unconfirmed(now)
            .iter()
            .map(|r| r.jid().to_owned())
            .collect();
        again.sort();
        assert_eq!(again, ["jid-2", "jid-3"]);
        results.push(ack(4), now);
        let messages = results.take_messages(1 << 20);
        let Some(Kind::Acks(acks)) = &messages[0].kind else {
            panic!("expected acks")
        };
        assert_eq!(acks.jids.last().map(String::as_str), Some("jid-4"));
        assert_eq!(acks.jids.len() + messages.len() - 1, 3, "3, 4 and the fail");
        for jid in ["jid-2", "jid-3", "jid-4"] {
            assert!(results.done(jid));
        }
        assert!(results.is_settled());
    }
}
