//! Session tests: a session task driven through its channels, without a
//! network or Faktory behind it.

use super::*;
use crate::delivery::tests_support::shared as new_shared;
use bytes::Bytes;
use faktory_gateway_proto::v1::{Acks, Hello};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

type ToGateway = mpsc::Sender<Result<WorkerMessage, Status>>;
type FromGateway = mpsc::Receiver<Result<GatewayMessage, Status>>;

fn start(shared: &Arc<Shared>) -> (ToGateway, FromGateway) {
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_BUFFER);
    tokio::spawn(run(shared.clone(), ReceiverStream::new(in_rx), out_tx));
    (in_tx, out_rx)
}

fn worker(kind: worker_message::Kind) -> Result<WorkerMessage, Status> {
    Ok(WorkerMessage { kind: Some(kind) })
}

fn hello(window: u32) -> Result<WorkerMessage, Status> {
    worker(worker_message::Kind::Hello(Hello {
        worker_id: "w1".into(),
        queues: vec!["q".into()],
        window,
        ..Hello::default()
    }))
}

async fn next_kind(rx: &mut FromGateway) -> gateway_message::Kind {
    loop {
        let msg = rx.recv().await.expect("stream open").expect("no error");
        match msg.kind.expect("kind set") {
            // Pings may interleave anywhere.
            gateway_message::Kind::Heartbeat(h) if h.ping_id != 0 => {}
            kind => return kind,
        }
    }
}

async fn end_status(rx: &mut FromGateway) -> Status {
    loop {
        if let Err(status) = rx.recv().await.expect("an error before the end") {
            return status;
        }
    }
}

fn inject(shared: &Shared, jids: &[&str]) {
    let mut d = shared.dispatcher.lock();
    let claim = d.claim_fetch().expect("demand");
    let raws = jids
        .iter()
        .map(|j| {
            Bytes::from(format!(
                r#"{{"jid":"{j}","jobtype":"t","queue":"q","args":[1]}}"#
            ))
        })
        .collect();
    d.fetched(&claim, raws, Instant::now(), 0);
}

#[tokio::test]
async fn welcome_jobs_results_and_heartbeats() {
    let shared = new_shared();
    let (tx, mut rx) = start(&shared);
    tx.send(hello(500)).await.unwrap();
    let gateway_message::Kind::Welcome(welcome) = next_kind(&mut rx).await else {
        panic!("welcome first");
    };
    assert_eq!(welcome.window, 100, "clamped to max_window");
    assert_eq!(welcome.heartbeat_timeout_ms, 3000);
    inject(&shared, &["a", "b"]);
    let gateway_message::Kind::Jobs(batch) = next_kind(&mut rx).await else {
        panic!("jobs");
    };
    let jids: Vec<_> = batch
        .deliveries
        .iter()
        .map(|d| d.job.as_ref().unwrap().jid.as_str())
        .collect();
    assert_eq!(jids, vec!["a", "b"]);
    tx.send(worker(worker_message::Kind::Acks(Acks {
        jids: vec!["a".into(), "zzz".into()],
    })))
    .await
    .unwrap();
    // Confirmed once Faktory answered (here: a relay's report, by hand);
    // "zzz" was not fetched here and went to Faktory by jid.
    let settles = loop {
        let settles = shared.dispatcher.lock().take_settlements(10);
        if !settles.is_empty() {
            break settles;
        }
        tokio::task::yield_now().await;
    };
    let answers = settles
        .into_iter()
        .map(|s| crate::delivery::settle::Answered::to(s, None))
        .collect();
    shared.dispatcher.lock().settled(answers);
    let gateway_message::Kind::Settled(settled) = next_kind(&mut rx).await else {
        panic!("confirmation");
    };
    assert_eq!(settled.jids, vec!["a", "zzz"]);
    tx.send(worker(worker_message::Kind::Heartbeat(Heartbeat {
        ping_id: 42,
        pong_id: 0,
    })))
    .await
    .unwrap();
    let gateway_message::Kind::Heartbeat(pong) = next_kind(&mut rx).await else {
        panic!("pong");
    };
    assert_eq!(pong.pong_id, 42);
    // The worker leaves: its unfinished job waits for another session.
    drop(tx);
    assert!(rx.recv().await.is_none());
    let d = shared.dispatcher.lock();
    assert_eq!(d.session_count(), 0);
    assert_eq!(d.lease_count(), 1, "b kept for the worker's reconnect");
}

#[tokio::test]
async fn bad_first_messages_end_with_invalid_argument() {
    let shared = new_shared();
    let (tx, mut rx) = start(&shared);
    tx.send(worker(worker_message::Kind::Acks(Acks::default())))
        .await
        .unwrap();
    let status = end_status(&mut rx).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("hello"), "{}", status.message());

    let (tx, mut rx) = start(&shared);
    tx.send(hello(0)).await.unwrap();
    let status = end_status(&mut rx).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("hello.window"),
        "{}",
        status.message()
    );
}

#[tokio::test(start_paused = true)]
async fn missing_hello_is_deadline_exceeded() {
    let shared = new_shared();
    let (_tx, mut rx) = start(&shared);
    assert_eq!(end_status(&mut rx).await.code(), Code::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn silent_worker_is_dropped_and_its_jobs_freed() {
    let shared = new_shared();
    let (tx, mut rx) = start(&shared);
    tx.send(hello(5)).await.unwrap();
    next_kind(&mut rx).await;
    inject(&shared, &["a"]);
    next_kind(&mut rx).await;
    let status = end_status(&mut rx).await;
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(rx.recv().await.is_none());
    let d = shared.dispatcher.lock();
    assert_eq!(d.session_count(), 0);
    assert!(!d.sessions_busy());
}

#[tokio::test]
async fn shutdown_refuses_new_sessions() {
    let shared = new_shared();
    shared.dispatcher.lock().drain_sessions(
        faktory_gateway_proto::v1::Drain {
            deadline_unix_ms: 0,
            reason: "shutdown".into(),
        },
        true,
    );
    let (tx, mut rx) = start(&shared);
    tx.send(hello(5)).await.unwrap();
    assert_eq!(end_status(&mut rx).await.code(), Code::Unavailable);
}
