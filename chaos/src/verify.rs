//! The end-of-run check, from what the handlers saw ([`Record`]) and what
//! Faktory still held of the run at the end ([`Place`] by jid: the test
//! server's tables, or a real Faktory's [`inventory`](crate::inventory)).
//!
//! Every pushed jid must be acked, or sit in the dead set exactly as its
//! injected failure dictates; nothing may be lost. Beyond that the check
//! counts, per fault kind:
//! - **re-runs of finished jobs**: a handler run that started after the job
//!   was finished (its first success returned, or the injected failure of a
//!   dead-bound job) — its result was lost on the way to Faktory;
//! - **other extra runs**: runs beyond what the job's class needs that
//!   started before it was finished (a run cut short, or a job delivered
//!   twice);
//! - **extra runs of re-pushed jobs**: runs beyond what the class needs of a
//!   job whose `Push` had to be sent again (the call failed or answered
//!   UNAVAILABLE): Faktory may have taken the first push all the same (its
//!   PUSHB went out, the reply was lost with a cut connection or a killed
//!   gateway), and then the job exists twice. These are blamed on the
//!   fault just before that answer and allowed: the producer pushed twice;
//! - **left to reservation expiry**: a retry consumed with errtype
//!   `ReservationExpired` (the test server's clock is moved past
//!   `reserve_for` at the end), or, against a real Faktory whose 30-minute
//!   expiry the run does not wait for, a job still reserved at the end;
//! - **lost**.
//!
//! Each count is attributed to the fault that most likely caused it: the
//! first fault after the job was last fine (finished, last started, or
//! accepted by `Push`) and before the symptom (the re-run's start). For a
//! job left to the expiry the first gateway kill after that moment is
//! blamed, else the first Faktory connection cut or listener restart, else
//! the first graceful restart, else any fault, since worker-side faults
//! leave nothing reserved (the gateway redelivers their jobs) and a
//! graceful restart releases what it holds; against the test server a job Faktory
//! held reserved just after a gateway kill is blamed on the kill (exact
//! with one gateway; with several, the other gateways' reservations at that
//! moment are included).
//!
//! The rule: lost and misplaced 0; re-runs of finished jobs only after a
//! worker abort (the results it had not sent are gone with it); reservation
//! expiries (retries consumed by anything but the injection) only for jobs
//! a gateway kill stranded before any handler had finished them (fetched,
//! not yet delivered or run), and, in runs that cut the gateway's Faktory
//! connections, for jobs such a cut stranded (a FETCH blocked at Faktory on
//! an empty queue is handed the next job like Redis `BRPOP`, connection
//! alive or not; a reply in flight is lost with the connection). A job a
//! handler finished survives a gateway kill: the worker keeps the result
//! until Faktory has it and sends it to the next gateway, which settles it
//! by jid. Unless that worker was aborted too, after it finished the job,
//! shortly before the kill ([`AWAY_AT_KILL`]) or before the kill's failover
//! was over ([`FAILOVER`]): then the result died
//! with the worker, the job went back to the gateway to be delivered again,
//! and the kill stranded it there; such jobs are counted apart and allowed,
//! like re-runs after a worker abort. And unless its push had been sent again
//! (see "extra runs of re-pushed jobs"): then Faktory may have held it twice,
//! and the copy a killed gateway fetched after the other was acked is what
//! stays reserved; counted apart and allowed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::faults::{Fault, FaultCounts, FaultLog};
use crate::inventory::Place;
use crate::options::Options;
use crate::plan::{self, Class, INJECTED, RESERVATION_EXPIRED};
use crate::producer::PushStats;
use crate::record::{JidRecord, Record};

/// The faults that can leave a job reserved at Faktory with nobody to
/// settle it, in the order they are blamed: a killed gateway leaves what it
/// fetched, a cut Faktory connection a reply in flight, and a graceful
/// restart should leave nothing (it releases what it holds).
const STRANDING: [&[Fault]; 3] = [
    &[Fault::KillGateway],
    &[Fault::CutFaktoryConnections, Fault::RestartFaktoryListener],
    &[Fault::RestartGateway],
];
/// How many example jids a problem line shows.
const EXAMPLES: usize = 5;

/// What the run leaves behind for the check.
pub(crate) struct Evidence<'a> {
    pub(crate) options: Options,
    pub(crate) real_faktory: bool,
    pub(crate) record: &'a Record,
    pub(crate) places: HashMap<String, Place>,
    pub(crate) push: &'a PushStats,
    pub(crate) faults: FaultCounts,
    pub(crate) log: FaultLog,
    pub(crate) clock_steps: u64,
    pub(crate) final_expiry: bool,
    /// Jids the test server held reserved just after a gateway kill.
    pub(crate) stranded: &'a HashSet<String>,
    pub(crate) blocked_fetches_cut: u64,
    pub(crate) faktory_expired_counter: Option<u64>,
    pub(crate) notes: Vec<String>,
    /// When the run started (timelines are told from here).
    pub(crate) started: Instant,
    pub(crate) faults_done: Duration,
    pub(crate) elapsed: Duration,
}

/// The per-fault counts; see the module docs.
#[derive(Debug, Default, Clone, Copy)]
struct Attributed {
    reruns_of_finished: u64,
    repushed_runs: u64,
    extra_runs: u64,
    left_to_expiry: u64,
    lost: u64,
}

/// A row key of the per-fault table: a fault kind, or none.
type Cause = Option<Fault>;

/// The outcome of a run.
#[derive(Debug)]
pub(crate) struct Summary {
    options: Options,
    real_faktory: bool,
    pushed: u64,
    push_failed_calls: u64,
    push_unavailable: u64,
    push_rejected: u64,
    faults: FaultCounts,
    clock_steps: u64,
    final_expiry: bool,
    handler_runs: u64,
    /// Handler runs that ended after their worker was aborted.
    runs_after_abort: u64,
    injected: u64,
    expected_acked: u64,
    acked_ok: u64,
    expected_dead: u64,
    dead_ok: u64,
    /// Jids gone from Faktory without a successful run, or never pushed.
    lost: Vec<String>,
    /// Jids still at Faktory where they should not be (queue, schedule,
    /// retry, or dead when they should be acked).
    misplaced: Vec<(String, String)>,
    duplicate_jids: u64,
    by_cause: HashMap<Cause, Attributed>,
    /// Re-runs of finished jobs after anything but a worker abort.
    reruns_not_allowed: Vec<(String, Cause)>,
    /// Jids whose retry was consumed (or, against a real Faktory, is
    /// waiting to be) by something the rule does not allow.
    gateway_side: Vec<(String, Vec<String>)>,
    left_to_expiry: u64,
    expired_stranded: u64,
    finished_stranded_by_kill: u64,
    /// Stranded by a kill after a handler finished them, on a worker
    /// aborted before the kill's failover was over (the result died with it).
    finished_lost_with_worker: u64,
    /// Stranded by a kill after a handler finished them, whose push had
    /// been sent again: the stranded one is likely their second copy.
    finished_second_copy: u64,
    expired_after_cuts: u64,
    blocked_fetches_cut: u64,
    stranded: u64,
    faktory_expired_counter: Option<u64>,
    /// The histories of the first problem jids (see [`timeline`]).
    timelines: Vec<String>,
    notes: Vec<String>,
    faults_done: Duration,
    elapsed: Duration,
}

impl Summary {
    /// Whether the run upholds the rule of the module docs.
    pub(crate) fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.misplaced.is_empty()
            && self.gateway_side.is_empty()
            && self.reruns_not_allowed.is_empty()
    }
}

/// When `seen` was last fine: its last handler event, else when `Push`
/// accepted it.
fn last_fine(seen: &JidRecord, accepted: Option<Instant>) -> Option<Instant> {
    [seen.finished_at, seen.run_starts.last().copied(), accepted]
        .into_iter()
        .flatten()
        .max()
}

/// How long after a gateway kill a worker may still hold results for the
/// killed gateway: it takes that long at most to open a stream to the next
/// one and hand them over (the failover bound).
const FAILOVER: Duration = Duration::from_secs(2);

/// How long before a gateway kill a worker's abort can still leave that
/// gateway holding the worker's jobs: they wait the reconnect grace (the
/// gateway's default, 5 s) for the worker to come back, then the
/// redelivery grace the run sets (2 s) for another worker, plus 1 s.
const AWAY_AT_KILL: Duration = Duration::from_secs(8);

/// Whether the worker that finished `seen` was aborted after that, no
/// earlier than [`AWAY_AT_KILL`] before the first gateway kill that
/// followed and no later than [`FAILOVER`] after it: the result it held
/// (unsent, or sent to the gateway that was then killed before it reached
/// Faktory) died with it, and the job stayed with the killed gateway.
fn result_died_with_worker(seen: &JidRecord, record: &Record, log: &FaultLog) -> bool {
    let (Some(finished), Some(aborted)) = (seen.finished_at, record.finisher_aborted_at(seen))
    else {
        return false;
    };
    log.first_of_after(&[Fault::KillGateway], finished)
        .is_some_and(|(kill, _)| aborted + AWAY_AT_KILL >= kill && aborted <= kill + FAILOVER)
}

/// One problem jid's history for the report: when `Push` last accepted it
/// and last had to send it again, its runs (when, on which
/// worker), when it was finished and by which worker (and when that worker
/// was aborted), and the faults from a second before its first event to
/// [`FAILOVER`] after its last; times are seconds since `started`.
fn timeline(
    jid: &str,
    seen: &JidRecord,
    record: &Record,
    log: &FaultLog,
    started: Instant,
    accepted: Option<Instant>,
    resent: Option<Instant>,
) -> String {
    let secs = |at: Instant| format!("{:.3}", at.duration_since(started).as_secs_f64());
    let runs: Vec<String> = seen
        .run_starts
        .iter()
        .zip(&seen.run_workers)
        .map(|(at, worker)| format!("{} w{worker}", secs(*at)))
        .collect();
    let finished = match (seen.finished_at, seen.finished_by) {
        (Some(at), Some(worker)) => {
            let aborted = record
                .aborted_at(worker)
                .map_or("not aborted".to_owned(), |a| format!("aborted {}", secs(a)));
            format!("finished {} by w{worker} ({aborted})", secs(at))
        }
        _ => "not finished".to_owned(),
    };
    let pushed = format!(
        "accepted {}, sent again {}",
        accepted.map_or("never".to_owned(), secs),
        resent.map_or("never".to_owned(), secs)
    );
    let events = || {
        [accepted, resent, seen.finished_at]
            .into_iter()
            .chain(seen.run_starts.iter().copied().map(Some))
            .flatten()
    };
    let from = events().min().unwrap_or(started);
    let until = events().max().unwrap_or(from);
    let faults: Vec<String> = log
        .between(from - Duration::from_secs(1), until + FAILOVER)
        .iter()
        .map(|(at, fault)| format!("{} {fault}", secs(*at)))
        .collect();
    format!(
        "{jid}: {pushed}; runs [{}]; {finished}; faults [{}]",
        runs.join(", "),
        faults.join(", ")
    )
}

/// Checks every jid of the run.
pub(crate) fn verify(evidence: Evidence<'_>) -> Summary {
    let Evidence {
        options,
        real_faktory,
        record,
        places,
        push,
        faults,
        log,
        clock_steps,
        final_expiry,
        stranded,
        blocked_fetches_cut,
        faktory_expired_counter,
        notes,
        started,
        faults_done,
        elapsed,
    } = evidence;
    let accepted_at = push.accepted_at.lock().clone();
    let resent_at = push.resent_at.lock().clone();
    let mut summary = Summary {
        options: options.clone(),
        real_faktory,
        pushed: push.accepted.load(Ordering::Relaxed) + push.rejected.load(Ordering::Relaxed),
        push_failed_calls: push.failed_calls.load(Ordering::Relaxed),
        push_unavailable: push.unavailable.load(Ordering::Relaxed),
        push_rejected: push.rejected.load(Ordering::Relaxed),
        faults,
        clock_steps,
        final_expiry,
        handler_runs: record.runs(),
        runs_after_abort: record.after_abort(),
        injected: 0,
        expected_acked: 0,
        acked_ok: 0,
        expected_dead: 0,
        dead_ok: 0,
        lost: Vec::new(),
        misplaced: Vec::new(),
        duplicate_jids: 0,
        by_cause: HashMap::new(),
        reruns_not_allowed: Vec::new(),
        gateway_side: Vec::new(),
        left_to_expiry: 0,
        expired_stranded: 0,
        finished_stranded_by_kill: 0,
        finished_lost_with_worker: 0,
        finished_second_copy: 0,
        expired_after_cuts: 0,
        blocked_fetches_cut,
        stranded: stranded.len() as u64,
        faktory_expired_counter,
        timelines: Vec::new(),
        notes,
        faults_done,
        elapsed,
    };
    for index in 0..options.jobs {
        let jid = options.plan.jid(index);
        let class = plan::class_of(&jid);
        let seen = record.get(&jid);
        let place = places.get(&jid);
        summary.injected += u64::from(seen.injected);
        if seen.runs > class.expected_runs() {
            summary.duplicate_jids += 1;
        }
        let rerun_not_allowed = count_runs(
            &mut summary,
            &log,
            record,
            &jid,
            &seen,
            class,
            resent_at.get(&jid).copied(),
        );

        let mut errtypes = seen.foreign_errtypes.clone();
        if let Some(Place::Retry(errtype) | Place::Dead(errtype)) = place
            && errtype != INJECTED
            && !errtypes.contains(errtype)
        {
            errtypes.push(errtype.clone());
        }
        let reserved = place == Some(&Place::Reserved);
        let left = reserved || errtypes.iter().any(|e| e == RESERVATION_EXPIRED);
        let fine = last_fine(&seen, accepted_at.get(&jid).copied());
        let cause = if stranded.contains(&jid) {
            Some(Fault::KillGateway)
        } else if left {
            // Only faults on the gateway's side of the path can leave a
            // reservation behind (the gateway redelivers a lost worker's
            // jobs), so they are blamed first, in the order of STRANDING
            // (against the test server kills are known exactly, above).
            let kinds = STRANDING.iter().skip(usize::from(!real_faktory));
            fine.and_then(|from| {
                kinds
                    .clone()
                    .find_map(|kinds| log.first_of_after(kinds, from))
                    .map(|(_, fault)| fault)
                    .or_else(|| log.first_between(from, None))
            })
        } else {
            fine.and_then(|from| log.first_between(from, None))
        };
        if left {
            summary.left_to_expiry += 1;
            summary.by_cause.entry(cause).or_default().left_to_expiry += 1;
        }
        let by_kill = left && cause == Some(Fault::KillGateway);
        let finished = by_kill && seen.finished_before_expiry();
        let with_worker = finished && result_died_with_worker(&seen, record, &log);
        // A job whose push was sent again may exist twice at Faktory; the
        // copy a killed gateway fetched after the other was finished and
        // acked is what stays reserved.
        let second_copy = finished && !with_worker && resent_at.contains_key(&jid);
        let finished_by_kill = finished && !with_worker && !second_copy;
        let after_cuts = left
            && matches!(
                cause,
                Some(Fault::CutFaktoryConnections | Fault::RestartFaktoryListener)
            );
        summary.expired_stranded += u64::from(by_kill);
        summary.finished_stranded_by_kill += u64::from(finished_by_kill);
        summary.finished_lost_with_worker += u64::from(with_worker);
        summary.finished_second_copy += u64::from(second_copy);
        summary.expired_after_cuts += u64::from(after_cuts);
        let excused = (by_kill && !finished_by_kill) || after_cuts;
        let problem = errtypes.iter().any(|e| e != RESERVATION_EXPIRED) || (left && !excused);
        if (problem || rerun_not_allowed) && summary.timelines.len() < EXAMPLES {
            summary.timelines.push(timeline(
                &jid,
                &seen,
                record,
                &log,
                started,
                accepted_at.get(&jid).copied(),
                resent_at.get(&jid).copied(),
            ));
        }
        // Only the expiry of a job a killed gateway had not delivered to a
        // handler, or a cut Faktory connection stranded, is beyond the
        // gateway's reach (a worker keeps the results Faktory has not
        // confirmed and sends them to the next gateway); every other
        // foreign failure used a retry that nothing should have cost.
        if problem {
            if reserved {
                errtypes.push("still reserved".to_owned());
            }
            summary.gateway_side.push((jid.clone(), errtypes));
        }
        // A job still reserved at a real Faktory is reported above and not
        // also as misplaced: only the expiry could resolve it.
        let place = place.filter(|p| **p != Place::Reserved);
        match class {
            Class::Plain | Class::FailOnce => {
                summary.expected_acked += 1;
                match place {
                    None if seen.successes > 0 => summary.acked_ok += 1,
                    None if reserved => {}
                    None => {
                        summary.by_cause.entry(cause).or_default().lost += 1;
                        summary.lost.push(jid);
                    }
                    Some(place) => summary.misplaced.push((jid, format!("{place:?}"))),
                }
            }
            Class::FailToDead => {
                summary.expected_dead += 1;
                // `retry: -1` sends a job to the dead set on its first
                // failure: the injected one, or an allowed expiry that came
                // before the job could run (its failure record then says so).
                let dead_as_dictated = match place {
                    Some(Place::Dead(errtype)) => {
                        errtype == INJECTED || (excused && errtype == RESERVATION_EXPIRED)
                    }
                    _ => false,
                };
                match place {
                    Some(_) if dead_as_dictated => summary.dead_ok += 1,
                    None if reserved => {}
                    None => {
                        summary.by_cause.entry(cause).or_default().lost += 1;
                        summary.lost.push(jid);
                    }
                    Some(place) => summary.misplaced.push((jid, format!("{place:?}"))),
                }
            }
        }
    }
    summary
}

/// Counts `seen`'s runs beyond the first: re-runs of the finished job, and
/// other runs beyond what `class` needs, each attributed to a fault. A job
/// whose push had to be sent again (`resent`: when its call failed or it
/// was answered UNAVAILABLE) may have been pushed twice: its runs beyond
/// what the class needs are counted apart, blamed on the fault just before
/// that answer. Returns whether a re-run broke the rule.
fn count_runs(
    summary: &mut Summary,
    log: &FaultLog,
    record: &Record,
    jid: &str,
    seen: &JidRecord,
    class: Class,
    resent: Option<Instant>,
) -> bool {
    if let Some(resent) = resent {
        let extra = seen
            .run_starts
            .len()
            .saturating_sub(class.expected_runs() as usize);
        summary
            .by_cause
            .entry(log.last_before(resent))
            .or_default()
            .repushed_runs += extra as u64;
        return false;
    }
    let mut not_allowed = false;
    let finisher_aborted_at = record.finisher_aborted_at(seen);
    for (k, &start) in seen.run_starts.iter().enumerate().skip(1) {
        if let Some(finished) = seen.finished_at.filter(|at| start > *at) {
            // The worker that finished the job aborted before this run: its
            // result may have died with it (known exactly, unlike the
            // window, whose abort may be logged a moment before the result).
            let finisher_aborted = finisher_aborted_at.is_some_and(|aborted| aborted <= start);
            let cause = if finisher_aborted {
                Some(Fault::AbortWorker)
            } else {
                log.first_between(finished, Some(start))
            };
            summary
                .by_cause
                .entry(cause)
                .or_default()
                .reruns_of_finished += 1;
            if cause != Some(Fault::AbortWorker) {
                summary.reruns_not_allowed.push((jid.to_owned(), cause));
                not_allowed = true;
            }
        } else if k >= class.expected_runs() as usize {
            let cause = log.first_between(seen.run_starts[k - 1], Some(start));
            summary.by_cause.entry(cause).or_default().extra_runs += 1;
        }
    }
    not_allowed
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

impl Summary {
    fn fault_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "per fault kind (attributed by time window, see the chaos crate docs):"
        )?;
        writeln!(
            f,
            "| {:<34} | {:>8} | {:>12} | {:>11} | {:>11} | {:>13} | {:>6} |",
            "fault", "injected", "re-runs of", "other extra", "extra runs", "left to", "lost"
        )?;
        writeln!(
            f,
            "| {:<34} | {:>8} | {:>12} | {:>11} | {:>11} | {:>13} | {:>6} |",
            "", "", "finished", "runs", "re-pushed", "resv. expiry", ""
        )?;
        writeln!(
            f,
            "|{:-<36}|{:-<10}|{:-<14}|{:-<13}|{:-<13}|{:-<15}|{:-<8}|",
            "", "", "", "", "", "", ""
        )?;
        let rows = Fault::ALL
            .iter()
            .map(|fault| (Some(*fault), fault.to_string()))
            .chain(std::iter::once((None, "no fault in the window".to_owned())));
        for (cause, name) in rows {
            let counts = self.by_cause.get(&cause).copied().unwrap_or_default();
            let injected =
                cause.map_or("—".to_owned(), |fault| self.faults.get(fault).to_string());
            writeln!(
                f,
                "| {name:<34} | {injected:>8} | {:>12} | {:>11} | {:>11} | {:>13} | {:>6} |",
                counts.reruns_of_finished,
                counts.extra_runs,
                counts.repushed_runs,
                counts.left_to_expiry,
                counts.lost
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "| {name:<52} | {value:>14} |")
        };
        writeln!(
            f,
            "chaos run against {}: seed {}, queue {}, {} gateways, {} workers, {} producers",
            if self.real_faktory {
                "FAKTORY_URL"
            } else {
                "the test server"
            },
            self.options.plan.seed,
            self.options.plan.queue,
            self.options.gateways,
            self.options.workers,
            self.options.producers
        )?;
        writeln!(f, "| {:<52} | {:>14} |", "what", "count")?;
        writeln!(f, "|{:-<54}|{:-<16}|", "", "")?;
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
        row(f, "handler failures injected", self.injected.to_string())?;
        if !self.real_faktory {
            row(
                f,
                "faktory clock steps (retry backoff)",
                self.clock_steps.to_string(),
            )?;
        }
        row(f, "handler runs", self.handler_runs.to_string())?;
        row(
            f,
            "  ended after their worker was aborted (not results)",
            self.runs_after_abort.to_string(),
        )?;
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
        let total =
            |pick: fn(&Attributed) -> u64| -> u64 { self.by_cause.values().map(pick).sum() };
        row(
            f,
            "re-runs of finished jobs",
            total(|a| a.reruns_of_finished).to_string(),
        )?;
        row(
            f,
            "  not after a worker abort (0)",
            self.reruns_not_allowed.len().to_string(),
        )?;
        row(f, "other extra runs", total(|a| a.extra_runs).to_string())?;
        row(
            f,
            "extra runs of jobs pushed again (push answer lost)",
            total(|a| a.repushed_runs).to_string(),
        )?;
        row(
            f,
            "RETRIES CONSUMED not allowed by the rule (0)",
            self.gateway_side.len().to_string(),
        )?;
        row(
            f,
            if self.real_faktory {
                "left to reservation expiry (reserved at the end)"
            } else {
                "left to reservation expiry (ReservationExpired)"
            },
            self.left_to_expiry.to_string(),
        )?;
        row(
            f,
            "  stranded by gateway kills",
            self.expired_stranded.to_string(),
        )?;
        row(
            f,
            "    of which finished by a handler (0)",
            self.finished_stranded_by_kill.to_string(),
        )?;
        row(
            f,
            "    finished, then their worker aborted (allowed)",
            self.finished_lost_with_worker.to_string(),
        )?;
        row(
            f,
            "    finished, pushed twice (a second copy; allowed)",
            self.finished_second_copy.to_string(),
        )?;
        row(
            f,
            "  after faktory connection cuts (allowed)",
            self.expired_after_cuts.to_string(),
        )?;
        if !self.real_faktory {
            row(
                f,
                "FETCHes blocked at faktory when cut",
                self.blocked_fetches_cut.to_string(),
            )?;
            row(
                f,
                "reserved just after gateway kills",
                self.stranded.to_string(),
            )?;
            row(
                f,
                "final forced expiry (clock + reserve_for)",
                self.final_expiry.to_string(),
            )?;
        }
        if let Some(expired) = self.faktory_expired_counter {
            row(
                f,
                "faktory's expired-reservation counter",
                expired.to_string(),
            )?;
        }
        row(
            f,
            "fault phase / whole run (s)",
            format!(
                "{:.1} / {:.1}",
                self.faults_done.as_secs_f64(),
                self.elapsed.as_secs_f64()
            ),
        )?;
        self.fault_table(f)?;
        if !self.lost.is_empty() {
            writeln!(f, "lost: {}", examples(&self.lost))?;
        }
        if !self.misplaced.is_empty() {
            writeln!(f, "misplaced: {}", examples(&self.misplaced))?;
        }
        if !self.reruns_not_allowed.is_empty() {
            writeln!(
                f,
                "re-runs of finished jobs not allowed: {}",
                examples(&self.reruns_not_allowed)
            )?;
        }
        if !self.gateway_side.is_empty() {
            writeln!(f, "gateway-side retries: {}", examples(&self.gateway_side))?;
        }
        for timeline in &self.timelines {
            writeln!(f, "history of {timeline}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        writeln!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_dies_with_its_worker_only_if_aborted_before_the_failover() {
        let record = Record::default();
        record.start("j", None, 7);
        record.succeeded("j", 7);
        let seen = record.get("j");
        let finished = seen.finished_at.unwrap();
        let mut log = FaultLog::default();
        log.push(finished + Duration::from_secs(1), Fault::KillGateway);
        // Not aborted: its result must have reached a gateway.
        assert!(!result_died_with_worker(&seen, &record, &log));
        // Aborted before the kill's failover was over.
        record
            .aborted
            .lock()
            .insert(7, finished + Duration::from_millis(2500));
        assert!(result_died_with_worker(&seen, &record, &log));
        // Aborted long after the kill: it had handed the result over by then.
        record
            .aborted
            .lock()
            .insert(7, finished + Duration::from_secs(4));
        assert!(!result_died_with_worker(&seen, &record, &log));
        // Aborted long before the kill: its jobs had gone to other workers.
        let mut early = FaultLog::default();
        early.push(finished + Duration::from_secs(20), Fault::KillGateway);
        record
            .aborted
            .lock()
            .insert(7, finished + Duration::from_secs(1));
        assert!(!result_died_with_worker(&seen, &record, &early));
        // Aborted before it finished: another worker's abort.
        record
            .aborted
            .lock()
            .insert(7, finished - Duration::from_millis(1));
        assert!(!result_died_with_worker(&seen, &record, &log));
    }
}
