//! The batcher: one task that turns the parts of `Push` calls into `PUSHB`
//! batches and hands each to an idle producer connection.
//!
//! Rules (see [`Pending::next_batch`]):
//! - a *solo* part (a large call, or any call when coalescing is off) is a
//!   batch of its own and leaves as soon as a connection is free;
//! - *shared* parts (small calls) are merged, up to `max_jobs` jobs and
//!   `max_bytes` bytes, and leave when a connection is free and either the
//!   batch is full, no other `PUSHB` is in flight (an idle system adds no
//!   delay), or the oldest part has waited `max_delay`.
//!
//! So under load, batches grow while earlier `PUSHB`s are in flight (natural
//! batching) and full batches never wait; `max_delay` only bounds how long a
//! small call waits for company while other batches are busy.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::validate::ValidJob;

/// What happened to one job sent to Faktory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Faktory holds the job.
    Accepted,
    /// Faktory refused the job, in its words.
    Rejected(String),
    /// Faktory could not be reached or did not confirm; why.
    Unavailable(String),
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRules {
    /// Most jobs in one `PUSHB`.
    pub(crate) max_jobs: usize,
    /// Most bytes of job JSON in one `PUSHB`.
    pub(crate) max_bytes: usize,
    /// Longest a shared part waits for company.
    pub(crate) max_delay: Duration,
}

/// Some valid jobs of one `Push` call, answered together.
#[derive(Debug)]
pub(crate) struct Part {
    jobs: Vec<ValidJob>,
    bytes: usize,
    solo: bool,
    queued_at: Instant,
    reply: oneshot::Sender<Vec<Outcome>>,
}

impl Part {
    /// A part and the receiver of its outcomes (one per job, in order).
    /// `solo` parts are never merged with others.
    pub(crate) fn new(jobs: Vec<ValidJob>, solo: bool) -> (Part, oneshot::Receiver<Vec<Outcome>>) {
        let (reply, outcomes) = oneshot::channel();
        let bytes = jobs.iter().map(|j| j.json.len() + 1).sum();
        let part = Part {
            jobs,
            bytes,
            solo,
            queued_at: Instant::now(),
            reply,
        };
        (part, outcomes)
    }

    /// Answers every job with the same outcome.
    pub(crate) fn answer_all(self, outcome: Outcome) {
        let outcomes = vec![outcome; self.jobs.len()];
        // The caller may have gone away (cancelled call); nothing to do.
        let _ = self.reply.send(outcomes);
    }
}

/// Parts sent together in one `PUSHB`.
#[derive(Debug)]
pub(crate) struct Batch {
    parts: Vec<Part>,
}

impl Batch {
    /// Jobs in the batch.
    pub(crate) fn job_count(&self) -> usize {
        self.parts.iter().map(|p| p.jobs.len()).sum()
    }

    /// The jids, in batch order.
    pub(crate) fn jids(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .flat_map(|p| p.jobs.iter().map(|j| j.jid.as_str()))
    }

    /// The jobs' JSON, in batch order.
    pub(crate) fn jsons(&self) -> impl Iterator<Item = &[u8]> {
        self.parts
            .iter()
            .flat_map(|p| p.jobs.iter().map(|j| j.json.as_slice()))
    }

    /// The JSON array `PUSHB` takes.
    pub(crate) fn pushb_body(&self) -> Vec<u8> {
        let bytes: usize = self.parts.iter().map(|p| p.bytes).sum();
        let mut body = Vec::with_capacity(bytes + 2);
        body.push(b'[');
        for (i, json) in self.jsons().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json);
        }
        body.push(b']');
        body
    }

    /// Hands each part its share of `outcomes` (one per job, batch order).
    pub(crate) fn answer(self, outcomes: Vec<Outcome>) {
        let mut outcomes = outcomes.into_iter();
        for part in self.parts {
            let mine: Vec<Outcome> = outcomes.by_ref().take(part.jobs.len()).collect();
            let _ = part.reply.send(mine);
        }
    }

    /// Answers every job with the same outcome.
    pub(crate) fn answer_all(self, outcome: Outcome) {
        for part in self.parts {
            part.answer_all(outcome.clone());
        }
    }
}

/// Parts waiting for a connection.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    solo: VecDeque<Part>,
    shared: VecDeque<Part>,
    shared_jobs: usize,
    shared_bytes: usize,
}

impl Pending {
    /// Queues a part.
    pub(crate) fn push(&mut self, part: Part) {
        if part.solo {
            self.solo.push_back(part);
        } else {
            self.shared_jobs += part.jobs.len();
            self.shared_bytes += part.bytes;
            self.shared.push_back(part);
        }
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.solo.is_empty() && self.shared.is_empty()
    }

    /// When the oldest shared part has waited `max_delay`.
    pub(crate) fn deadline(&self, rules: &BatchRules) -> Option<Instant> {
        self.shared.front().map(|p| p.queued_at + rules.max_delay)
    }

    fn shared_ready(
        &self,
        now: Instant,
        in_flight: usize,
        rules: &BatchRules,
        flush: bool,
    ) -> bool {
        let Some(oldest) = self.shared.front() else {
            return false;
        };
        flush
            || in_flight == 0
            || self.shared_jobs >= rules.max_jobs
            || self.shared_bytes >= rules.max_bytes
            || now >= oldest.queued_at + rules.max_delay
    }

    /// The next batch for a free connection, if one is due (see the module
    /// docs). `in_flight` is the number of batches at producers now; `flush`
    /// sends everything at once (shutdown).
    pub(crate) fn next_batch(
        &mut self,
        now: Instant,
        in_flight: usize,
        rules: &BatchRules,
        flush: bool,
    ) -> Option<Batch> {
        let shared_ready = self.shared_ready(now, in_flight, rules, flush);
        let take_solo = match (self.solo.front(), shared_ready) {
            (None, _) => false,
            (Some(_), false) => true,
            (Some(solo), true) => {
                let shared = self.shared.front().expect("ready implies a part");
                solo.queued_at <= shared.queued_at
            }
        };
        if take_solo {
            let part = self.solo.pop_front()?;
            return Some(Batch { parts: vec![part] });
        }
        if !shared_ready {
            return None;
        }
        let mut parts = Vec::new();
        let (mut jobs, mut bytes) = (0, 0);
        while let Some(next) = self.shared.front() {
            let fits =
                jobs + next.jobs.len() <= rules.max_jobs && bytes + next.bytes <= rules.max_bytes;
            if !parts.is_empty() && !fits {
                break;
            }
            let part = self.shared.pop_front()?;
            jobs += part.jobs.len();
            bytes += part.bytes;
            parts.push(part);
        }
        self.shared_jobs -= jobs;
        self.shared_bytes -= bytes;
        Some(Batch { parts })
    }

    /// Every waiting part (for answering on shutdown).
    fn take_all(&mut self) -> Vec<Part> {
        self.shared_jobs = 0;
        self.shared_bytes = 0;
        self.solo.drain(..).chain(self.shared.drain(..)).collect()
    }
}

/// Runs the batcher until every sender of `parts` is gone, then sends what is
/// still waiting, waits for the producers to answer, and returns (dropping
/// the producers' channels, which ends them).
///
/// `producers[i]` feeds producer `i`, which reports `i` on `idle` after each
/// batch.
pub(crate) async fn run_batcher(
    mut parts: mpsc::Receiver<Part>,
    producers: Vec<mpsc::Sender<Batch>>,
    mut idle_rx: mpsc::Receiver<usize>,
    rules: BatchRules,
) {
    let mut idle: Vec<usize> = (0..producers.len()).rev().collect();
    let mut in_flight = 0usize;
    let mut pending = Pending::default();
    let mut open = true;
    loop {
        while let Some(&i) = idle.last() {
            let Some(batch) = pending.next_batch(Instant::now(), in_flight, &rules, !open) else {
                break;
            };
            idle.pop();
            // Only idle producers are fed, so their one-slot channel is empty.
            match producers[i].try_send(batch) {
                Ok(()) => in_flight += 1,
                Err(e) => e
                    .into_inner()
                    .answer_all(Outcome::Unavailable("gateway is shutting down".to_owned())),
            }
        }
        if !open && pending.is_empty() && in_flight == 0 {
            break;
        }
        let deadline = if idle.is_empty() {
            None
        } else {
            pending.deadline(&rules)
        };
        // Every arm is cancellation-safe: mpsc receives lose nothing when
        // another arm wins, and the sleep is recreated each turn.
        tokio::select! {
            biased;
            Some(i) = idle_rx.recv() => {
                idle.push(i);
                in_flight -= 1;
            }
            part = parts.recv(), if open => match part {
                Some(part) => pending.push(part),
                None => open = false,
            },
            () = sleep_until_opt(deadline), if deadline.is_some() => {}
            else => break,
        }
    }
    for part in pending.take_all() {
        part.answer_all(Outcome::Unavailable("gateway is shutting down".to_owned()));
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: BatchRules = BatchRules {
        max_jobs: 10,
        max_bytes: 1000,
        max_delay: Duration::from_millis(5),
    };

    fn jobs(n: usize, size: usize) -> Vec<ValidJob> {
        (0..n)
            .map(|i| ValidJob {
                jid: format!("jid-{i:08}"),
                json: vec![b'x'; size],
            })
            .collect()
    }

    #[test]
    fn batch_body_and_answers_keep_order() {
        let (a, mut ra) = Part::new(
            vec![ValidJob {
                jid: "a".into(),
                json: b"{\"jid\":\"a\"}".to_vec(),
            }],
            false,
        );
        let (b, mut rb) = Part::new(
            vec![
                ValidJob {
                    jid: "b".into(),
                    json: b"{\"jid\":\"b\"}".to_vec(),
                },
                ValidJob {
                    jid: "c".into(),
                    json: b"{\"jid\":\"c\"}".to_vec(),
                },
            ],
            false,
        );
        let batch = Batch { parts: vec![a, b] };
        assert_eq!(
            batch.pushb_body(),
            br#"[{"jid":"a"},{"jid":"b"},{"jid":"c"}]"#.to_vec()
        );
        assert_eq!(batch.jids().collect::<Vec<_>>(), ["a", "b", "c"]);
        batch.answer(vec![
            Outcome::Accepted,
            Outcome::Rejected("no".into()),
            Outcome::Accepted,
        ]);
        assert_eq!(ra.try_recv().unwrap(), vec![Outcome::Accepted]);
        assert_eq!(
            rb.try_recv().unwrap(),
            vec![Outcome::Rejected("no".into()), Outcome::Accepted]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_system_sends_at_once_busy_system_coalesces() {
        let mut pending = Pending::default();
        let now = Instant::now();
        pending.push(Part::new(jobs(1, 10), false).0);
        // Nothing in flight: no waiting.
        assert_eq!(
            pending
                .next_batch(now, 0, &RULES, false)
                .unwrap()
                .job_count(),
            1
        );
        // Something in flight: wait for company...
        for _ in 0..3 {
            pending.push(Part::new(jobs(2, 10), false).0);
        }
        assert!(pending.next_batch(now, 1, &RULES, false).is_none());
        assert_eq!(pending.deadline(&RULES), Some(now + RULES.max_delay));
        // ...until the delay passes; then all three parts go together.
        let later = now + RULES.max_delay;
        assert_eq!(
            pending
                .next_batch(later, 1, &RULES, false)
                .unwrap()
                .job_count(),
            6
        );
        assert!(pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_do_not_wait_and_respect_limits() {
        let mut pending = Pending::default();
        let now = Instant::now();
        for _ in 0..7 {
            pending.push(Part::new(jobs(3, 10), false).0);
        }
        // 21 jobs, busy system: full batches of whole parts (9 ≤ 10 jobs).
        assert_eq!(
            pending
                .next_batch(now, 3, &RULES, false)
                .unwrap()
                .job_count(),
            9
        );
        assert_eq!(
            pending
                .next_batch(now, 3, &RULES, false)
                .unwrap()
                .job_count(),
            9
        );
        // 3 left, not full, not late: wait.
        assert!(pending.next_batch(now, 3, &RULES, false).is_none());
        // Flushing (shutdown) sends it anyway.
        assert_eq!(
            pending
                .next_batch(now, 3, &RULES, true)
                .unwrap()
                .job_count(),
            3
        );

        // Bytes: 3 parts of 400 bytes make batches of 2 parts, then 1.
        for _ in 0..3 {
            pending.push(Part::new(jobs(1, 399), false).0);
        }
        assert_eq!(
            pending
                .next_batch(now, 1, &RULES, false)
                .unwrap()
                .job_count(),
            2
        );
        assert!(pending.next_batch(now, 1, &RULES, false).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn solo_parts_go_alone_in_arrival_order() {
        let mut pending = Pending::default();
        pending.push(Part::new(jobs(1, 10), false).0);
        tokio::time::advance(Duration::from_millis(1)).await;
        pending.push(Part::new(jobs(10, 10), true).0);
        pending.push(Part::new(jobs(10, 10), true).0);
        // The shared part is older but not ready: the solo one goes first.
        let first = pending
            .next_batch(Instant::now(), 1, &RULES, false)
            .unwrap();
        assert_eq!((first.parts.len(), first.job_count()), (1, 10));
        // Once nothing is in flight the older shared part goes before the
        // remaining solo part.
        assert_eq!(
            pending
                .next_batch(Instant::now(), 0, &RULES, false)
                .unwrap()
                .job_count(),
            1
        );
        assert_eq!(
            pending
                .next_batch(Instant::now(), 0, &RULES, false)
                .unwrap()
                .job_count(),
            10
        );
        assert!(pending.is_empty());
    }
}
