//! Conformance: the same checks run against our in-process `TestServer` and, when
//! `FAKTORY_URL` is set (e.g. `FAKTORY_URL=tcp://localhost:7419`), against a real Faktory, so
//! any difference shows up as a failing `against_real_faktory::*` test. Clients are the
//! third-party `faktory` crate (code we did not write) and raw TCP for what the crate cannot
//! express (pipelining, partial PUSHB failures, error texts, blocking FETCH, BEAT states).
//!
//! Jobs that the crate's `Worker` fetches are pushed by the crate itself, with `reserve_for`
//! set: the crate's `Job` cannot deserialize a job without it.
//!
//! Checks that need the virtual clock (backoff, expiry, dead set, heartbeat timeout, scheduled
//! promotion) or the handle (stop/restart listener) run only against the test server: a real
//! Faktory cannot be fast-forwarded. They are in `mod test_server_only` below.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Raw, Reply, Target, job, unique};
use serde_json::{Value, json};

/// Generates `against_test_server::NAME` and `against_real_faktory::NAME` for each check.
macro_rules! portable {
    ($($name:ident),* $(,)?) => {
        mod against_test_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let target = super::Target::test_server().await;
                    super::$name(&target).await;
                }
            )*
        }
        mod against_real_faktory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(target) = super::Target::real() else { return };
                    super::$name(&target).await;
                }
            )*
        }
    };
}

portable!(
    crate_client_push_info_and_worker_round,
    crate_enqueue_many_reports_only_failures,
    crate_worker_failure_is_recorded,
    greeting_and_hello,
    push_validation_errors,
    fetched_job_is_stamped_and_normalised,
    pipelined_fetches_answer_in_order,
    pushb_partial_failure_map,
    pushb_invalid_json,
    ack_unknown_jid_is_ok,
    fail_unknown_jid_is_error,
    ack_and_fail_from_another_connection,
    fetch_blocks_then_answers_nothing,
    blocked_fetch_delays_pipelined_replies,
    fetch_wakes_when_a_job_is_pushed,
    future_at_is_scheduled_not_queued,
    beat_states,
    info_field_names,
    fail_counts_as_processed,
    unknown_command_and_garbage,
    end_closes_the_connection,
    queue_pause_resume_remove,
);

// ---------------------------------------------------------------------------------------------
// Checks run against both servers.

async fn crate_client_push_info_and_worker_round(t: &Target) {
    let queue = unique("crate");
    let mut client = faktory::Client::connect_to(&t.url)
        .await
        .expect("crate connects");
    let pushed =
        faktory::Job::new("conformance_crate", vec![json!(7), json!("x")]).on_queue(&queue);
    let jid = pushed.id().to_string();
    client.enqueue(pushed).await.expect("enqueue");

    let info = client.current_info().await.expect("crate parses INFO");
    assert_eq!(info.data.queues.get(&queue), Some(&1));
    assert!(info.data.total_queues >= 1);

    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen_in_handler = seen.clone();
    let mut worker = faktory::Worker::builder::<std::io::Error>()
        .register_fn("conformance_crate", move |job: faktory::Job| {
            let seen = seen_in_handler.clone();
            async move {
                seen.lock()
                    .push((job.id().to_string(), job.args().to_vec()));
                Ok(())
            }
        })
        .connect_to(&t.url)
        .await
        .expect("worker connects");
    assert!(worker.run_one(0, &[queue.as_str()]).await.expect("run_one"));
    assert_eq!(
        seen.lock().clone(),
        vec![(jid.clone(), vec![json!(7), json!("x")])]
    );

    // The crate's worker ACKed: the reservation is gone.
    let mut raw = Raw::connect(t, json!({})).await;
    raw.cmd(&format!(r#"FAIL {{"jid":"{jid}"}}"#))
        .await
        .assert_err("Job not found");
    if let Some(h) = t.handle() {
        assert_eq!(h.counters().processed, 1);
        assert!(h.reserved_jids().is_empty());
    }
}

async fn crate_enqueue_many_reports_only_failures(t: &Target) {
    let queue = unique("crate-many");
    let mut client = faktory::Client::connect_to(&t.url).await.expect("connect");
    let good = faktory::Job::new("conformance_crate", vec![json!(1)]).on_queue(&queue);
    let bad = faktory::Job::new("", vec![json!(2)]).on_queue(&queue);
    let bad_jid = bad.id().to_string();
    let (ok, errors) = client.enqueue_many(vec![good, bad]).await.expect("PUSHB");
    assert_eq!(ok, 1);
    let errors = errors.expect("one failure reported");
    assert_eq!(errors.len(), 1);
    assert!(errors[&bad_jid].contains("jobtype"), "{errors:?}");
    let info = client.current_info().await.expect("info");
    assert_eq!(info.data.queues.get(&queue), Some(&1));
}

async fn crate_worker_failure_is_recorded(t: &Target) {
    let queue = unique("crate-fail");
    let mut client = faktory::Client::connect_to(&t.url).await.expect("connect");
    let pushed = faktory::Job::new("conformance_fails", vec![json!(1)]).on_queue(&queue);
    let jid = pushed.id().to_string();
    client.enqueue(pushed).await.expect("enqueue");
    let mut worker = faktory::Worker::builder::<std::io::Error>()
        .register_fn("conformance_fails", |_job: faktory::Job| async {
            Err(std::io::Error::other("handler says no"))
        })
        .connect_to(&t.url)
        .await
        .expect("worker connects");
    assert!(worker.run_one(0, &[queue.as_str()]).await.expect("run_one"));
    // FAILed, so no longer reserved.
    let mut raw = Raw::connect(t, json!({})).await;
    raw.cmd(&format!(r#"FAIL {{"jid":"{jid}"}}"#))
        .await
        .assert_err("Job not found");
    if let Some(h) = t.handle() {
        let retries = h.retries();
        assert_eq!(retries.len(), 1);
        let failure = &retries[0]["failure"];
        assert_eq!(failure["retry_count"], 0);
        assert_eq!(failure["remaining"], 25);
        assert!(
            failure["message"]
                .as_str()
                .unwrap()
                .contains("handler says no")
        );
    }
}

async fn greeting_and_hello(t: &Target) {
    let mut raw = Raw::open(&t.addr).await;
    assert_eq!(raw.hi["v"], 2);
    match &t.password {
        None => assert!(raw.hi.get("s").is_none()),
        Some(_) => {
            assert!(raw.hi["s"].is_string() && raw.hi["i"].is_u64());
            // Wrong password: -ERR Invalid password, then the server hangs up.
            let reply = raw.hello(Some("definitely-wrong"), json!({})).await;
            assert_eq!(reply, Reply::Error("ERR Invalid password".into()));
            assert_eq!(raw.reply().await, Reply::Closed);
            raw = Raw::open(&t.addr).await;
        }
    }
    let wid = unique("wid");
    raw.hello(
        t.password.as_deref(),
        json!({"wid": wid, "hostname": "conformance", "pid": 4242, "labels": ["a"]}),
    )
    .await
    .assert_ok();
    raw.cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#))
        .await
        .assert_ok();
}

async fn push_validation_errors(t: &Target) {
    let queue = unique("validate");
    let mut raw = Raw::connect(t, json!({})).await;
    let cases = [
        (
            json!({"jobtype": "x", "args": []}),
            "jobs must have a reasonable jid",
        ),
        (
            json!({"jid": "short", "jobtype": "x", "args": []}),
            "jobs must have a reasonable jid",
        ),
        (
            json!({"jid": unique("j"), "args": []}),
            "jobs must have a jobtype",
        ),
        (
            json!({"jid": unique("j"), "jobtype": "x"}),
            "jobs must have an args",
        ),
        (
            json!({"jid": unique("j"), "jobtype": "x", "args": {}}),
            "invalid JSON",
        ),
        (
            json!({"jid": unique("j"), "jobtype": "x", "args": [], "reserve_for": 86401}),
            "jobs cannot be reserved for more than one day",
        ),
        (
            json!({"jid": unique("j"), "jobtype": "x", "args": [], "at": "tomorrow"}),
            "invalid timestamp for 'at'",
        ),
    ];
    for (mut payload, expected) in cases {
        payload["queue"] = json!(queue);
        raw.cmd(&format!("PUSH {payload}"))
            .await
            .assert_err(expected);
    }
    raw.cmd("PUSH {not json").await.assert_err("invalid JSON");
    // reserve_for of exactly one day is accepted.
    let ok = job(&queue, json!({"reserve_for": 86400}));
    raw.cmd(&format!("PUSH {ok}")).await.assert_ok();
    if let Some(h) = t.handle() {
        assert_eq!(h.queue_len(&queue), 1);
    }
}

async fn fetched_job_is_stamped_and_normalised(t: &Target) {
    let queue = unique("shape");
    let mut raw = Raw::connect(t, json!({})).await;
    let pushed = job(&queue, json!({"custom": {"k": "v"}}));
    raw.cmd(&format!("PUSH {pushed}")).await.assert_ok();
    let fetched = raw.fetch_job(&queue).await;
    assert_eq!(fetched["jid"], pushed["jid"]);
    assert_eq!(fetched["jobtype"], "conformance");
    assert_eq!(fetched["args"], json!([1, "two"]));
    assert_eq!(fetched["queue"], json!(queue));
    assert_eq!(fetched["retry"], 25, "default retry policy filled in");
    assert_eq!(fetched["custom"], json!({"k": "v"}));
    for stamp in ["created_at", "enqueued_at"] {
        let text = fetched[stamp]
            .as_str()
            .unwrap_or_else(|| panic!("{stamp} missing"));
        chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339 timestamp");
    }
    assert!(fetched.get("failure").is_none());
    raw.cmd(&format!(
        r#"ACK {{"jid":"{}"}}"#,
        pushed["jid"].as_str().unwrap()
    ))
    .await
    .assert_ok();
    // No queue given: "default".
    let mut defaulted = job("", json!({}));
    defaulted.as_object_mut().unwrap().remove("queue");
    raw.cmd(&format!("PUSH {defaulted}")).await.assert_ok();
    if let Some(h) = t.handle() {
        assert_eq!(h.queue_len("default"), 1);
    } else {
        // Do not leave a job in a shared real server's default queue.
        let jid = defaulted["jid"].as_str().unwrap();
        let mut found = false;
        for _ in 0..1000 {
            let j = raw.fetch_job("default").await;
            let this = j["jid"].as_str().unwrap().to_owned();
            raw.cmd(&format!(r#"ACK {{"jid":"{this}"}}"#))
                .await
                .assert_ok();
            if this == jid {
                found = true;
                break;
            }
        }
        assert!(found);
    }
}

async fn pipelined_fetches_answer_in_order(t: &Target) {
    let queue = unique("pipeline");
    let mut raw = Raw::connect(t, json!({})).await;
    let jobs: Vec<Value> = (0..10).map(|_| job(&queue, json!({}))).collect();
    let mut burst = String::new();
    for j in &jobs {
        burst.push_str(&format!("PUSH {j}\r\n"));
    }
    for _ in &jobs {
        burst.push_str(&format!("FETCH {queue}\r\n"));
    }
    raw.send_raw(burst.as_bytes()).await;
    for _ in &jobs {
        raw.reply().await.assert_ok();
    }
    let mut acks = String::new();
    for j in &jobs {
        let fetched = raw.reply().await.json();
        assert_eq!(
            fetched["jid"], j["jid"],
            "FIFO order, replies in command order"
        );
        acks.push_str(&format!("ACK {{\"jid\":{}}}\r\n", j["jid"]));
    }
    raw.send_raw(acks.as_bytes()).await;
    for _ in &jobs {
        raw.reply().await.assert_ok();
    }
}

async fn pushb_partial_failure_map(t: &Target) {
    let queue = unique("pushb");
    let mut raw = Raw::connect(t, json!({})).await;
    let good1 = job(&queue, json!({}));
    let good2 = job(&queue, json!({}));
    let no_type = json!({"jid": unique("nt"), "args": [], "queue": queue});
    let no_args = json!({"jid": unique("na"), "jobtype": "x", "queue": queue});
    let batch = json!([good1, no_type, good2, no_args]);
    let reply = raw.cmd(&format!("PUSHB {batch}")).await.json();
    let map = reply.as_object().expect("JSON map");
    assert_eq!(map.len(), 2, "only the failed jobs: {reply}");
    assert!(
        map[no_type["jid"].as_str().unwrap()]
            .as_str()
            .unwrap()
            .contains("jobtype")
    );
    assert!(
        map[no_args["jid"].as_str().unwrap()]
            .as_str()
            .unwrap()
            .contains("args")
    );
    // The good ones were pushed anyway, in order.
    assert_eq!(raw.fetch_job(&queue).await["jid"], good1["jid"]);
    assert_eq!(raw.fetch_job(&queue).await["jid"], good2["jid"]);
    // All good: "{}".
    let all_good = json!([job(&queue, json!({}))]);
    assert_eq!(
        raw.cmd(&format!("PUSHB {all_good}")).await,
        Reply::Bulk(b"{}".to_vec())
    );
    assert_eq!(raw.cmd("PUSHB []").await, Reply::Bulk(b"{}".to_vec()));
}

async fn pushb_invalid_json(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    raw.cmd("PUSHB [{\"jid\":").await.assert_err("invalid JSON");
    raw.cmd("PUSHB {}").await.assert_err("invalid JSON");
    // A wrongly typed field fails the whole batch, like Go's json.Unmarshal.
    let queue = unique("pushb-type");
    let batch = json!([job(&queue, json!({})), job(&queue, json!({"args": "nope"}))]);
    raw.cmd(&format!("PUSHB {batch}"))
        .await
        .assert_err("invalid JSON");
    if let Some(h) = t.handle() {
        assert_eq!(h.queue_len(&queue), 0);
    }
}

async fn ack_unknown_jid_is_ok(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    raw.cmd(&format!(r#"ACK {{"jid":"{}"}}"#, unique("nobody")))
        .await
        .assert_ok();
    raw.cmd("ACK {}").await.assert_err("invalid ACK");
    raw.cmd("ACK nope").await.assert_err("invalid ACK");
}

async fn fail_unknown_jid_is_error(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    let jid = unique("nobody");
    let reply = raw
        .cmd(&format!(
            r#"FAIL {{"jid":"{jid}","errtype":"E","message":"m","backtrace":[]}}"#
        ))
        .await;
    assert_eq!(reply, Reply::Error(format!("ERR Job not found {jid}")));
    raw.cmd("FAIL {}").await.assert_err("missing JID");
    raw.cmd("FAIL nope").await.assert_err("invalid FAIL");
}

async fn ack_and_fail_from_another_connection(t: &Target) {
    let queue = unique("crossconn");
    let mut fetcher = Raw::connect(t, json!({"wid": unique("wid")})).await;
    let mut other = Raw::connect(t, json!({})).await;
    let (a, b) = (job(&queue, json!({})), job(&queue, json!({})));
    other.cmd(&format!("PUSH {a}")).await.assert_ok();
    other.cmd(&format!("PUSH {b}")).await.assert_ok();
    let a_jid = fetcher.fetch_job(&queue).await["jid"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_jid = fetcher.fetch_job(&queue).await["jid"]
        .as_str()
        .unwrap()
        .to_owned();
    other
        .cmd(&format!(r#"ACK {{"jid":"{a_jid}"}}"#))
        .await
        .assert_ok();
    other
        .cmd(&format!(r#"FAIL {{"jid":"{b_jid}","errtype":"Boom","message":"from elsewhere","backtrace":["l1"]}}"#))
        .await
        .assert_ok();
    // Both reservations are gone for every connection.
    for jid in [&a_jid, &b_jid] {
        fetcher
            .cmd(&format!(r#"FAIL {{"jid":"{jid}"}}"#))
            .await
            .assert_err("Job not found");
    }
    if let Some(h) = t.handle() {
        let retried = h.job(&b_jid).expect("in the retry set");
        assert_eq!(retried["failure"]["errtype"], "Boom");
        assert_eq!(retried["failure"]["backtrace"], json!(["l1"]));
        assert!(h.job(&a_jid).is_none());
    }
}

async fn fetch_blocks_then_answers_nothing(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    let started = Instant::now();
    assert_eq!(
        raw.cmd(&format!("FETCH {}", unique("empty"))).await,
        Reply::Null
    );
    // A lower bound only: Faktory blocks ~2 s before answering nothing.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    raw.cmd("FETCH")
        .await
        .assert_err("must call fetch with at least one queue");
}

async fn blocked_fetch_delays_pipelined_replies(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    let started = Instant::now();
    raw.send_raw(
        format!(
            "FETCH {}\r\nACK {{\"jid\":\"{}\"}}\r\n",
            unique("empty"),
            unique("x")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(raw.reply().await, Reply::Null);
    raw.reply().await.assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

async fn fetch_wakes_when_a_job_is_pushed(t: &Target) {
    let queue = unique("wake");
    let mut fetcher = Raw::connect(t, json!({})).await;
    let mut pusher = Raw::connect(t, json!({})).await;
    let pushed = job(&queue, json!({}));
    fetcher
        .send(&format!("FETCH {}-other {queue}", queue))
        .await;
    // Give the FETCH time to block first; if the push did not wake it, FETCH would answer
    // `$-1` at the end of its ~2 s block and the assertion below would fail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pusher.cmd(&format!("PUSH {pushed}")).await.assert_ok();
    let fetched = fetcher.reply().await.json();
    assert_eq!(fetched["jid"], pushed["jid"]);
}

async fn future_at_is_scheduled_not_queued(t: &Target) {
    let queue = unique("sched");
    let mut raw = Raw::connect(t, json!({})).await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let later = job(&queue, json!({"at": at}));
    raw.cmd(&format!("PUSH {later}")).await.assert_ok();
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let now_job = job(&queue, json!({"at": past}));
    raw.cmd(&format!("PUSH {now_job}")).await.assert_ok();
    assert_eq!(raw.fetch_job(&queue).await["jid"], now_job["jid"]);
    assert_eq!(raw.cmd(&format!("FETCH {queue}")).await, Reply::Null);
    if let Some(h) = t.handle() {
        assert_eq!(h.scheduled_len(), 1);
        assert_eq!(
            h.job(later["jid"].as_str().unwrap()).unwrap()["at"],
            json!(at)
        );
    }
}

async fn beat_states(t: &Target) {
    let queue = unique("beat");
    let wid = unique("wid");
    let mut worker = Raw::connect(t, json!({"wid": wid})).await;
    worker
        .cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#))
        .await
        .assert_ok();
    worker
        .cmd(&format!(r#"BEAT {{"wid":"{}"}}"#, unique("stranger")))
        .await
        .assert_err("unknown worker");
    worker.cmd("BEAT nope").await.assert_err("invalid BEAT");
    // A worker may announce its own state; Faktory echoes it from then on.
    let reply = worker
        .cmd(&format!(
            r#"BEAT {{"wid":"{wid}","current_state":"quiet"}}"#
        ))
        .await;
    assert_eq!(reply.json(), json!({"state": "quiet"}));
    // Quiet workers get nothing, even with jobs waiting.
    worker
        .cmd(&format!("PUSH {}", job(&queue, json!({}))))
        .await
        .assert_ok();
    assert_eq!(worker.cmd(&format!("FETCH {queue}")).await, Reply::Null);
    // Producers (no wid) still fetch.
    let mut producer = Raw::connect(t, json!({})).await;
    producer.fetch_job(&queue).await;
    // State only moves forward.
    let reply = worker
        .cmd(&format!(
            r#"BEAT {{"wid":"{wid}","current_state":"terminate"}}"#
        ))
        .await;
    assert_eq!(reply.json(), json!({"state": "terminate"}));
    let reply = worker.cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#)).await;
    assert_eq!(reply.json(), json!({"state": "terminate"}));
}

/// Faktory counts a FAIL as processed as well as failed (its `Failure()` bumps both), so INFO's
/// `total_processed` moves on every ACK and every FAIL.
async fn fail_counts_as_processed(t: &Target) {
    let queue = unique("counting");
    let mut raw = Raw::connect(t, json!({})).await;
    let totals = |info: &Value| {
        (
            info["faktory"]["total_processed"].as_u64().unwrap(),
            info["faktory"]["total_failures"].as_u64().unwrap(),
        )
    };
    for _ in 0..2 {
        raw.cmd(&format!("PUSH {}", job(&queue, json!({}))))
            .await
            .assert_ok();
    }
    let before = totals(&raw.cmd("INFO").await.json());
    let acked = raw.fetch_job(&queue).await["jid"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = raw.fetch_job(&queue).await["jid"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.cmd(&format!(r#"ACK {{"jid":"{acked}"}}"#))
        .await
        .assert_ok();
    raw.cmd(&format!(
        r#"FAIL {{"jid":"{failed}","errtype":"E","message":"m","backtrace":[]}}"#
    ))
    .await
    .assert_ok();
    let after = totals(&raw.cmd("INFO").await.json());
    // Other tests may run against a shared real server at the same time: at least ours counted.
    assert!(after.0 >= before.0 + 2, "processed {before:?} -> {after:?}");
    assert!(after.1 > before.1, "failures {before:?} -> {after:?}");
}

async fn info_field_names(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    let queue = unique("info");
    raw.cmd(&format!("PUSH {}", job(&queue, json!({}))))
        .await
        .assert_ok();
    let info = raw.cmd("INFO").await.json();
    for key in ["now", "server_utc_time", "faktory", "server"] {
        assert!(info.get(key).is_some(), "INFO lacks {key}: {info}");
    }
    let faktory = &info["faktory"];
    for key in [
        "total_failures",
        "total_processed",
        "total_enqueued",
        "total_queues",
    ] {
        assert!(faktory[key].is_u64(), "faktory.{key} missing: {info}");
    }
    assert_eq!(faktory["queues"][&queue], 1);
    assert!(faktory["tasks"].is_object());
    let server = &info["server"];
    for key in ["uptime", "connections", "command_count", "used_memory_mb"] {
        assert!(server[key].is_u64(), "server.{key} missing: {info}");
    }
    assert!(server["faktory_version"].is_string() && server["description"].is_string());
    assert!(server["connections"].as_u64().unwrap() >= 1);
}

async fn unknown_command_and_garbage(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    raw.cmd("HELLOTHERE")
        .await
        .assert_err("unknown command HELLOTHERE");
    raw.cmd("info").await.assert_err("unknown command info");
    raw.cmd("").await.assert_err("unknown command");
    // 1.10.0 slices past the end of a bare PUSH and answers from its panic recovery.
    raw.cmd("PUSH").await.assert_err("internal error");
    raw.cmd("PUSH ").await.assert_err("invalid JSON");
    raw.cmd("PUSH \u{0}\u{7f}").await.assert_err("invalid JSON");
    raw.cmd("ACK {\"jid\":42}").await.assert_err("invalid ACK");
    raw.cmd("FAIL {\"jid\":[]}")
        .await
        .assert_err("invalid FAIL");
    // Still usable afterwards.
    raw.cmd("INFO").await.json();
}

async fn end_closes_the_connection(t: &Target) {
    let mut raw = Raw::connect(t, json!({})).await;
    raw.send("END").await;
    assert_eq!(raw.reply().await, Reply::Closed);
}

async fn queue_pause_resume_remove(t: &Target) {
    let (paused, open) = (unique("paused"), unique("open"));
    let mut raw = Raw::connect(t, json!({})).await;
    for q in [&paused, &paused, &open] {
        raw.cmd(&format!("PUSH {}", job(q, json!({}))))
            .await
            .assert_ok();
    }
    let mut client = faktory::Client::connect_to(&t.url).await.expect("connect");
    client
        .queue_pause(&[paused.as_str()])
        .await
        .expect("QUEUE PAUSE");
    // A paused queue is skipped; the next one in the list still serves.
    let fetched = raw.fetch_job(&format!("{paused} {open}")).await;
    assert_eq!(fetched["queue"], json!(open));
    raw.cmd(&format!(r#"ACK {{"jid":{}}}"#, fetched["jid"]))
        .await
        .assert_ok();
    // Only paused queues: Faktory waits its block time and answers nothing.
    assert_eq!(raw.cmd(&format!("FETCH {paused}")).await, Reply::Null);
    client
        .queue_resume(&[paused.as_str()])
        .await
        .expect("QUEUE RESUME");
    let fetched = raw.fetch_job(&paused).await;
    raw.cmd(&format!(r#"ACK {{"jid":{}}}"#, fetched["jid"]))
        .await
        .assert_ok();
    raw.cmd(&format!("QUEUE REMOVE {paused}")).await.assert_ok();
    let info = raw.cmd("INFO").await.json();
    assert_eq!(
        info["faktory"]["queues"]
            .get(&paused)
            .and_then(Value::as_u64)
            .unwrap_or(0),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Test-server-only checks: they need the virtual clock or the handle, which a real Faktory
// does not have (it cannot be fast-forwarded or have its port closed from a test).

mod test_server_only {
    use super::*;
    use faktory_test_server::{ServerConfig, TestServer, TlsIdentity};

    async fn fetch_and_fail(raw: &mut Raw, queue: &str, errtype: &str) -> Value {
        let fetched = raw.fetch_job(queue).await;
        raw.cmd(&format!(
            r#"FAIL {{"jid":{},"errtype":"{errtype}","message":"failed","backtrace":[]}}"#,
            fetched["jid"]
        ))
        .await
        .assert_ok();
        fetched
    }

    fn secs_between(a: &Value, b: &Value) -> i64 {
        let a = chrono::DateTime::parse_from_rfc3339(a.as_str().unwrap()).unwrap();
        let b = chrono::DateTime::parse_from_rfc3339(b.as_str().unwrap()).unwrap();
        (b - a).num_seconds()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backoff_retry_count_and_dead_set() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("backoff");
        let mut raw = Raw::connect(&t, json!({})).await;
        let pushed = job(&queue, json!({"retry": 2}));
        let jid = pushed["jid"].as_str().unwrap().to_owned();
        raw.cmd(&format!("PUSH {pushed}")).await.assert_ok();

        fetch_and_fail(&mut raw, &queue, "First").await;
        let failure = h.retries()[0]["failure"].clone();
        assert_eq!(
            (failure["retry_count"].clone(), failure["remaining"].clone()),
            (json!(0), json!(2))
        );
        let delay = secs_between(&failure["failed_at"], &failure["next_at"]);
        assert!(
            (15..=44).contains(&delay),
            "count 0 backoff is 15..=44 s, got {delay}"
        );
        // Not yet due: nothing moves.
        h.advance_clock(Duration::from_secs(14));
        assert_eq!(h.queue_len(&queue), 0);
        h.advance_clock(Duration::from_secs(31));
        assert_eq!(h.queue_len(&queue), 1);
        assert_eq!(h.counters().retries_enqueued, 1);

        fetch_and_fail(&mut raw, &queue, "Second").await;
        let failure = h.job(&jid).unwrap()["failure"].clone();
        assert_eq!(
            (failure["retry_count"].clone(), failure["remaining"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(failure["errtype"], "Second");
        let delay = secs_between(&failure["failed_at"], &failure["next_at"]);
        // failed_at is the first failure's time; count 1 backoff is 16..=74 s after the second.
        assert!(delay >= 16 + 45, "{delay}");
        h.advance_clock(Duration::from_secs(75));
        fetch_and_fail(&mut raw, &queue, "Third").await;
        assert!(h.retries().is_empty());
        let dead = h.dead();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["failure"]["retry_count"], 2);
        assert_eq!(h.counters().dead, 1);
        let info = h.info();
        assert_eq!(info["faktory"]["total_failures"], 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retry_zero_drops_and_minus_one_kills() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("policy");
        let mut raw = Raw::connect(&t, json!({})).await;
        let ephemeral = job(&queue, json!({"retry": 0}));
        raw.cmd(&format!("PUSH {ephemeral}")).await.assert_ok();
        fetch_and_fail(&mut raw, &queue, "E").await;
        assert!(h.job(ephemeral["jid"].as_str().unwrap()).is_none());
        assert_eq!(h.counters().dropped, 1);

        let doomed = job(&queue, json!({"retry": -1}));
        raw.cmd(&format!("PUSH {doomed}")).await.assert_ok();
        fetch_and_fail(&mut raw, &queue, "E").await;
        assert!(h.retries().is_empty());
        assert_eq!(h.dead()[0]["jid"], doomed["jid"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reservation_expiry_floor_default_and_retry() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("expiry");
        let mut raw = Raw::connect(&t, json!({})).await;
        let short = job(&queue, json!({"reserve_for": 5}));
        let default = job(&queue, json!({}));
        raw.cmd(&format!("PUSH {short}")).await.assert_ok();
        raw.cmd(&format!("PUSH {default}")).await.assert_ok();
        raw.fetch_job(&queue).await;
        raw.fetch_job(&queue).await;
        let now = h.now();
        let until = |jid: &Value| {
            h.reservation_deadline(jid.as_str().unwrap())
                .unwrap()
                .duration_since(now)
                .unwrap()
                .as_secs()
        };
        assert!(
            (59..=60).contains(&until(&short["jid"])),
            "reserve_for 5 is raised to 60"
        );
        assert!(
            (1799..=1800).contains(&until(&default["jid"])),
            "absent reserve_for means 1800"
        );

        h.advance_clock(Duration::from_secs(55));
        assert_eq!(h.reserved_jids().len(), 2);
        h.advance_clock(Duration::from_secs(10));
        assert_eq!(
            h.reserved_jids(),
            vec![default["jid"].as_str().unwrap().to_owned()]
        );
        let expired = h.job(short["jid"].as_str().unwrap()).unwrap();
        assert_eq!(expired["failure"]["errtype"], "ReservationExpired");
        assert_eq!(
            expired["failure"]["message"],
            "Faktory job reservation expired"
        );
        assert_eq!(expired["failure"]["retry_count"], 0);
        assert_eq!(h.counters().expired, 1);
        // The late worker's ACK is accepted and ignored; its FAIL is refused.
        raw.cmd(&format!(r#"FAIL {{"jid":{}}}"#, short["jid"]))
            .await
            .assert_err("Job not found");
        raw.cmd(&format!(r#"ACK {{"jid":{}}}"#, short["jid"]))
            .await
            .assert_ok();
        assert_eq!(h.retries().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn release_by_push_copy_then_ack_keeps_the_retry_budget() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("release");
        let mut raw = Raw::connect(&t, json!({})).await;
        raw.cmd(&format!("PUSH {}", job(&queue, json!({"retry": 3}))))
            .await
            .assert_ok();
        fetch_and_fail(&mut raw, &queue, "Once").await;
        h.advance_clock(Duration::from_secs(45));
        let mut fetched = raw.fetch_job(&queue).await;
        let jid = fetched["jid"].as_str().unwrap().to_owned();
        // The documented trick: PUSH a copy one second ahead, then ACK the reservation.
        let at = chrono::DateTime::<chrono::Utc>::from(h.now()) + chrono::Duration::seconds(1);
        fetched["at"] = json!(at.to_rfc3339());
        raw.cmd(&format!("PUSH {fetched}")).await.assert_ok();
        raw.cmd(&format!(r#"ACK {{"jid":"{jid}"}}"#))
            .await
            .assert_ok();
        assert_eq!(h.scheduled_len(), 1);
        h.advance_clock(Duration::from_secs(2));
        let back = raw.fetch_job(&queue).await;
        assert_eq!(back["failure"]["retry_count"], 0);
        raw.cmd(&format!(r#"FAIL {{"jid":"{jid}"}}"#))
            .await
            .assert_ok();
        assert_eq!(h.job(&jid).unwrap()["failure"]["retry_count"], 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quiet_and_terminate_from_the_handle() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let wid = unique("wid");
        let mut worker = Raw::connect(&t, json!({"wid": wid})).await;
        assert!(!h.set_quiet("nobody"));
        assert!(h.set_quiet(&wid));
        let reply = worker.cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#)).await;
        assert_eq!(reply.json(), json!({"state": "quiet"}));
        assert!(h.set_terminate(&wid));
        let reply = worker.cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#)).await;
        assert_eq!(reply.json(), json!({"state": "terminate"}));
        assert_eq!(h.workers()[0].connections, 1);
        assert_eq!(h.workers()[0].busy, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_worker_is_disconnected_but_keeps_reservations() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("silent");
        let wid = unique("wid");
        let mut worker = Raw::connect(&t, json!({"wid": wid})).await;
        let mut producer = Raw::connect(&t, json!({})).await;
        producer
            .cmd(&format!("PUSH {}", job(&queue, json!({}))))
            .await
            .assert_ok();
        worker.fetch_job(&queue).await;
        h.advance_clock(Duration::from_secs(30));
        worker
            .cmd(&format!(r#"BEAT {{"wid":"{wid}"}}"#))
            .await
            .assert_ok();
        h.advance_clock(Duration::from_secs(59));
        worker.cmd("INFO").await.json();
        h.advance_clock(Duration::from_secs(2));
        assert_eq!(worker.reply().await, Reply::Closed);
        assert_eq!(
            h.reserved_jids().len(),
            1,
            "reservations outlive the connection"
        );
        assert!(h.workers().is_empty());
        producer.cmd("INFO").await.json();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scheduled_job_is_promoted_when_due() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("promote");
        let mut raw = Raw::connect(&t, json!({})).await;
        let at = chrono::DateTime::<chrono::Utc>::from(h.now()) + chrono::Duration::minutes(10);
        let later = job(&queue, json!({"at": at.to_rfc3339()}));
        raw.cmd(&format!("PUSH {later}")).await.assert_ok();
        h.advance_clock(Duration::from_secs(599));
        assert_eq!(h.queue_len(&queue), 0);
        h.advance_clock(Duration::from_secs(2));
        let fetched = raw.fetch_job(&queue).await;
        assert_eq!(fetched["jid"], later["jid"]);
        assert!(fetched["enqueued_at"].is_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn promotion_wakes_a_blocked_fetch() {
        let t = Target::with_config(ServerConfig {
            fetch_block: Duration::from_secs(30),
            ..ServerConfig::default()
        })
        .await;
        let h = t.handle().unwrap();
        let queue = unique("wake-promote");
        let mut raw = Raw::connect(&t, json!({})).await;
        let at = chrono::DateTime::<chrono::Utc>::from(h.now()) + chrono::Duration::minutes(1);
        let later = job(&queue, json!({"at": at.to_rfc3339()}));
        raw.cmd(&format!("PUSH {later}")).await.assert_ok();
        raw.send(&format!("FETCH {queue}")).await;
        while h.blocked_fetches() == 0 {
            tokio::task::yield_now().await;
        }
        h.advance_clock(Duration::from_secs(61));
        // With a 30 s block, only a wake-up can deliver the job this soon.
        let reply = tokio::time::timeout(Duration::from_secs(20), raw.reply())
            .await
            .unwrap();
        assert_eq!(reply.json()["jid"], later["jid"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_push_wakes_one_of_many_blocked_fetches_in_order() {
        let t = Target::with_config(ServerConfig {
            fetch_block: Duration::from_secs(30),
            ..ServerConfig::default()
        })
        .await;
        let h = t.handle().unwrap();
        let queue = unique("herd");
        let mut fetchers = Vec::new();
        for i in 0..5 {
            let mut raw = Raw::connect(&t, json!({})).await;
            raw.send(&format!("FETCH {queue}")).await;
            while h.blocked_fetches() < i + 1 {
                tokio::task::yield_now().await;
            }
            fetchers.push(raw);
        }
        let mut producer = Raw::connect(&t, json!({})).await;
        let jobs: Vec<Value> = (0..2).map(|_| job(&queue, json!({}))).collect();
        producer.cmd(&format!("PUSHB {}", json!(jobs))).await;
        // The two longest-waiting FETCHes get the jobs, in order; the others keep waiting.
        assert_eq!(fetchers[0].reply().await.json()["jid"], jobs[0]["jid"]);
        assert_eq!(fetchers[1].reply().await.json()["jid"], jobs[1]["jid"]);
        assert_eq!(h.blocked_fetches(), 3);
        assert_eq!(h.reserved_jids().len(), 2);
        assert_eq!(h.queue_len(&queue), 0);
        let next = job(&queue, json!({}));
        producer.cmd(&format!("PUSH {next}")).await.assert_ok();
        assert_eq!(fetchers[2].reply().await.json()["jid"], next["jid"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_clears_jobs_and_totals() {
        let t = Target::test_server().await;
        let h = t.handle().unwrap();
        let queue = unique("flush");
        let mut raw = Raw::connect(&t, json!({})).await;
        for _ in 0..3 {
            raw.cmd(&format!("PUSH {}", job(&queue, json!({}))))
                .await
                .assert_ok();
        }
        let reserved = raw.fetch_job(&queue).await;
        let acked = raw.fetch_job(&queue).await;
        raw.cmd(&format!(r#"ACK {{"jid":{}}}"#, acked["jid"]))
            .await
            .assert_ok();
        raw.cmd("FLUSH").await.assert_ok();
        assert_eq!(h.total_queued(), 0);
        let info = raw.cmd("INFO").await.json();
        assert_eq!(info["faktory"]["total_processed"], 0);
        assert_eq!(info["faktory"]["total_queues"], 0);
        // Faktory keeps its in-memory working map across FLUSH: the reservation can be ACKed.
        raw.cmd(&format!(r#"ACK {{"jid":{}}}"#, reserved["jid"]))
            .await
            .assert_ok();
        assert_eq!(h.counters().processed, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_and_restart_listener_keeps_state_and_port() {
        let t = Target::test_server().await;
        let server = t.server.as_ref().unwrap();
        let h = server.handle();
        let queue = unique("chaos");
        let mut raw = Raw::connect(&t, json!({})).await;
        raw.cmd(&format!("PUSH {}", job(&queue, json!({}))))
            .await
            .assert_ok();
        let reserved = raw.fetch_job(&queue).await;
        server.stop_listener().await;
        assert_eq!(raw.reply().await, Reply::Closed);
        assert_eq!(h.connection_count(), 0);
        assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
        server.restart_listener().await;
        let mut again = Raw::connect(&t, json!({})).await;
        again
            .cmd(&format!(r#"ACK {{"jid":{}}}"#, reserved["jid"]))
            .await
            .assert_ok();
        assert_eq!(h.counters().processed, 1);
        assert_eq!(server.url(), t.url);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_is_required_when_set() {
        let t = Target::with_config(ServerConfig {
            password: Some("sekrit".into()),
            ..ServerConfig::default()
        })
        .await;
        assert!(t.url.starts_with("tcp://:sekrit@127.0.0.1:"));
        greeting_and_hello(&t).await;
        // The faktory crate authenticates with the URL's password.
        let mut client = faktory::Client::connect_to(&t.url)
            .await
            .expect("crate auth");
        client.current_info().await.expect("info");
        // No hash at all is refused too.
        let mut raw = Raw::open(&t.addr).await;
        assert_eq!(
            raw.hello(None, json!({})).await,
            Reply::Error("ERR Invalid password".into())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handshake_rejects_non_hello() {
        let t = Target::test_server().await;
        let mut raw = Raw::open(&t.addr).await;
        raw.send("INFO").await;
        assert_eq!(raw.reply().await, Reply::Closed);
        let mut raw = Raw::open(&t.addr).await;
        raw.send("HELLO {broken").await;
        assert_eq!(raw.reply().await, Reply::Closed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_handshake_and_commands() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let identity = TlsIdentity {
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        };
        let server = TestServer::start_with(ServerConfig {
            tls: Some(identity),
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        assert!(server.url().starts_with("tcp+tls://127.0.0.1:"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let mut stream = tokio::io::BufReader::new(tls);
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert_eq!(line, "+HI {\"v\":2}\r\n");
        stream
            .get_mut()
            .write_all(b"HELLO {\"v\":2}\r\nFLUSH\r\n")
            .await
            .unwrap();
        for _ in 0..2 {
            line.clear();
            stream.read_line(&mut line).await.unwrap();
            assert_eq!(line, "+OK\r\n");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlong_line_is_refused_and_closed() {
        let t = Target::with_config(ServerConfig {
            max_line: 1024 * 1024,
            ..ServerConfig::default()
        })
        .await;
        let mut raw = Raw::connect(&t, json!({})).await;
        raw.cmd("INFO").await.json();
        let mut huge = b"PUSH ".to_vec();
        huge.resize(2 * 1024 * 1024, b'x');
        raw.send_raw(&huge).await;
        raw.reply().await.assert_err("command line longer than");
        assert_eq!(raw.reply().await, Reply::Closed);
        // The server is fine.
        let mut other = Raw::connect(&t, json!({})).await;
        other.cmd("INFO").await.json();
    }
}
