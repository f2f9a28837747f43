//! Fetch demand: claims against open window, the jobs they return, and the
//! adaptive pipeline depth.

use super::*;

impl Dispatcher {
    /// Claims a fetch against open window, or `None` when nothing should be
    /// fetched now. The caller must report back with [`Dispatcher::fetched_job`] for each job
    /// and then [`Dispatcher::fetch_done`] or [`Dispatcher::fetch_failed`].
    pub(crate) fn claim_fetch(&mut self) -> Option<FetchClaim> {
        if !self.fetching || self.settle_backlog() >= self.rules.max_settle_backlog {
            return None;
        }
        let room = self
            .rules
            .max_fetches_in_flight
            .saturating_sub(self.fetches.total_in_flight());
        if room == 0 {
            return None;
        }
        let mut open: Map<&Vec<String>, usize> = Map::default();
        for slot in self.sessions.values() {
            let o = slot.open();
            if o > 0 {
                *open.entry(&slot.spec.queues).or_default() += o;
            }
        }
        let mut best: Option<(&Vec<String>, usize)> = None;
        let mut lists_with_demand = 0;
        for (queues, open) in open {
            let waiting = self
                .pending
                .iter()
                .filter_map(|jid| self.leases.get(jid))
                .filter(|l| queues.iter().any(|q| q == l.job.queue()))
                .count();
            let in_flight = self.fetches.in_flight(queues);
            let demand = open.saturating_sub(waiting + in_flight);
            lists_with_demand += usize::from(demand > 0);
            if demand > 0 && best.is_none_or(|(q, d)| demand > d || (demand == d && queues < q)) {
                best = Some((queues, demand));
            }
        }
        let (queues, demand) = best?;
        let queues = queues.clone();
        let depth = self
            .fetches
            .claim(&queues, demand, self.rules.max_fetch_depth, room)?;
        // More connections help only if another pipeline this deep fits.
        let more = (demand > depth || lists_with_demand > 1) && room - depth >= depth;
        Some(FetchClaim {
            queues,
            depth,
            more,
        })
    }

    pub(super) fn end_claim(&mut self, queues: &[String], n: usize) {
        if self.fetches.end(queues, n) {
            // The shutdown waits for the last FETCH in flight.
            self.changed.notify_waiters();
        }
    }

    /// Whether any claimed FETCH has not been answered yet.
    pub(crate) fn fetches_in_flight(&self) -> bool {
        self.fetches.any_in_flight()
    }

    /// Records the jobs a claimed fetch returned, all at once (see
    /// [`Dispatcher::fetched_job`] and [`Dispatcher::fetch_done`]).
    #[cfg(test)]
    pub(crate) fn fetched(
        &mut self,
        claim: &FetchClaim,
        raws: Vec<bytes::Bytes>,
        fetched_at: Instant,
        fetched_unix_ms: i64,
    ) {
        let got = raws.len();
        for raw in raws {
            let job = crate::job::from_faktory_json(raw);
            self.fetched_job(claim, job, fetched_at, fetched_unix_ms);
        }
        self.fetch_done(claim, got);
    }

    /// Records one job of a claimed fetch whose FETCHes were sent at
    /// `fetched_at` (`fetched_unix_ms` on the wall clock), as soon as it
    /// arrives, and hands it to a session if one has room. The fetcher
    /// parses the job before taking the dispatcher's lock, so the JSON work
    /// does not hold up sessions and relays.
    pub(crate) fn fetched_job(
        &mut self,
        claim: &FetchClaim,
        job: Result<FetchedJob, JobError>,
        fetched_at: Instant,
        fetched_unix_ms: i64,
    ) {
        self.end_claim(&claim.queues, 1);
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                // Without a jid nothing can be done with it; Faktory's
                // reservation expiry will retry it.
                warn!(error = %e, "fetched job is not valid job JSON; left to Faktory's reservation expiry");
                return;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let jid = job.jid().to_owned();
        let mut lease = Lease::new(job, seq, fetched_at, fetched_unix_ms);
        if self.closed || !self.fetching {
            // Arrived from a FETCH still in flight when fetching stopped
            // (shutdown or Faktory's quiet: every session drains, none will
            // take it) or after the final release: straight back to Faktory
            // while the relays still run.
            let release = release_of(&lease);
            self.settles.hand_over(&mut lease, release);
        }
        let waiting = lease.holder != Holder::Settling;
        if let Some(old) = self.leases.insert(jid.clone(), lease) {
            // Faktory handed out the same jid again (its reservation of the
            // old one expired, or a release copy came back): the new
            // reservation is the one that counts.
            warn!(jid = %jid, "fetched a job the gateway already held; replacing its lease");
            leave_session(&mut self.sessions, old.holder, &jid);
            if matches!(old.holder, Holder::Pending { .. }) {
                self.pending.retain(|j| *j != jid);
            }
        }
        if waiting {
            self.pending.push_back(jid);
            self.fill(Instant::now());
        }
        self.changed.notify_waiters();
    }

    /// Ends a claimed fetch that handed over `got` jobs, and adapts the
    /// pipeline depth: deeper when every FETCH returned a job, down to what
    /// came back (at least 1) otherwise.
    pub(crate) fn fetch_done(&mut self, claim: &FetchClaim, got: usize) {
        self.end_claim(&claim.queues, claim.depth.saturating_sub(got));
        self.fetches
            .adapt(&claim.queues, claim.depth, got, self.rules.max_fetch_depth);
        self.fetch_wake.notify_one();
    }

    /// Ends a claimed fetch that failed after handing over `got` jobs.
    pub(crate) fn fetch_failed(&mut self, claim: &FetchClaim, got: usize) {
        self.end_claim(&claim.queues, claim.depth.saturating_sub(got));
        self.fetches.reset_depth(&claim.queues);
        self.fetch_wake.notify_one();
    }

    /// Stops all fetching (Faktory said quiet, or shutdown): no more claims,
    /// and jobs still arriving from FETCHes in flight are released at once.
    pub(crate) fn stop_fetching(&mut self) {
        self.fetching = false;
        self.fetch_wake.notify_one();
    }

    /// Whether fetching is on (see [`Dispatcher::stop_fetching`]).
    pub(crate) fn is_fetching(&self) -> bool {
        self.fetching
    }
}
