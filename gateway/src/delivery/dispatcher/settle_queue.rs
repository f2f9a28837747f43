//! [`SettleQueue`]: the settlements waiting for a relay and the count of
//! those taken and not yet answered, with the wake relays wait on. The
//! dispatcher's other state reaches it only through these methods.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::Notify;

use super::super::lease::{Holder, Lease};
use super::super::settle::Settle;

/// What the gateway must still tell Faktory, in order.
#[derive(Debug, Default)]
pub(super) struct SettleQueue {
    queued: VecDeque<Settle>,
    /// Taken by relays and not yet reported back.
    in_flight: usize,
    /// Notified (one waiter; pool tasks pass it on) when settlements are
    /// queued.
    wake: Arc<Notify>,
}

impl SettleQueue {
    /// The wake relays wait on.
    pub(super) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Marks `lease` as settling and queues `settle` for it (the one step
    /// every hand-over of a held job to Faktory takes); wakes a relay.
    pub(super) fn hand_over(&mut self, lease: &mut Lease, settle: Settle) {
        lease.holder = Holder::Settling;
        self.queued.push_back(settle);
        self.wake.notify_one();
    }

    /// Queues a settlement whose lease (if any) is already settling; the
    /// caller wakes the relays ([`SettleQueue::notify`]) once it queued all.
    pub(super) fn push(&mut self, settle: Settle) {
        self.queued.push_back(settle);
    }

    /// Wakes a relay.
    pub(super) fn notify(&self) {
        self.wake.notify_one();
    }

    /// Takes up to `max` settlements; each must come back once, answered
    /// ([`SettleQueue::answered`]) or put back.
    pub(super) fn take(&mut self, max: usize) -> Vec<Settle> {
        let n = max.min(self.queued.len());
        self.in_flight += n;
        self.queued.drain(..n).collect()
    }

    /// Puts settlements a relay could not send back at the front, in order.
    pub(super) fn put_back(&mut self, settles: Vec<Settle>) {
        self.in_flight = self.in_flight.saturating_sub(settles.len());
        for s in settles.into_iter().rev() {
            self.queued.push_front(s);
        }
        self.wake.notify_one();
    }

    /// One settlement taken earlier was answered by Faktory.
    pub(super) fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Queued plus taken and not yet answered.
    pub(super) fn backlog(&self) -> usize {
        self.queued.len() + self.in_flight
    }

    /// Whether settlements wait for a relay.
    pub(super) fn is_waiting(&self) -> bool {
        !self.queued.is_empty()
    }
}
