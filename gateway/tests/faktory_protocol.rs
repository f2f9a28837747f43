//! Integration tests of the Faktory protocol layer (`faktory_gateway::faktory`) against the
//! project's Faktory test server, and also against a real Faktory when `FAKTORY_URL` is set.
//!
//! Scenarios that need no server-side inspection run through [`against_all`]; the ones that
//! steer the server (quiet/terminate, stopping the listener, TLS, passwords, never-answering
//! FETCH) use the test server only.

use std::{collections::HashMap, io::Write, sync::Once, time::Duration};

use bytes::Bytes;
use faktory_gateway::faktory::{
    Backoff, BeatState, ConnectOptions, Connection, Error, FailCommand, FaktoryUrl, Identity,
    ParseError, ServerError, TlsError, connect_with_retry, connect_with_retry_using,
};
use faktory_test_server::{ServerConfig, ServerHandle, TestServer, TlsIdentity};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where a scenario runs: the URL, and the test server's handle when it is the test server.
struct Target {
    url: FaktoryUrl,
    handle: Option<ServerHandle>,
}

/// Runs `scenario` against a fresh test server, then against `FAKTORY_URL` when it is set.
async fn against_all<F, Fut>(scenario: F)
where
    F: Fn(Target) -> Fut,
    Fut: Future<Output = ()>,
{
    let server = TestServer::start().await.expect("start test server");
    scenario(Target {
        url: FaktoryUrl::parse(&server.url()).unwrap(),
        handle: Some(server.handle()),
    })
    .await;
    server.shutdown().await;
    if let Some(url) = real_faktory() {
        scenario(Target { url, handle: None }).await;
    }
}

/// The real Faktory from `FAKTORY_URL`, or `None` after printing (once) that those runs are
/// skipped. The notice goes straight to stderr so the test harness does not swallow it.
fn real_faktory() -> Option<FaktoryUrl> {
    static NOTICE: Once = Once::new();
    match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.trim().is_empty() => {
            Some(FaktoryUrl::parse(&url).expect("FAKTORY_URL must be a valid faktory url"))
        }
        _ => {
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTE: FAKTORY_URL is not set; faktory_protocol tests run against the test server only"
                );
            });
            None
        }
    }
}

/// A test server whose FETCH blocks `fetch_block` on empty queues.
async fn start_blocking(fetch_block: Duration) -> (TestServer, FaktoryUrl) {
    start_with(ServerConfig {
        fetch_block,
        ..ServerConfig::default()
    })
    .await
}

async fn start_with(config: ServerConfig) -> (TestServer, FaktoryUrl) {
    let server = TestServer::start_with(config)
        .await
        .expect("start test server");
    let url = FaktoryUrl::parse(&server.url()).unwrap();
    (server, url)
}

/// A name no other test (or earlier run against a real server) uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn job(jid: &str, queue: &str) -> Value {
    // retry 0: a FAILed test job is dropped, so nothing lingers on a real server.
    json!({"jid": jid, "jobtype": "TestJob", "queue": queue, "args": [jid], "retry": 0})
}

fn jid_of(raw: &Bytes) -> String {
    let v: Value = serde_json::from_slice(raw).expect("fetched job is json");
    v["jid"].as_str().expect("job has a jid").to_owned()
}

async fn connect(url: &FaktoryUrl) -> Connection {
    Connection::connect(url, None).await.expect("connect")
}

/// Fetches everything in `queue` (depth 1 at a time until empty) and ACKs it, so runs against
/// a real server leave nothing behind.
async fn drain(conn: &mut Connection, queue: &str) {
    loop {
        let jobs = conn
            .fetch(&[queue.to_owned()], 1)
            .await
            .expect("drain fetch");
        if jobs.is_empty() {
            return;
        }
        let jids: Vec<String> = jobs.iter().map(jid_of).collect();
        conn.ack_many(&jids).await.expect("drain ack");
    }
}

#[tokio::test]
async fn handshake_info_and_end() {
    against_all(|t| async move {
        let mut conn = connect(&t.url).await;
        let info = conn.info().await.expect("info");
        assert!(info.is_object(), "INFO is a json object: {info}");
        assert!(
            info.get("faktory").is_some(),
            "INFO has a faktory section: {info}"
        );
        let raw = conn.call(b"INFO").await.expect("raw INFO");
        assert!(raw.text().is_some_and(|t| t.starts_with(b"{")), "{raw:?}");
        let err = conn.call(b"INFO\r\nEND").await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        conn.end().await.expect("end");
    })
    .await;
}

#[tokio::test]
async fn password_handshake() {
    let config = ServerConfig {
        password: Some("s3cret/@:%".to_owned()),
        ..ServerConfig::default()
    };
    let (server, _) = start_with(config).await;
    let port = server.addr().port();

    let right = FaktoryUrl::parse(&format!("tcp://:s3cret%2F%40%3A%25@127.0.0.1:{port}")).unwrap();
    let mut conn = connect(&right).await;
    conn.info().await.expect("authenticated connection works");
    let shown = format!("{conn:?} {right} {right:?}");
    assert!(!shown.contains("s3cret"), "password leaked: {shown}");

    let wrong = FaktoryUrl::parse(&format!("tcp://:nope@127.0.0.1:{port}")).unwrap();
    let err = Connection::connect(&wrong, None).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        !format!("{err} {err:?}").contains("nope"),
        "password leaked: {err:?}"
    );

    let missing = FaktoryUrl::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let err = Connection::connect(&missing, None).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");

    // A password the server does not ask for is simply not sent.
    let (open, _) = start_with(ServerConfig::default()).await;
    let extra = FaktoryUrl::parse(&format!("tcp://:unused@{}", open.addr())).unwrap();
    connect(&extra)
        .await
        .info()
        .await
        .expect("no password needed");
    open.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn push_bulk_reports_only_failures() {
    against_all(|t| async move {
        let queue = unique("pushb");
        let good = [unique("jid"), unique("jid")];
        let bad = unique("jid");
        let batch = json!([
            job(&good[0], &queue),
            {"jid": bad, "queue": queue, "args": []}, // no jobtype
            job(&good[1], &queue),
        ]);
        let mut conn = connect(&t.url).await;
        let failures = conn
            .push_bulk(&serde_json::to_vec(&batch).unwrap())
            .await
            .expect("pushb");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[&bad].contains("jobtype"), "{failures:?}");
        if let Some(h) = &t.handle {
            assert_eq!(h.queue_len(&queue), 2);
        }
        let all_good = conn
            .push_bulk(&serde_json::to_vec(&json!([job(&unique("jid"), &queue)])).unwrap())
            .await
            .expect("pushb");
        assert_eq!(all_good, HashMap::new());
        drain(&mut conn, &queue).await;
    })
    .await;
}

#[tokio::test]
async fn invalid_json_is_a_server_error_and_the_connection_survives() {
    against_all(|t| async move {
        let mut conn = connect(&t.url).await;
        let err = conn.push(b"{not json").await.unwrap_err();
        match &err {
            Error::Server(ServerError { kind, .. }) => assert_eq!(kind, "ERR"),
            other => panic!("expected a server error, got {other:?}"),
        }
        assert!(!err.breaks_connection());
        assert!(!conn.is_broken());
        let err = conn.push_bulk(b"[{").await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        conn.info().await.expect("connection still usable");
    })
    .await;
}

#[tokio::test]
async fn pipelined_fetch_returns_jobs_in_order() {
    against_all(|t| async move {
        let queue = unique("fetch");
        let other = unique("fetch-low");
        let jids: Vec<String> = (0..10).map(|_| unique("jid")).collect();
        let mut conn = connect(&t.url).await;
        for jid in &jids {
            conn.push(&serde_json::to_vec(&job(jid, &queue)).unwrap())
                .await
                .expect("push");
        }
        // A job in a later queue comes after everything in the first one.
        let low = unique("jid");
        conn.push(&serde_json::to_vec(&job(&low, &other)).unwrap())
            .await
            .unwrap();

        let queues = [queue.clone(), other.clone()];
        let first = conn.fetch(&queues, 4).await.expect("fetch");
        let rest = conn.fetch(&queues, 7).await.expect("fetch");
        let got: Vec<String> = first.iter().chain(&rest).map(jid_of).collect();
        let mut want = jids.clone();
        want.push(low);
        assert_eq!(got, want);
        if let Some(h) = &t.handle {
            assert_eq!(h.reserved_jids().len(), 11);
        }
        let acks = conn.ack_many(&got).await.expect("ack");
        assert!(acks.iter().all(Result::is_ok), "{acks:?}");
        assert!(conn.fetch(&queues, 0).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn ack_and_fail_batches_report_per_item() {
    against_all(|t| async move {
        let queue = unique("settle");
        let jids: Vec<String> = (0..4).map(|_| unique("jid")).collect();
        let mut conn = connect(&t.url).await;
        let batch: Vec<Value> = jids.iter().map(|j| job(j, &queue)).collect();
        conn.push_bulk(&serde_json::to_vec(&batch).unwrap())
            .await
            .unwrap();
        let fetched = conn.fetch(std::slice::from_ref(&queue), 4).await.unwrap();
        assert_eq!(fetched.len(), 4);

        // ACK of an unknown jid is accepted silently, as in Faktory.
        let acks = conn
            .ack_many(&[jids[0].clone(), unique("unknown"), jids[1].clone()])
            .await
            .expect("ack batch");
        assert_eq!(acks, vec![Ok(()), Ok(()), Ok(())]);

        let fail = |jid: &str| FailCommand {
            jid: jid.to_owned(),
            errtype: "TestError".to_owned(),
            message: "line one\nline \"two\"".to_owned(),
            backtrace: vec!["frame 1".to_owned(), "frame 2".to_owned()],
        };
        let unknown = unique("unknown");
        let fails = conn
            .fail_many(&[fail(&jids[2]), fail(&unknown), fail(&jids[3])])
            .await
            .expect("fail batch");
        assert_eq!(fails.len(), 3);
        assert!(fails[0].is_ok() && fails[2].is_ok(), "{fails:?}");
        let not_found = fails[1].as_ref().unwrap_err();
        assert_eq!(not_found.kind, "ERR");
        assert!(
            not_found.message.starts_with("Job not found"),
            "{not_found}"
        );

        if let Some(h) = &t.handle {
            assert!(h.reserved_jids().is_empty());
            let c = h.counters();
            assert_eq!((c.processed, c.failed, c.dropped), (2, 2, 2));
        }
        assert!(conn.ack_many(&[]).await.unwrap().is_empty());
        conn.info().await.expect("connection still usable");
    })
    .await;
}

#[tokio::test]
async fn empty_fetch_returns_no_jobs() {
    let (server, url) = start_blocking(Duration::from_millis(20)).await;
    let mut conn = connect(&url).await;
    let jobs = conn.fetch(&[unique("empty")], 3).await.expect("fetch");
    assert!(jobs.is_empty());
    let err = conn.fetch(&["two words".to_owned()], 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = conn.fetch(&[], 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    conn.info().await.expect("still usable");
    server.shutdown().await;
}

#[tokio::test]
async fn large_job_round_trip() {
    against_all(|t| async move {
        let queue = unique("large");
        let jid = unique("jid");
        let blob = "x".repeat(1 << 20);
        let mut job = job(&jid, &queue);
        job["args"] = json!([blob]);
        let mut conn = connect(&t.url).await;
        conn.push(&serde_json::to_vec(&job).unwrap()).await.unwrap();
        let jobs = conn.fetch(std::slice::from_ref(&queue), 1).await.unwrap();
        assert_eq!(jobs.len(), 1);
        let got: Value = serde_json::from_slice(&jobs[0]).unwrap();
        assert_eq!(got["args"][0].as_str().map(str::len), Some(1 << 20));
        conn.ack_many(&[jid]).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn reply_larger_than_limit_is_refused_and_breaks_the_connection() {
    let (server, url) = start_with(ServerConfig::default()).await;
    let queue = unique("limit");
    let jid = unique("jid");
    let mut job = job(&jid, &queue);
    job["args"] = json!(["y".repeat(4096)]);
    connect(&url)
        .await
        .push(&serde_json::to_vec(&job).unwrap())
        .await
        .unwrap();

    let options = ConnectOptions {
        max_reply: 1024,
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    let err = conn.fetch(&[queue], 1).await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ParseError::TooLarge { max: 1024, .. })),
        "{err:?}"
    );
    assert!(conn.is_broken());
    assert!(matches!(conn.info().await, Err(Error::Broken)));
    server.shutdown().await;
}

#[tokio::test]
async fn beat_reports_quiet_and_terminate() {
    against_all(|t| async move {
        let identity = Identity::generate().with_labels(["protocol-test"]);
        let mut conn = Connection::connect(&t.url, Some(&identity)).await.unwrap();
        assert_eq!(conn.beat(&identity.wid).await.unwrap(), BeatState::Ok);
        let Some(h) = &t.handle else { return };
        assert!(h.set_quiet(&identity.wid));
        assert_eq!(conn.beat(&identity.wid).await.unwrap(), BeatState::Quiet);
        assert!(h.set_terminate(&identity.wid));
        assert_eq!(
            conn.beat(&identity.wid).await.unwrap(),
            BeatState::Terminate
        );
    })
    .await;
}

#[tokio::test]
async fn cancelled_or_timed_out_operation_breaks_the_connection() {
    // FETCH on an empty queue never answers within the test.
    let (server, url) = start_blocking(Duration::from_secs(3600)).await;

    let options = ConnectOptions {
        io_timeout: Duration::from_millis(50),
        fetch_block: Duration::ZERO,
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    let err = conn.fetch(&[unique("never")], 1).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(matches!(conn.info().await, Err(Error::Broken)));

    // Dropping an operation half-way leaves its replies unread.
    let mut conn = connect(&url).await;
    let queues = [unique("never")];
    let mut fetch = Box::pin(conn.fetch(&queues, 1));
    // Poll the fetch once so its commands are written, then drop it.
    assert!(futures::poll!(fetch.as_mut()).is_pending());
    drop(fetch);
    assert!(conn.is_broken());
    assert!(matches!(conn.info().await, Err(Error::Broken)));
    server.shutdown().await;
}

#[tokio::test]
async fn fetch_each_hands_over_jobs_before_the_pipeline_ends() {
    // The third FETCH finds the queue empty and never answers within the test, yet the two
    // jobs ahead of it are handed over (they are reserved at Faktory) before the timeout.
    let (server, url) = start_blocking(Duration::from_secs(3600)).await;
    let queue = unique("each");
    let jids = [unique("jid"), unique("jid")];
    let mut conn = connect(&url).await;
    for jid in &jids {
        conn.push(&serde_json::to_vec(&job(jid, &queue)).unwrap())
            .await
            .unwrap();
    }
    let options = ConnectOptions {
        io_timeout: Duration::from_millis(200),
        fetch_block: Duration::ZERO,
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    let mut handed = Vec::new();
    let err = conn
        .fetch_each(std::slice::from_ref(&queue), 3, |job| {
            handed.push(jid_of(&job))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(handed, jids);
    assert_eq!(server.handle().reserved_jids().len(), 2);
    server.shutdown().await;
}

/// A self-signed certificate for 127.0.0.1, its PEM written where the client can load it.
fn self_signed(name: &str) -> (TlsIdentity, std::path::PathBuf) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate certificate");
    let cert_pem = key.cert.pem();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{:016x}.pem", rand::random::<u64>()));
    std::fs::write(&path, &cert_pem).expect("write ca file");
    let identity = TlsIdentity {
        cert_pem,
        key_pem: key.signing_key.serialize_pem(),
    };
    (identity, path)
}

#[tokio::test]
async fn tls_with_generated_certificate() {
    let (identity, ca) = self_signed("faktory-tls");
    let config = ServerConfig {
        tls: Some(identity),
        password: Some("tls-pw".to_owned()),
        ..ServerConfig::default()
    };
    let (server, url) = start_with(config).await;
    assert!(url.is_tls());

    let options = ConnectOptions {
        tls_ca: Some(ca.clone()),
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .expect("tls connect");
    let queue = unique("tls");
    let jid = unique("jid");
    conn.push(&serde_json::to_vec(&job(&jid, &queue)).unwrap())
        .await
        .unwrap();
    let jobs = conn.fetch(&[queue], 2).await.unwrap();
    assert_eq!(
        jobs.iter().map(jid_of).collect::<Vec<_>>(),
        vec![jid.clone()]
    );
    assert_eq!(conn.ack_many(&[jid]).await.unwrap(), vec![Ok(())]);
    huge_batches(&mut conn).await;
    conn.end().await.unwrap();

    // Without the extra CA the self-signed certificate is refused, and retrying cannot help.
    let err = Connection::connect(&url, None).await.unwrap_err();
    assert!(matches!(err, Error::Tls(TlsError::Handshake(_))), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    // The same refusal ends connect_with_retry at once instead of looping.
    let err = connect_with_retry(&url, None, &Backoff::default(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");

    // Plain TCP to a TLS port is not Faktory.
    let plain = FaktoryUrl::parse(&format!("tcp://{}", server.addr())).unwrap();
    let quick = ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    };
    assert!(
        Connection::connect_with(&plain, None, &quick)
            .await
            .is_err()
    );
    let _ = std::fs::remove_file(ca);
    server.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_listener_restart() {
    let (server, url) = start_with(ServerConfig::default()).await;
    let identity = Identity::generate();
    let mut conn = Connection::connect(&url, Some(&identity)).await.unwrap();
    conn.info().await.unwrap();

    server.stop_listener().await;
    let err = conn.info().await.unwrap_err();
    assert!(err.is_retryable() && err.breaks_connection(), "{err:?}");
    assert!(conn.is_broken());

    let cancel = CancellationToken::new();
    let backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
    let reconnect = tokio::spawn({
        let (url, identity, backoff, cancel) = (
            url.clone(),
            identity.clone(),
            backoff.clone(),
            cancel.clone(),
        );
        async move { connect_with_retry(&url, Some(&identity), &backoff, &cancel).await }
    });
    // The reconnect loop keeps failing (and backing off) until the port is open again.
    server.restart_listener().await;
    let mut conn = reconnect.await.unwrap().expect("reconnected");
    conn.info().await.expect("new connection works");
    assert_eq!(conn.beat(&identity.wid).await.unwrap(), BeatState::Ok);

    // A non-retryable failure is returned at once.
    let (pw_server, _) = start_with(ServerConfig {
        password: Some("right".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    let wrong_pw = FaktoryUrl::parse(&format!("tcp://:wrong@{}", pw_server.addr())).unwrap();
    let err = connect_with_retry_using(
        &wrong_pw,
        None,
        &ConnectOptions::default(),
        &backoff,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    pw_server.shutdown().await;
    server.shutdown().await;
}

/// Sends 100k FAILs and then 100k ACKs of unknown jids in two batches: megabytes of commands
/// and of `-ERR Job not found <jid>` replies, more than the socket buffers hold, so the client
/// must read replies while it is still writing.
async fn huge_batches(conn: &mut Connection) {
    let fails: Vec<FailCommand> = (0..100_000)
        .map(|i| FailCommand {
            jid: format!("unknown-{i:064}"),
            errtype: "E".to_owned(),
            message: String::new(),
            backtrace: Vec::new(),
        })
        .collect();
    let results = conn.fail_many(&fails).await.expect("fail batch");
    assert_eq!(results.len(), fails.len());
    assert!(results.iter().all(Result::is_err));
    let jids: Vec<String> = fails.into_iter().map(|f| f.jid).collect();
    let acks = conn.ack_many(&jids).await.expect("ack batch");
    assert!(acks.iter().all(Result::is_ok));
}

#[tokio::test]
async fn huge_batches_do_not_deadlock() {
    against_all(|t| async move {
        let options = ConnectOptions {
            io_timeout: Duration::from_secs(20),
            ..ConnectOptions::default()
        };
        let mut conn = Connection::connect_with(&t.url, None, &options)
            .await
            .unwrap();
        huge_batches(&mut conn).await;
    })
    .await;
}

/// A scripted server for one connection: greets, takes HELLO, then answers each command line
/// it reads with the next of `replies`, one write per reply, `gap` apart (as real Faktory
/// answers a pipeline one reply at a time).
async fn trickling_server(replies: Vec<&'static str>, gap: Duration) -> FaktoryUrl {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = FaktoryUrl::parse(&format!("tcp://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"+HI {\"v\":2}\r\n").await.unwrap();
        let hello = lines.next_line().await.unwrap().unwrap();
        assert!(hello.starts_with("HELLO"), "{hello}");
        write.write_all(b"+OK\r\n").await.unwrap();
        for reply in replies {
            let Ok(Some(_command)) = lines.next_line().await else {
                return;
            };
            tokio::time::sleep(gap).await;
            write.write_all(reply.as_bytes()).await.unwrap();
        }
        // Hold the connection open until the client goes.
        let _ = lines.next_line().await;
    });
    url
}

#[tokio::test]
async fn paced_reads_take_replies_trickling_in_one_by_one() {
    // Paced connections wait for the bytes the replies still due must bring at least; the
    // shortest replies there are (3 bytes) arriving one by one must never leave them waiting
    // for bytes that cannot come (the io timeout would end the exchange).
    let options = ConnectOptions {
        pace_reads: true,
        io_timeout: Duration::from_secs(5),
        fetch_block: Duration::ZERO,
        ..ConnectOptions::default()
    };
    let queue = ["q".to_owned()];
    let gap = Duration::from_millis(15);
    let shortest = vec!["-\r\n"; 8];
    let url = trickling_server(shortest.clone(), gap).await;
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    // Twice: the second exchange is paced by what the first took.
    for _ in 0..2 {
        let err = conn.fetch(&queue, 4).await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
    }
    let url = trickling_server(
        vec![
            "$-1\r\n",
            "$2\r\n{}\r\n",
            "+OK\r\n",
            "+OK\r\n",
            "-ERR Job not found\r\n",
            "+OK\r\n",
        ],
        gap,
    )
    .await;
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    let jobs = conn.fetch(&queue, 2).await.unwrap();
    assert_eq!(jobs, vec![Bytes::from_static(b"{}")]);
    let jids: Vec<String> = (0..4).map(|i| format!("j{i}")).collect();
    let results = conn.ack_many(&jids).await.unwrap();
    assert_eq!(
        results.iter().map(Result::is_ok).collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn a_job_whose_crlf_comes_alone_is_handed_over_while_the_next_fetch_blocks() {
    // Faktory 1.10 writes a job's length line, the job and its CRLF with three writes, and a
    // FETCH behind it may then block on an empty queue. The first job must reach the caller
    // as soon as its CRLF is in: this server answers the second FETCH only once it has.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = FaktoryUrl::parse(&format!("tcp://{}", listener.local_addr().unwrap())).unwrap();
    let (handed_tx, handed_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"+HI {\"v\":2}\r\n").await.unwrap();
        let _hello = lines.next_line().await.unwrap().unwrap();
        write.write_all(b"+OK\r\n").await.unwrap();
        for _ in 0..2 {
            let fetch = lines.next_line().await.unwrap().unwrap();
            assert!(fetch.starts_with("FETCH"), "{fetch}");
        }
        write.write_all(b"$12\r\n{\"jid\":\"j1\"}").await.unwrap();
        // Long enough for the client to read the job without its CRLF.
        tokio::time::sleep(Duration::from_millis(100)).await;
        write.write_all(b"\r\n").await.unwrap();
        // The second FETCH "blocks" until the first job was handed over.
        if handed_rx.await.is_ok() {
            write.write_all(b"$-1\r\n").await.unwrap();
        }
        let _ = lines.next_line().await;
    });
    let options = ConnectOptions {
        pace_reads: true,
        io_timeout: Duration::from_secs(10),
        fetch_block: Duration::ZERO,
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect_with(&url, None, &options)
        .await
        .unwrap();
    let mut handed = Some(handed_tx);
    let mut jobs = Vec::new();
    let got = conn
        .fetch_each(&["q".to_owned()], 2, |job| {
            jobs.push(job);
            if let Some(tx) = handed.take() {
                let _ = tx.send(());
            }
        })
        .await
        .expect("the first job is handed over before the second FETCH answers");
    assert_eq!(got, 1);
    assert_eq!(jobs, vec![Bytes::from_static(b"{\"jid\":\"j1\"}")]);
}

#[tokio::test]
async fn paced_huge_batches_do_not_deadlock() {
    // As `huge_batches_do_not_deadlock`, on a connection that paces its reads.
    against_all(|t| async move {
        let options = ConnectOptions {
            io_timeout: Duration::from_secs(20),
            pace_reads: true,
            ..ConnectOptions::default()
        };
        let mut conn = Connection::connect_with(&t.url, None, &options)
            .await
            .unwrap();
        huge_batches(&mut conn).await;
        huge_batches(&mut conn).await;
    })
    .await;
}
