//! The dispatcher's rules, tested with plain calls under paused time.

use super::*;
use bytes::Bytes;
use faktory_gateway_proto::v1::JobFailure;

fn rules() -> Rules {
    Rules {
        redelivery_grace: Duration::from_secs(5),
        unknown_jobtype_grace: Duration::from_secs(30),
        lease_margin: Duration::from_secs(10),
        reconnect_grace: Duration::from_secs(3),
        max_window: 1000,
        max_fetch_depth: 16,
        max_fetches_in_flight: 1024,
        max_settle_backlog: 500,
    }
}

fn spec(queues: &[&str], jobtypes: &[&str], window: u32) -> SessionSpec {
    SessionSpec {
        worker_id: "w".into(),
        hostname: String::new(),
        labels: Vec::new(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        jobtypes: jobtypes.iter().map(|t| (*t).to_owned()).collect(),
        window,
        max_message_bytes: 4 << 20,
        holding: Vec::new(),
    }
}

/// Faktory took every one of `settles`.
fn answered(settles: Vec<Settle>) -> Vec<Answered> {
    settles.into_iter().map(|s| Answered::to(s, None)).collect()
}

fn raw(jid: &str, queue: &str, jobtype: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jid":"{jid}","jobtype":"{jobtype}","queue":"{queue}","args":[]}}"#
    ))
}

fn jids(out: &Outgoing) -> Vec<String> {
    out.deliveries
        .iter()
        .map(|(d, _)| d.job.as_ref().unwrap().jid.clone())
        .collect()
}

/// Claims a fetch for `queues` and feeds it `jobs`.
fn feed(d: &mut Dispatcher, jobs: Vec<Bytes>) {
    let claim = d.claim_fetch().expect("demand");
    d.fetched(&claim, jobs, Instant::now(), 0);
}

#[tokio::test(start_paused = true)]
async fn fetch_demand_follows_open_window() {
    let mut d = Dispatcher::new(rules());
    assert_eq!(d.claim_fetch(), None, "no sessions, no fetch");
    let s = d.register(spec(&["a", "b"], &[], 3)).unwrap();
    let c1 = d.claim_fetch().unwrap();
    assert_eq!(
        c1,
        FetchClaim {
            queues: vec!["a".into(), "b".into()],
            depth: 1,
            more: true,
        }
    );
    // Full return deepens the pipeline, bounded by demand.
    d.fetched(&c1, vec![raw("j1", "a", "t")], Instant::now(), 0);
    let c2 = d.claim_fetch().unwrap();
    assert_eq!(c2.depth, 2);
    assert_eq!(d.claim_fetch(), None, "window of 3 is covered");
    d.fetched(&c2, vec![], Instant::now(), 0);
    // Empty return: back to depth 1.
    assert_eq!(d.claim_fetch().unwrap().depth, 1);
    assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j1"]);
}

#[tokio::test(start_paused = true)]
async fn fetches_in_flight_stay_under_their_cap() {
    let mut d = Dispatcher::new(Rules {
        max_fetches_in_flight: 5,
        ..rules()
    });
    let _a = d.register(spec(&["a"], &[], 100)).unwrap();
    // Depth grows to 2, then 4.
    let c = d.claim_fetch().unwrap();
    d.fetched(&c, vec![raw("j1", "a", "t")], Instant::now(), 0);
    let c = d.claim_fetch().unwrap();
    assert_eq!(c.depth, 2);
    assert!(c.more, "room for more pipelines");
    d.fetched(
        &c,
        vec![raw("j2", "a", "t"), raw("j3", "a", "t")],
        Instant::now(),
        0,
    );
    let deep = d.claim_fetch().unwrap();
    assert_eq!(deep.depth, 4);
    assert!(!deep.more, "no room for another pipeline of 4");
    // One more FETCH would fit, but not a pipeline of the current depth.
    assert_eq!(d.claim_fetch(), None, "4 of 5 FETCHes in flight");
    // Answers free room again.
    d.fetched(&deep, vec![raw("j4", "a", "t")], Instant::now(), 0);
    assert_eq!(d.claim_fetch().map(|c| c.depth), Some(1));
}

#[tokio::test(start_paused = true)]
async fn waiting_jobs_keep_their_fetch_order_when_some_are_passed_over() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &["t"], 1)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t")]);
    assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1"]);
    let claim = FetchClaim {
        queues: vec!["q".into()],
        depth: 4,
        more: false,
    };
    d.fetched(
        &claim,
        vec![
            raw("x1", "q", "u"),
            raw("j2", "q", "t"),
            raw("x2", "q", "u"),
            raw("j3", "q", "t"),
        ],
        Instant::now(),
        0,
    );
    // One slot opens: x1 is passed over (a runs only t), j2 taken, and
    // the window is full again before x2 and j3 are looked at.
    d.ack(a.id, vec!["j1".into()]);
    assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j2"]);
    let b = d.register(spec(&["q"], &[], 3)).unwrap();
    assert_eq!(jids(&d.take_outgoing(b.id)), vec!["x1", "x2", "j3"]);
}

#[tokio::test(start_paused = true)]
async fn fetching_pauses_while_faktory_lags_behind_results() {
    let mut d = Dispatcher::new(rules());
    d.register(spec(&["q"], &[], 1000)).unwrap();
    let claim = d.claim_fetch().unwrap();
    d.fetch_done(&claim, 0);
    for i in 0..rules().max_settle_backlog {
        d.settles.push(Settle {
            jid: format!("j{i}"),
            lease: None,
            reply_to: None,
            kind: SettleKind::Ack,
        });
    }
    assert_eq!(d.claim_fetch(), None);
    // Sent but not yet answered still counts: those jobs are still
    // reserved at Faktory.
    let mut sent = d.take_settlements(usize::MAX);
    assert_eq!(d.settle_backlog(), rules().max_settle_backlog);
    assert_eq!(d.claim_fetch(), None);
    let unsent = sent.split_off(1);
    d.requeue(unsent);
    assert_eq!(d.claim_fetch(), None, "requeued ones count again");
    d.settled(answered(sent));
    assert!(d.claim_fetch().is_some());
}

#[tokio::test(start_paused = true)]
async fn distinct_queue_lists_fetch_separately() {
    let mut d = Dispatcher::new(rules());
    d.register(spec(&["a"], &[], 1)).unwrap();
    d.register(spec(&["b"], &[], 2)).unwrap();
    let first = d.claim_fetch().unwrap();
    let second = d.claim_fetch().unwrap();
    let mut lists = vec![first.queues, second.queues];
    lists.sort();
    assert_eq!(lists, vec![vec!["a".to_owned()], vec!["b".to_owned()]]);
    // b had 2 open: one more claim for it.
    assert_eq!(d.claim_fetch().unwrap().queues, vec!["b".to_owned()]);
    assert_eq!(d.claim_fetch(), None);
}

#[tokio::test(start_paused = true)]
async fn routes_by_queue_jobtype_and_most_open_window() {
    let mut d = Dispatcher::new(rules());
    let x = d.register(spec(&["q"], &["x"], 5)).unwrap();
    let any_small = d.register(spec(&["q"], &[], 1)).unwrap();
    let any_big = d.register(spec(&["q"], &[], 4)).unwrap();
    feed(
        &mut d,
        vec![
            raw("j1", "q", "y"),
            raw("j2", "q", "x"),
            raw("j3", "q", "y"),
        ],
    );
    assert_eq!(jids(&d.take_outgoing(x.id)), vec!["j2"]);
    assert_eq!(jids(&d.take_outgoing(any_big.id)), vec!["j1", "j3"]);
    assert!(d.take_outgoing(any_small.id).deliveries.is_empty());
}

/// Jobs arriving one at a time, each acked before the next: every
/// session has the same open window each time, and the job goes to the
/// least recently assigned one (a new session first), not always to the
/// same one.
#[tokio::test(start_paused = true)]
async fn ties_go_to_the_least_recently_assigned_session() {
    let mut d = Dispatcher::new(rules());
    let ids: Vec<u64> = (0..3)
        .map(|_| d.register(spec(&["q"], &[], 4)).unwrap().id)
        .collect();
    let one_by_one = |d: &mut Dispatcher, jid: &str| -> u64 {
        feed(d, vec![raw(jid, "q", "t")]);
        let all: Vec<u64> = d.sessions.keys().copied().collect();
        let got: Vec<u64> = all
            .into_iter()
            .filter(|&id| !d.take_outgoing(id).deliveries.is_empty())
            .collect();
        assert_eq!(got.len(), 1, "{jid} delivered once");
        d.ack(got[0], vec![jid.to_owned()]);
        got[0]
    };
    let first: Vec<u64> = (0..6)
        .map(|i| one_by_one(&mut d, &format!("j{i}")))
        .collect();
    assert_eq!(
        first,
        vec![ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]],
        "round robin over equal sessions"
    );
    let late = d.register(spec(&["q"], &[], 4)).unwrap().id;
    assert_eq!(one_by_one(&mut d, "j6"), late, "a new session goes first");
    assert_eq!(one_by_one(&mut d, "j7"), ids[0]);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_window_and_results_reopen_it() {
    let mut d = Dispatcher::new(rules());
    let s = d.register(spec(&["q"], &[], 2)).unwrap();
    let claim = d.claim_fetch().unwrap();
    let jobs = (0..4).map(|i| raw(&format!("j{i}"), "q", "t")).collect();
    d.fetched(&claim, jobs, Instant::now(), 0);
    assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j0", "j1"]);
    assert_eq!(d.claim_fetch(), None);
    d.ack(s.id, vec!["j0".into()]);
    assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j2"]);
    let rejected = d.fail(
        s.id,
        vec![JobFailure {
            jid: "j1".into(),
            ..JobFailure::default()
        }],
    );
    assert_eq!(rejected[0].reason, REASON_ERRTYPE_REQUIRED);
    assert!(
        d.take_outgoing(s.id).deliveries.is_empty(),
        "j1 still unfinished"
    );
    let rejected = d.fail(
        s.id,
        vec![JobFailure {
            jid: "j1".into(),
            errtype: "E".into(),
            ..JobFailure::default()
        }],
    );
    assert!(rejected.is_empty());
    assert_eq!(jids(&d.take_outgoing(s.id)), vec!["j3"]);
    // Window lowered below what is held: nothing more until results come.
    d.set_window(s.id, 1);
    assert!(jids(&d.take_outgoing(s.id)).is_empty());
    let settles = d.take_settlements(10);
    let kinds: Vec<_> = settles.iter().map(|s| (s.jid.as_str(), &s.kind)).collect();
    assert_eq!(kinds[0], ("j0", &SettleKind::Ack));
    assert_eq!(kinds[1].0, "j1");
    assert!(matches!(kinds[1].1, SettleKind::Fail { errtype, .. } if errtype == "E"));
    d.settled(answered(settles));
    assert_eq!(d.lease_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn closed_session_jobs_go_to_another_with_attempt_raised() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &[], 2)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t"), raw("j2", "q", "t")]);
    assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1", "j2"]);
    d.unregister(a.id, StreamEnd::Closed);
    // Nobody there: they wait.
    assert!(!d.has_settlements());
    let b = d.register(spec(&["q"], &[], 5)).unwrap();
    let out = d.take_outgoing(b.id);
    assert_eq!(out.deliveries.len(), 2);
    assert!(out.deliveries.iter().all(|(del, _)| del.attempt == 2));
    // A reconnected worker's late ack for a redelivered job settles it.
    d.ack(b.id, vec!["j1".into()]);
    let settles = d.take_settlements(10);
    assert_eq!(settles[0].lease, Some(1));
}

#[tokio::test(start_paused = true)]
async fn results_are_confirmed_once_faktory_answered() {
    let mut d = Dispatcher::new(rules());
    let s = d.register(spec(&["q"], &[], 5)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t"), raw("j2", "q", "t")]);
    d.take_outgoing(s.id);
    d.ack(s.id, vec!["j1".into(), "elsewhere".into()]);
    d.fail(
        s.id,
        vec![JobFailure {
            jid: "j2".into(),
            errtype: "E".into(),
            ..JobFailure::default()
        }],
    );
    let out = d.take_outgoing(s.id);
    assert!(out.settled.is_empty(), "nothing before Faktory answers");
    assert!(d.sessions_busy(), "a drain waits for the answers");
    let settles = d.take_settlements(10);
    let routes: Vec<_> = settles
        .iter()
        .map(|s| (s.jid.as_str(), s.lease, s.reply_to))
        .collect();
    assert_eq!(
        routes,
        vec![
            ("j1", Some(1), Some(s.id)),
            // Not fetched here: to Faktory by jid.
            ("elsewhere", None, Some(s.id)),
            ("j2", Some(2), Some(s.id)),
        ]
    );
    let mut answers = answered(settles);
    answers[2].refused = Some("NotFound Job not found".into());
    d.settled(answers);
    assert!(d.sessions_busy(), "answers not yet taken by the session");
    let out = d.take_outgoing(s.id);
    assert!(!d.sessions_busy());
    assert_eq!(out.settled, vec!["j1", "elsewhere"]);
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].jid, "j2");
    assert_eq!(out.refused[0].reason, "NotFound Job not found");
    assert_eq!(d.lease_count(), 0);
    // An answer for a session that has gone is dropped.
    d.ack(s.id, vec!["late".into()]);
    let settles = d.take_settlements(10);
    d.unregister(s.id, StreamEnd::Closed);
    d.settled(answered(settles));
    assert_eq!(d.settle_backlog(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_broken_streams_jobs_wait_for_their_worker() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &[], 3)).unwrap();
    feed(
        &mut d,
        vec![
            raw("j1", "q", "t"),
            raw("j2", "q", "t"),
            raw("j3", "q", "t"),
        ],
    );
    assert_eq!(jids(&d.take_outgoing(a.id)), vec!["j1", "j2", "j3"]);
    d.unregister(a.id, StreamEnd::Broken);
    // Another worker does not get them while the grace runs.
    let other = d.register(spec(&["q"], &[], 5)).unwrap();
    assert!(jids(&d.take_outgoing(other.id)).is_empty());
    // The worker comes back holding j1, j2 (running, buffered) and a job
    // another gateway delivered.
    let back = d
        .register(SessionSpec {
            holding: vec!["j1".into(), "j2".into(), "foreign".into()],
            ..spec(&["q"], &[], 4)
        })
        .unwrap();
    assert!(
        jids(&d.take_outgoing(back.id)).is_empty(),
        "nothing delivered twice"
    );
    assert_eq!(d.open_window(), 5 + 1, "j1, j2 and foreign count");
    assert_eq!(
        d.take_back(back.id, vec!["foreign".into()])[0].reason,
        REASON_NOT_DELIVERED_HERE
    );
    assert_eq!(d.open_window(), 5 + 2);
    // j3 was not claimed: redelivered once the grace is over (to the
    // session with the most open window).
    tokio::time::advance(rules().reconnect_grace).await;
    d.sweep(Instant::now());
    let out = d.take_outgoing(other.id);
    let got: Vec<_> = out
        .deliveries
        .iter()
        .map(|(del, _)| (del.job.as_ref().unwrap().jid.as_str(), del.attempt))
        .collect();
    assert_eq!(got, vec![("j3", 2)]);
    // The kept jobs settle through the new session.
    d.ack(back.id, vec!["j1".into(), "j2".into()]);
    let leases: Vec<_> = d.take_settlements(10).iter().map(|s| s.lease).collect();
    assert_eq!(leases, vec![Some(1), Some(2)]);
}

#[tokio::test(start_paused = true)]
async fn jobs_of_a_broken_stream_nobody_claims_are_redelivered_after_the_grace() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &[], 1)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t")]);
    d.take_outgoing(a.id);
    d.unregister(a.id, StreamEnd::Broken);
    let b = d.register(spec(&["q"], &[], 1)).unwrap();
    tokio::time::advance(rules().reconnect_grace / 2).await;
    d.sweep(Instant::now());
    assert!(jids(&d.take_outgoing(b.id)).is_empty());
    tokio::time::advance(rules().reconnect_grace / 2).await;
    d.sweep(Instant::now());
    assert_eq!(jids(&d.take_outgoing(b.id)), vec!["j1"]);
    assert_eq!(d.undelivered(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_jobs_are_released_after_the_grace() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &[], 1)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t")]);
    d.take_outgoing(a.id);
    d.unregister(a.id, StreamEnd::Closed);
    d.sweep(Instant::now() + Duration::from_secs(4));
    assert!(!d.has_settlements());
    d.sweep(Instant::now() + Duration::from_secs(5));
    let settles = d.take_settlements(10);
    assert_eq!(settles.len(), 1);
    assert!(matches!(settles[0].kind, SettleKind::Release { .. }));
}

#[tokio::test(start_paused = true)]
async fn released_jobs_go_to_another_session() {
    let mut d = Dispatcher::new(rules());
    let a = d.register(spec(&["q"], &[], 5)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t")]);
    d.take_outgoing(a.id);
    assert!(d.take_back(a.id, vec!["j1".into()]).is_empty());
    assert!(
        d.take_outgoing(a.id).deliveries.is_empty(),
        "not back to the releaser"
    );
    let b = d.register(spec(&["q"], &[], 1)).unwrap();
    let out = d.take_outgoing(b.id);
    assert_eq!(out.deliveries[0].0.attempt, 2);
}

#[tokio::test(start_paused = true)]
async fn unknown_jobtype_fails_after_its_grace() {
    let mut d = Dispatcher::new(rules());
    d.register(spec(&["q"], &["x"], 5)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "y")]);
    d.sweep(Instant::now() + Duration::from_secs(29));
    assert!(!d.has_settlements(), "redelivery grace does not apply");
    d.sweep(Instant::now() + Duration::from_secs(30));
    let settles = d.take_settlements(10);
    assert!(
        matches!(&settles[0].kind, SettleKind::Fail { errtype, .. } if errtype == ERRTYPE_NO_WORKER)
    );
}

#[tokio::test(start_paused = true)]
async fn oversize_jobs_fail_at_once() {
    let mut d = Dispatcher::new(rules());
    let mut small = spec(&["q"], &[], 5);
    small.max_message_bytes = 1024;
    d.register(small).unwrap();
    let big = format!(
        r#"{{"jid":"big","jobtype":"t","queue":"q","args":["{}"]}}"#,
        "x".repeat(2000)
    );
    feed(&mut d, vec![Bytes::from(big)]);
    let settles = d.take_settlements(10);
    assert!(
        matches!(&settles[0].kind, SettleKind::Fail { errtype, .. } if errtype == ERRTYPE_JOB_TOO_LARGE)
    );
}

#[tokio::test(start_paused = true)]
async fn jobs_near_their_deadline_are_released_not_delivered() {
    let mut d = Dispatcher::new(rules());
    let s = d.register(spec(&["q"], &[], 5)).unwrap();
    let claim = d.claim_fetch().unwrap();
    let fetched_long_ago = Instant::now();
    tokio::time::advance(Duration::from_secs(55)).await;
    let short = Bytes::from_static(br#"{"jid":"j1","jobtype":"t","queue":"q","reserve_for":60}"#);
    d.fetched(&claim, vec![short], fetched_long_ago, 0);
    assert!(d.take_outgoing(s.id).deliveries.is_empty());
    assert!(matches!(
        d.take_settlements(1)[0].kind,
        SettleKind::Release { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn jobs_fetched_after_fetching_stopped_go_straight_back() {
    let mut d = Dispatcher::new(rules());
    let s = d.register(spec(&["q"], &[], 5)).unwrap();
    let claim = d.claim_fetch().expect("open window");
    d.stop_fetching();
    assert!(!d.is_fetching());
    assert!(d.fetches_in_flight());
    // The FETCH was on the wire before fetching stopped; its job comes
    // back now.
    d.fetched(&claim, vec![raw("late", "q", "t")], Instant::now(), 0);
    assert!(jids(&d.take_outgoing(s.id)).is_empty(), "not delivered");
    let settles = d.take_settlements(10);
    assert_eq!(settles.len(), 1, "released at once");
    assert_eq!(settles[0].jid, "late");
    assert_eq!(d.claim_fetch(), None);
    assert!(!d.fetches_in_flight(), "the claim was answered");
    d.settled(answered(settles));
    assert_eq!(d.lease_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn drain_then_release_everything() {
    let mut d = Dispatcher::new(rules());
    let s = d.register(spec(&["q"], &[], 5)).unwrap();
    feed(&mut d, vec![raw("j1", "q", "t")]);
    let drain = Drain {
        deadline_unix_ms: 5,
        reason: "shutdown".into(),
    };
    d.stop_fetching();
    d.drain_sessions(drain.clone(), true);
    assert_eq!(d.claim_fetch(), None);
    let out = d.take_outgoing(s.id);
    assert_eq!(out.drain, Some(drain));
    assert!(d.register(spec(&["q"], &[], 1)).is_none());
    assert!(d.sessions_busy());
    d.release_everything();
    assert!(!d.sessions_busy());
    let settles = d.take_settlements(10);
    assert_eq!(settles.len(), 1);
    d.requeue(settles);
    let settles = d.take_settlements(10);
    d.settled(answered(settles));
    assert_eq!(d.lease_count(), 0);
    // A late result goes to Faktory by jid.
    d.ack(s.id, vec!["j1".into()]);
    assert_eq!(d.take_settlements(10)[0].lease, None);
}
