//! The end-of-run check: every pushed jid is acked, or sits in the dead set
//! exactly as its injected failure dictates; nothing is lost; duplicates
//! (handler runs beyond what the job's class needs) are counted; retries
//! consumed by anything but the injection are counted and must be zero. The
//! exceptions are Faktory's reservation expiries (`ReservationExpired`) that
//! nothing but the expiry can resolve, reported apart: jobs reserved by a
//! gateway when it was killed, and, in runs that cut the gateway's Faktory
//! connections, jobs Faktory reserved for a FETCH whose connection was cut
//! (a FETCH blocked on an empty queue is handed the next job like Redis
//! `BRPOP`, connection alive or not; a reply in flight is lost with the
//! connection). The blocked FETCHes counted at the cuts bound the former.
//! Then the summary table.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use faktory_test_server::ServerHandle;

use crate::faults::{Fault, FaultCounts};
use crate::plan::{self, Class, INJECTED};
use crate::producer::PushStats;
use crate::record::Record;
use crate::run::Options;

/// Faktory's errtype for an expired reservation.
const RESERVATION_EXPIRED: &str = "ReservationExpired";
/// How many example jids a problem line shows.
const EXAMPLES: usize = 5;

/// What the run leaves behind for the check.
pub(crate) struct Evidence<'a> {
    pub(crate) options: Options,
    pub(crate) record: &'a Record,
    pub(crate) handle: &'a ServerHandle,
    pub(crate) push: &'a PushStats,
    pub(crate) faults: FaultCounts,
    pub(crate) clock_steps: u64,
    pub(crate) final_expiry: bool,
    pub(crate) stranded: &'a HashSet<String>,
    pub(crate) blocked_fetches_cut: u64,
    pub(crate) notes: Vec<String>,
    pub(crate) faults_done: Duration,
    pub(crate) elapsed: Duration,
}

/// The outcome of a run.
#[derive(Debug)]
pub(crate) struct Summary {
    options: Options,
    pushed: u64,
    push_failed_calls: u64,
    push_unavailable: u64,
    push_rejected: u64,
    faults: FaultCounts,
    clock_steps: u64,
    final_expiry: bool,
    handler_runs: u64,
    injected: u64,
    expected_acked: u64,
    acked_ok: u64,
    expected_dead: u64,
    dead_ok: u64,
    /// Jids gone from Faktory without a successful run, or never pushed.
    lost: Vec<String>,
    /// Jids still at Faktory where they should not be (queue, reservation,
    /// schedule, retry, or dead when they should be acked).
    misplaced: Vec<(String, String)>,
    duplicate_jids: u64,
    extra_runs: u64,
    /// Jids whose failure record named an errtype other than the injected
    /// one, except the expiry of jobs stranded by a kill: a retry consumed
    /// by a gateway- or network-side event.
    gateway_side: Vec<(String, Vec<String>)>,
    expired: u64,
    expired_stranded: u64,
    /// Expiries of jobs not stranded by a kill, in a run that cut Faktory
    /// connections (see the module docs).
    expired_after_cuts: u64,
    blocked_fetches_cut: u64,
    stranded: u64,
    faktory_expired_counter: u64,
    notes: Vec<String>,
    faults_done: Duration,
    elapsed: Duration,
}

impl Summary {
    /// Whether the run upholds the promise: nothing lost or misplaced, and
    /// no retry consumed by a gateway-side event.
    pub(crate) fn passed(&self) -> bool {
        self.lost.is_empty() && self.misplaced.is_empty() && self.gateway_side.is_empty()
    }
}

/// Where a job Faktory still holds is.
fn location(
    handle: &ServerHandle,
    dead: &HashMap<String, serde_json::Value>,
    jid: &str,
) -> Option<String> {
    let job = handle.job(jid)?;
    let errtype = job["failure"]["errtype"].as_str().unwrap_or("").to_owned();
    Some(if dead.contains_key(jid) {
        format!("dead ({errtype})")
    } else if handle.reserved_jids().iter().any(|j| j == jid) {
        "reserved".to_owned()
    } else if errtype.is_empty() {
        "queued or scheduled".to_owned()
    } else {
        format!("retry ({errtype})")
    })
}

/// Checks every jid of the run.
pub(crate) fn verify(evidence: Evidence<'_>) -> Summary {
    let Evidence {
        options,
        record,
        handle,
        push,
        faults,
        clock_steps,
        final_expiry,
        stranded,
        blocked_fetches_cut,
        notes,
        faults_done,
        elapsed,
    } = evidence;
    let dead: HashMap<String, serde_json::Value> = handle
        .dead()
        .into_iter()
        .filter_map(|job| Some((job["jid"].as_str()?.to_owned(), job)))
        .collect();
    let mut summary = Summary {
        options: options.clone(),
        pushed: push.accepted.load(Ordering::Relaxed) + push.rejected.load(Ordering::Relaxed),
        push_failed_calls: push.failed_calls.load(Ordering::Relaxed),
        push_unavailable: push.unavailable.load(Ordering::Relaxed),
        push_rejected: push.rejected.load(Ordering::Relaxed),
        faults,
        clock_steps,
        final_expiry,
        handler_runs: record.runs(),
        injected: 0,
        expected_acked: 0,
        acked_ok: 0,
        expected_dead: 0,
        dead_ok: 0,
        lost: Vec::new(),
        misplaced: Vec::new(),
        duplicate_jids: 0,
        extra_runs: 0,
        gateway_side: Vec::new(),
        expired: 0,
        expired_stranded: 0,
        expired_after_cuts: 0,
        blocked_fetches_cut,
        stranded: stranded.len() as u64,
        faktory_expired_counter: handle.counters().expired,
        notes,
        faults_done,
        elapsed,
    };
    let cuts = summary.faults.get(Fault::CutFaktoryConnections);
    for index in 0..options.jobs {
        let jid = plan::jid(options.seed, index);
        let class = plan::class_of(&jid);
        let seen = record.get(&jid);
        summary.injected += u64::from(seen.injected);
        if seen.runs > class.expected_runs() {
            summary.duplicate_jids += 1;
            summary.extra_runs += u64::from(seen.runs - class.expected_runs());
        }
        let at_faktory = location(handle, &dead, &jid);
        let mut errtypes = seen.foreign_errtypes.clone();
        if let Some(final_errtype) = dead
            .get(&jid)
            .and_then(|job| job["failure"]["errtype"].as_str())
            .filter(|e| *e != INJECTED && !errtypes.iter().any(|x| x == e))
        {
            errtypes.push(final_errtype.to_owned());
        }
        let expired = errtypes.iter().any(|e| e == RESERVATION_EXPIRED);
        let by_kill = expired && stranded.contains(&jid);
        let after_cuts = expired && !by_kill && cuts > 0;
        let excused = by_kill || after_cuts;
        if expired {
            summary.expired += 1;
            summary.expired_stranded += u64::from(by_kill);
            summary.expired_after_cuts += u64::from(after_cuts);
        }
        // Only the expiry of a job a killed gateway or a cut Faktory
        // connection stranded is beyond the gateway's reach; every other
        // foreign failure used a retry that nothing should have cost.
        if errtypes.iter().any(|e| e != RESERVATION_EXPIRED) || (expired && !excused) {
            summary.gateway_side.push((jid.clone(), errtypes));
        }
        match class {
            Class::Plain | Class::FailOnce => {
                summary.expected_acked += 1;
                match at_faktory {
                    None if seen.successes > 0 => summary.acked_ok += 1,
                    None => summary.lost.push(jid),
                    Some(place) => summary.misplaced.push((jid, place)),
                }
            }
            Class::FailToDead => {
                summary.expected_dead += 1;
                // `retry: -1` sends a job to the dead set on its first
                // failure: the injected one, or an allowed expiry that came
                // before the job could run (its failure record then says so).
                let dead_as_dictated = dead.get(&jid).is_some_and(|job| {
                    let errtype = &job["failure"]["errtype"];
                    *errtype == INJECTED || (excused && *errtype == RESERVATION_EXPIRED)
                });
                match at_faktory {
                    Some(_) if dead_as_dictated => summary.dead_ok += 1,
                    None => summary.lost.push(jid),
                    Some(place) => summary.misplaced.push((jid, place)),
                }
            }
        }
    }
    summary
}

fn examples<T: fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(EXAMPLES)
        .map(|i| format!("{i:?}"))
        .collect();
    if items.len() > EXAMPLES {
        format!("{} ...", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "| {name:<46} | {value:>14} |")
        };
        writeln!(
            f,
            "chaos run: seed {}, {} workers, {} producers",
            self.options.seed, self.options.workers, self.options.producers
        )?;
        writeln!(f, "| {:<46} | {:>14} |", "what", "count")?;
        writeln!(f, "|{:-<48}|{:-<16}|", "", "")?;
        row(f, "jobs", self.options.jobs.to_string())?;
        row(f, "pushed (accepted by faktory)", self.pushed.to_string())?;
        row(
            f,
            "  push calls failed whole (resent)",
            self.push_failed_calls.to_string(),
        )?;
        row(
            f,
            "  jobs answered unavailable (resent)",
            self.push_unavailable.to_string(),
        )?;
        row(
            f,
            "  resent jobs faktory already held (rejected)",
            self.push_rejected.to_string(),
        )?;
        row(
            f,
            "faults injected (total)",
            self.faults.total().to_string(),
        )?;
        for fault in Fault::ALL {
            row(f, &format!("  {fault}"), self.faults.get(fault).to_string())?;
        }
        row(f, "handler failures injected", self.injected.to_string())?;
        row(
            f,
            "faktory clock steps (retry backoff)",
            self.clock_steps.to_string(),
        )?;
        row(f, "handler runs", self.handler_runs.to_string())?;
        row(
            f,
            "expected acked / acked",
            format!("{} / {}", self.expected_acked, self.acked_ok),
        )?;
        row(
            f,
            "expected dead / dead (as dictated)",
            format!("{} / {}", self.expected_dead, self.dead_ok),
        )?;
        row(f, "LOST (must be 0)", self.lost.len().to_string())?;
        row(
            f,
            "misplaced at faktory (must be 0)",
            self.misplaced.len().to_string(),
        )?;
        row(
            f,
            "duplicates: jids run more than needed",
            self.duplicate_jids.to_string(),
        )?;
        row(
            f,
            "duplicates: extra handler runs",
            self.extra_runs.to_string(),
        )?;
        row(
            f,
            "RETRIES CONSUMED by gateway/network events (0)",
            self.gateway_side.len().to_string(),
        )?;
        row(
            f,
            "  of which reservation expiries",
            (self.expired - self.expired_stranded - self.expired_after_cuts).to_string(),
        )?;
        row(f, "reservation expiries in all", self.expired.to_string())?;
        row(
            f,
            "  of jobs stranded by abrupt kills (allowed)",
            self.expired_stranded.to_string(),
        )?;
        row(
            f,
            "  after faktory connection cuts (allowed)",
            self.expired_after_cuts.to_string(),
        )?;
        row(
            f,
            "FETCHes blocked at faktory when cut",
            self.blocked_fetches_cut.to_string(),
        )?;
        row(
            f,
            "jobs stranded by abrupt gateway kills",
            self.stranded.to_string(),
        )?;
        row(
            f,
            "final forced expiry (clock + reserve_for)",
            self.final_expiry.to_string(),
        )?;
        row(
            f,
            "faktory's expired-reservation counter",
            self.faktory_expired_counter.to_string(),
        )?;
        row(
            f,
            "fault phase / whole run (s)",
            format!(
                "{:.1} / {:.1}",
                self.faults_done.as_secs_f64(),
                self.elapsed.as_secs_f64()
            ),
        )?;
        if !self.lost.is_empty() {
            writeln!(f, "lost: {}", examples(&self.lost))?;
        }
        if !self.misplaced.is_empty() {
            writeln!(f, "misplaced: {}", examples(&self.misplaced))?;
        }
        if !self.gateway_side.is_empty() {
            writeln!(f, "gateway-side retries: {}", examples(&self.gateway_side))?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        writeln!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
