//! What each command does: validate like Faktory, change state, append the reply.
//!
//! Handlers write RESP into the connection's output buffer and return a [`Step`] telling the
//! connection whether to go on, close, or wait (a FETCH that found nothing blocks, and with it
//! every command pipelined behind it on that connection, exactly as in Faktory).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use serde::Deserialize;

use crate::clock::format_rfc3339_nano;
use crate::command::Command;
use crate::cost::Work;
use crate::job::{FailPayload, Job};
use crate::resp;
use crate::shared::Shared;
use crate::store::{FetchOutcome, QueueAction};
use crate::workers::ProcessState;

/// What the connection does after a command.
#[derive(Debug)]
pub(crate) enum Step {
    /// Reply written; read the next command.
    Continue,
    /// Close the connection (END).
    Close,
    /// FETCH found nothing and is registered as waiter `id`: block up to the fetch timeout
    /// for a job to arrive on `receive`.
    WaitForJob {
        id: u64,
        receive: tokio::sync::oneshot::Receiver<bytes::Bytes>,
    },
    /// FETCH from a quiet or terminated worker: sleep the fetch timeout, then `$-1`.
    SleepThenNothing,
}

/// The BEAT body (`server.ClientBeat`).
#[derive(Debug, Deserialize)]
struct Beat {
    #[serde(default)]
    wid: Option<String>,
    #[serde(default)]
    current_state: Option<String>,
    /// Only type-checked, as Faktory does; its value is not used here.
    #[serde(default, rename = "rss_kb")]
    _rss_kb: Option<i64>,
}

/// Executes one command line of a connection registered as `wid` ("" for producers), and
/// says what it cost (for the cost model).
pub(crate) fn execute(shared: &Shared, wid: &str, line: &[u8], out: &mut Vec<u8>) -> (Step, Work) {
    let command = Command::parse(line);
    if !matches!(command, Command::Unknown(_)) {
        shared.commands.fetch_add(1, Ordering::Relaxed);
    }
    let work = match command {
        Command::End => return (Step::Close, Work::Other),
        Command::Push(Some(arg)) => {
            push(shared, arg, out);
            Work::Push
        }
        Command::Push(None) => {
            resp::err(out, "internal error");
            Work::Other
        }
        Command::PushBulk(arg) => Work::PushBatch {
            jobs: push_bulk(shared, arg, out),
        },
        Command::Fetch(queues) => return (fetch(shared, wid, &queues, out), Work::Fetch),
        Command::Ack(arg) => {
            ack(shared, arg, out);
            Work::Ack
        }
        Command::Fail(arg) => {
            fail(shared, arg, out);
            Work::Fail
        }
        Command::Beat(arg) => {
            beat(shared, arg, out);
            Work::Beat
        }
        Command::Info => {
            let info = shared.info().to_string();
            resp::bulk(out, info.as_bytes());
            Work::Info
        }
        Command::Flush => {
            tracing::info!("flushing dataset");
            shared.state.lock().store.flush();
            resp::ok(out);
            Work::Other
        }
        Command::Queue(words) => {
            queue(shared, &words, out);
            Work::Other
        }
        Command::Enterprise(subsystem) => {
            resp::err(
                out,
                &format!("{subsystem} subsystem is only available in Faktory Enterprise"),
            );
            Work::Other
        }
        Command::Unknown(verb) => {
            resp::err(out, &format!("unknown command {verb}"));
            Work::Other
        }
    };
    (Step::Continue, work)
}

fn push(shared: &Shared, arg: &[u8], out: &mut Vec<u8>) {
    let job: Job = match serde_json::from_slice(arg) {
        Ok(job) => job,
        Err(e) => return resp::err(out, &format!("invalid JSON: {e}")),
    };
    let now = shared.clock.now();
    let result = shared.state.lock().store.push(job, now);
    match result {
        Ok(()) => resp::ok(out),
        Err(message) => resp::err(out, &message),
    }
}

/// Returns how many jobs the batch held.
fn push_bulk(shared: &Shared, arg: &[u8], out: &mut Vec<u8>) -> usize {
    let jobs: Vec<Job> = match serde_json::from_slice(arg) {
        Ok(jobs) => jobs,
        Err(e) => {
            resp::err(out, &format!("invalid JSON: {e}"));
            return 0;
        }
    };
    let count = jobs.len();
    let now = shared.clock.now();
    // PUSHB stamps one creation time for the whole batch.
    let created_at = format_rfc3339_nano(now);
    let mut failed = BTreeMap::new();
    {
        let mut state = shared.state.lock();
        for mut job in jobs {
            if job.created_at.is_empty() {
                job.created_at.clone_from(&created_at);
            }
            let jid = job.jid.clone();
            if let Err(message) = state.store.push(job, now) {
                failed.insert(jid, message);
            }
        }
    }
    if failed.is_empty() {
        resp::bulk(out, b"{}");
    } else {
        let map = serde_json::to_vec(&failed).unwrap_or_default();
        resp::bulk(out, &map);
    }
    count
}

fn fetch(shared: &Shared, wid: &str, queues: &[&str], out: &mut Vec<u8>) -> Step {
    if queues.is_empty() {
        resp::err(out, "must call fetch with at least one queue");
        return Step::Continue;
    }
    let now = shared.clock.now();
    let mut state = shared.state.lock();
    if !wid.is_empty() && state.workers.state(wid) != ProcessState::Running {
        return Step::SleepThenNothing;
    }
    if state.store.all_paused(queues) {
        return Step::SleepThenNothing;
    }
    match state.store.fetch_or_wait(queues, wid, now) {
        FetchOutcome::Job(json) => {
            resp::bulk(out, &json);
            Step::Continue
        }
        FetchOutcome::Wait { id, receive } => Step::WaitForJob { id, receive },
    }
}

fn queue(shared: &Shared, words: &[&str], out: &mut Vec<u8>) {
    // Faktory indexes the words without checking and would crash on `QUEUE PAUSE`; we answer.
    let [action, names @ ..] = words else {
        return resp::err(out, "invalid QUEUE command");
    };
    if names.is_empty() {
        return resp::err(out, "invalid QUEUE command");
    }
    let action = match *action {
        "PAUSE" => QueueAction::Pause,
        "RESUME" => QueueAction::Resume,
        "REMOVE" => QueueAction::Remove,
        // Faktory ignores other actions and answers OK.
        _ => return resp::ok(out),
    };
    shared.state.lock().store.queue_action(action, names);
    resp::ok(out);
}

fn ack(shared: &Shared, arg: &[u8], out: &mut Vec<u8>) {
    let invalid = || format!("invalid ACK {}", String::from_utf8_lossy(arg));
    let body: HashMap<String, String> = match serde_json::from_slice(arg) {
        Ok(body) => body,
        Err(_) => return resp::err(out, &invalid()),
    };
    let Some(jid) = body.get("jid") else {
        return resp::err(out, &invalid());
    };
    shared.state.lock().store.ack(jid);
    resp::ok(out);
}

fn fail(shared: &Shared, arg: &[u8], out: &mut Vec<u8>) {
    let payload: FailPayload = match serde_json::from_slice(arg) {
        Ok(payload) => payload,
        Err(_) => {
            return resp::err(
                out,
                &format!("invalid FAIL {}", String::from_utf8_lossy(arg)),
            );
        }
    };
    let now = shared.clock.now();
    let result = shared.state.lock().store.fail(payload, now);
    match result {
        Ok(()) => resp::ok(out),
        Err(message) => resp::err(out, &message),
    }
}

fn beat(shared: &Shared, arg: &[u8], out: &mut Vec<u8>) {
    let beat: Beat = match serde_json::from_slice(arg) {
        Ok(beat) => beat,
        Err(_) => {
            return resp::err(
                out,
                &format!("invalid BEAT {}", String::from_utf8_lossy(arg)),
            );
        }
    };
    let wid = beat.wid.unwrap_or_default();
    let now = shared.clock.now();
    let state =
        shared
            .state
            .lock()
            .workers
            .beat(&wid, beat.current_state.as_deref().unwrap_or(""), now);
    match state.map(ProcessState::signal_name) {
        None => resp::err(out, &format!("unknown worker {wid}")),
        Some(None) => resp::ok(out),
        Some(Some(signal)) => resp::bulk(out, format!(r#"{{"state":"{signal}"}}"#).as_bytes()),
    }
}
