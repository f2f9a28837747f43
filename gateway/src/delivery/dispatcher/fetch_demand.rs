//! [`FetchDemand`]: per queue list, the FETCHes claimed and not yet
//! answered and the pipeline depth the next claim may use. What the open
//! windows ask for is worked out in `fetching.rs`; this keeps the counts.

use crate::fast_hash::Map;

/// FETCHes in flight and adaptive depth, by queue list.
#[derive(Debug, Default)]
pub(super) struct FetchDemand {
    in_flight: Map<Vec<String>, usize>,
    depth: Map<Vec<String>, usize>,
}

impl FetchDemand {
    /// FETCHes claimed for `queues` and not yet answered.
    pub(super) fn in_flight(&self, queues: &[String]) -> usize {
        self.in_flight.get(queues).copied().unwrap_or(0)
    }

    /// Whether any claimed FETCH has not been answered yet.
    pub(super) fn any_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// FETCHes claimed and not yet answered, for all queue lists.
    pub(super) fn total_in_flight(&self) -> usize {
        // One entry per queue list with FETCHes out: a handful.
        self.in_flight.values().sum()
    }

    /// Claims a pipeline for `queues` of the current depth, at most
    /// `demand` and `max_depth` (at least 1), and returns its depth; `None`
    /// when only `room` FETCHes may still be sent and that is less. Waiting
    /// for room for a whole pipeline keeps pipelines deep (one write and
    /// few wakeups for several jobs) rather than filling every freed slot
    /// with a FETCH of its own.
    pub(super) fn claim(
        &mut self,
        queues: &[String],
        demand: usize,
        max_depth: usize,
        room: usize,
    ) -> Option<usize> {
        let depth = self
            .depth
            .get(queues)
            .copied()
            .unwrap_or(1)
            .min(demand)
            .min(max_depth)
            .max(1);
        if depth > room {
            return None;
        }
        // Looked up by slice first: the list is copied only the first time it is claimed.
        match self.in_flight.get_mut(queues) {
            Some(n) => *n += depth,
            None => {
                self.in_flight.insert(queues.to_vec(), depth);
            }
        }
        Some(depth)
    }

    /// `n` FETCHes for `queues` are over; `true` when none is left for them.
    pub(super) fn end(&mut self, queues: &[String], n: usize) -> bool {
        let Some(left) = self.in_flight.get_mut(queues) else {
            return false;
        };
        *left = left.saturating_sub(n);
        if *left > 0 {
            return false;
        }
        self.in_flight.remove(queues);
        true
    }

    /// After a pipeline of `claimed` FETCHes returned `got` jobs: deeper
    /// (up to `max_depth`) when every FETCH returned a job, down to what
    /// came back (at least 1) otherwise.
    pub(super) fn adapt(
        &mut self,
        queues: &[String],
        claimed: usize,
        got: usize,
        max_depth: usize,
    ) {
        let depth = self.depth.get(queues).copied().unwrap_or(1);
        let depth = if got >= claimed {
            depth.max(claimed * 2).min(max_depth)
        } else {
            got.max(1)
        };
        match self.depth.get_mut(queues) {
            Some(d) => *d = depth,
            None => {
                self.depth.insert(queues.to_vec(), depth);
            }
        }
    }

    /// Back to depth 1 for `queues` (after a failed fetch).
    pub(super) fn reset_depth(&mut self, queues: &[String]) {
        self.depth.insert(queues.to_vec(), 1);
    }
}
