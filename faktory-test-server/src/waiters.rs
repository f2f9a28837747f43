//! Blocked FETCHes, served in arrival order like Redis `BRPOP`.
//!
//! A FETCH that finds its queues empty registers here (under the server lock, right after
//! looking, so no push can slip between). When a job is enqueued into a queue somebody waits
//! on, the store reserves it for the longest-waiting FETCH and hands it over through a oneshot
//! channel instead of queueing it: one push wakes exactly one waiter, however many there are.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::oneshot;

/// A registered, blocked FETCH.
#[derive(Debug)]
pub(crate) struct Waiter {
    queues: Vec<String>,
    /// The waiting connection's worker id, recorded in the reservation.
    pub(crate) wid: String,
    /// Where the job's wire encoding goes.
    pub(crate) deliver: oneshot::Sender<Bytes>,
}

/// All blocked FETCHes.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next_id: u64,
    by_queue: HashMap<String, VecDeque<u64>>,
    entries: HashMap<u64, Waiter>,
}

impl Waiters {
    /// Registers a FETCH waiting on `queues`; returns its id and the receiving end.
    pub(crate) fn register(
        &mut self,
        queues: &[&str],
        wid: &str,
    ) -> (u64, oneshot::Receiver<Bytes>) {
        self.next_id += 1;
        let id = self.next_id;
        let (deliver, receive) = oneshot::channel();
        for queue in queues {
            self.by_queue
                .entry((*queue).to_owned())
                .or_default()
                .push_back(id);
        }
        let waiter = Waiter {
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            wid: wid.to_owned(),
            deliver,
        };
        self.entries.insert(id, waiter);
        (id, receive)
    }

    /// Unregisters a FETCH (timed out, cancelled or served). Unknown ids are ignored.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.entries.remove(&id)?;
        for queue in &waiter.queues {
            if let Some(ids) = self.by_queue.get_mut(queue) {
                ids.retain(|&other| other != id);
                if ids.is_empty() {
                    self.by_queue.remove(queue);
                }
            }
        }
        Some(waiter)
    }

    /// Takes the longest-waiting live FETCH on `queue`, if any.
    pub(crate) fn take_for(&mut self, queue: &str) -> Option<Waiter> {
        loop {
            let id = *self.by_queue.get(queue)?.front()?;
            let waiter = self.remove(id)?;
            if !waiter.deliver.is_closed() {
                return Some(waiter);
            }
        }
    }

    /// Number of blocked FETCHes.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_come_first_served_and_cleanup() {
        let mut w = Waiters::default();
        let (a, _ra) = w.register(&["q1", "q2"], "");
        let (b, _rb) = w.register(&["q2"], "");
        assert_eq!(w.len(), 2);
        let first = w.take_for("q2").unwrap();
        assert_eq!(first.queues, vec!["q1", "q2"]);
        assert!(w.take_for("q1").is_none(), "a was removed from every queue");
        w.remove(b);
        w.remove(a);
        assert_eq!(w.len(), 0);
        assert!(w.by_queue.is_empty());
    }

    #[test]
    fn dead_receivers_are_skipped() {
        let mut w = Waiters::default();
        let (_, gone) = w.register(&["q"], "");
        drop(gone);
        let (_, _alive) = w.register(&["q"], "w2");
        assert_eq!(w.take_for("q").unwrap().wid, "w2");
    }
}
