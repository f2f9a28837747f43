//! Shared helpers for the gateway's integration tests: a gateway running in
//! this process on 127.0.0.1:0 ([`Gateway`], with its HTTP/JSON API when
//! asked), a plain tonic `Work` client ([`TestWorker`]), a one-request HTTP
//! client ([`http_request`]), job builders, and a poll for eventually-true
//! conditions of the Faktory test server.
//!
//! Each test binary uses a subset; unused helpers are expected.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use faktory_gateway::Config;
use faktory_gateway_proto::v1::gateway_client::GatewayClient;
use faktory_gateway_proto::v1::{
    Acks, Delivery, Fails, GatewayMessage, Heartbeat, Hello, Job, JobFailure, PushRequest,
    PushResponse, PushStatus, Releases, Welcome, WorkerMessage, gateway_message, worker_message,
};
use faktory_test_server::{ServerConfig, TestServer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// A gateway running in this process.
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its HTTP/JSON API listens ([`Gateway::start_http`] only).
    pub http: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), faktory_gateway::Error>>,
}

impl Gateway {
    /// Starts a gateway for `faktory_url` with `extra` flags (metrics off).
    pub async fn start(faktory_url: &str, extra: &[&str]) -> Gateway {
        Self::start_with(
            faktory_url,
            extra,
            faktory_gateway::HttpListeners::default(),
        )
        .await
    }

    /// As [`Gateway::start`], with the HTTP/JSON API on 127.0.0.1:0
    /// ([`Gateway::http`]).
    pub async fn start_http(faktory_url: &str, extra: &[&str]) -> Gateway {
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let listeners = faktory_gateway::HttpListeners {
            api: Some(api),
            metrics: None,
        };
        Self::start_with(faktory_url, extra, listeners).await
    }

    /// As [`Gateway::start`], serving HTTP on `listeners` (bound by the
    /// caller); [`Gateway::http`] is the API's address, if any.
    pub async fn start_with(
        faktory_url: &str,
        extra: &[&str],
        listeners: faktory_gateway::HttpListeners,
    ) -> Gateway {
        init_logs();
        let mut args = vec![
            "faktory-gateway",
            "--faktory-url",
            faktory_url,
            "--metrics-listen",
            "off",
        ];
        args.extend_from_slice(extra);
        let config = Config::try_parse_from(args).expect("valid flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let http = listeners
            .api
            .as_ref()
            .map(|l| l.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(faktory_gateway::serve_with(
            config,
            listener,
            listeners,
            async {
                let _ = stopped.await;
            },
        ));
        Gateway {
            addr,
            http,
            stop,
            task,
        }
    }

    /// The HTTP/JSON API's address; panics when it was not started.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.expect("started with start_http")
    }

    /// A client for it.
    pub async fn client(&self) -> GatewayClient<Channel> {
        GatewayClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to gateway")
    }

    /// Triggers shutdown and waits for `serve` to return.
    pub async fn stop(self) -> Result<(), faktory_gateway::Error> {
        let _ = self.stop.send(());
        self.task.await.expect("serve task")
    }
}

/// How long the test server blocks a FETCH on empty queues: shorter than
/// Faktory's 2 s so that FETCH pipelines in flight when a test ends (which the
/// gateway lets finish, to release what they bring) do not stretch the suite.
pub const FETCH_BLOCK: Duration = Duration::from_millis(250);

/// A Faktory test server with [`FETCH_BLOCK`].
pub async fn faktory() -> TestServer {
    TestServer::start_with(ServerConfig {
        fetch_block: FETCH_BLOCK,
        ..ServerConfig::default()
    })
    .await
    .expect("start the faktory test server")
}

/// Pushes `jobs` through `client` in calls of at most 1000; every job must
/// be accepted.
pub async fn push_with(mut client: GatewayClient<Channel>, jobs: Vec<Job>) {
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let chunk: Vec<Job> = jobs.by_ref().take(1000).collect();
        let response: PushResponse = client
            .push(PushRequest { jobs: chunk })
            .await
            .expect("push call")
            .into_inner();
        for r in &response.results {
            assert_eq!(r.status(), PushStatus::Accepted, "{r:?}");
        }
    }
}

/// `n` jobs of `jobtype` on `queue`, jids `{tag}-{pid}-{i}` (unique per run,
/// so runs against a real Faktory do not collide).
pub fn jobs(tag: &str, n: usize, queue: &str, jobtype: &str) -> Vec<Job> {
    (0..n)
        .map(|i| Job {
            jid: format!("{tag}-{}-{i:05}", std::process::id()),
            jobtype: jobtype.into(),
            queue: queue.into(),
            args: Bytes::from(format!("[{i}]")),
            ..Job::default()
        })
        .collect()
}

/// A hello for `queues` with `window`, any jobtype.
pub fn hello(worker_id: &str, queues: &[&str], window: u32) -> Hello {
    Hello {
        worker_id: worker_id.into(),
        hostname: "test".into(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        window,
        ..Hello::default()
    }
}

/// What a worker received, apart from heartbeats (answered automatically).
#[derive(Debug)]
pub enum Received {
    /// A job batch.
    Jobs(Vec<Delivery>),
    /// A drain notice.
    Drain(faktory_gateway_proto::v1::Drain),
    /// Rejected results.
    Rejected(Vec<faktory_gateway_proto::v1::RejectedResult>),
    /// A pong for one of our pings.
    Pong(u64),
    /// The stream ended with this status (`None`: cleanly).
    End(Option<Status>),
}

/// A plain tonic `Work` client.
pub struct TestWorker {
    tx: mpsc::Sender<WorkerMessage>,
    rx: Streaming<GatewayMessage>,
    /// The gateway's welcome.
    pub welcome: Welcome,
    /// Jids the gateway confirmed with `Settled` so far (collected by
    /// [`TestWorker::recv`], which does not return them).
    pub settled: Vec<String>,
}

impl TestWorker {
    /// Opens a stream and sends `hello` first; `Err` is the stream's status
    /// when the gateway refused it.
    pub async fn connect(gateway: &Gateway, hello: Hello) -> Result<TestWorker, Status> {
        Self::connect_with(gateway, Some(hello)).await
    }

    /// Opens a stream, sending `first` (if any) as the first message.
    pub async fn connect_with(
        gateway: &Gateway,
        first: Option<Hello>,
    ) -> Result<TestWorker, Status> {
        let (tx, rx) = mpsc::channel(64);
        if let Some(hello) = first {
            tx.send(message(worker_message::Kind::Hello(hello)))
                .await
                .expect("buffer");
        }
        Self::open(gateway, tx, rx).await
    }

    /// Opens a stream whose first message is `first` (any kind).
    pub async fn connect_raw(
        gateway: &Gateway,
        first: worker_message::Kind,
    ) -> Result<TestWorker, Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(message(first)).await.expect("buffer");
        Self::open(gateway, tx, rx).await
    }

    /// Opens a stream over `client` (e.g. a TLS channel), hello first.
    pub async fn connect_via(
        client: GatewayClient<Channel>,
        hello: Hello,
    ) -> Result<TestWorker, Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(message(worker_message::Kind::Hello(hello)))
            .await
            .expect("buffer");
        Self::open_via(client, tx, rx).await
    }

    async fn open(
        gateway: &Gateway,
        tx: mpsc::Sender<WorkerMessage>,
        rx: mpsc::Receiver<WorkerMessage>,
    ) -> Result<TestWorker, Status> {
        Self::open_via(gateway.client().await, tx, rx).await
    }

    async fn open_via(
        mut client: GatewayClient<Channel>,
        tx: mpsc::Sender<WorkerMessage>,
        rx: mpsc::Receiver<WorkerMessage>,
    ) -> Result<TestWorker, Status> {
        let mut stream = client.work(ReceiverStream::new(rx)).await?.into_inner();
        match stream.message().await? {
            Some(GatewayMessage {
                kind: Some(gateway_message::Kind::Welcome(welcome)),
            }) => Ok(TestWorker {
                tx,
                rx: stream,
                welcome,
                settled: Vec::new(),
            }),
            Some(other) => panic!("expected a welcome, got {other:?}"),
            None => Err(Status::unknown("stream ended before the welcome")),
        }
    }

    /// The next message that is neither a ping (answered here) nor a
    /// confirmation (collected in [`TestWorker::settled`]).
    pub async fn recv(&mut self) -> Received {
        loop {
            if let Some(received) = self.recv_or_settled().await {
                return received;
            }
        }
    }

    /// As [`TestWorker::recv`], but `None` after collecting a confirmation.
    async fn recv_or_settled(&mut self) -> Option<Received> {
        loop {
            let msg = match self.rx.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return Some(Received::End(None)),
                Err(status) => return Some(Received::End(Some(status))),
            };
            match msg.kind {
                Some(gateway_message::Kind::Jobs(batch)) => {
                    return Some(Received::Jobs(batch.deliveries));
                }
                Some(gateway_message::Kind::Drain(drain)) => return Some(Received::Drain(drain)),
                Some(gateway_message::Kind::Rejected(r)) => {
                    return Some(Received::Rejected(r.results));
                }
                Some(gateway_message::Kind::Heartbeat(h)) if h.ping_id != 0 => {
                    let _ = self
                        .tx
                        .send(message(worker_message::Kind::Heartbeat(Heartbeat {
                            ping_id: 0,
                            pong_id: h.ping_id,
                        })))
                        .await;
                }
                Some(gateway_message::Kind::Heartbeat(h)) => {
                    return Some(Received::Pong(h.pong_id));
                }
                Some(gateway_message::Kind::Settled(s)) => {
                    self.settled.extend(s.jids);
                    return None;
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next job batch; panics on anything else.
    pub async fn jobs(&mut self) -> Vec<Delivery> {
        match self.recv().await {
            Received::Jobs(jobs) => jobs,
            other => panic!("expected jobs, got {other:?}"),
        }
    }

    /// Sends a message.
    pub async fn send(&self, kind: worker_message::Kind) {
        self.tx.send(message(kind)).await.expect("stream open");
    }

    /// Acks `jids`.
    pub async fn ack(&self, jids: Vec<String>) {
        self.send(worker_message::Kind::Acks(Acks { jids })).await;
    }

    /// Fails `jid` with `errtype`.
    pub async fn fail(&self, jid: &str, errtype: &str) {
        self.send(worker_message::Kind::Fails(Fails {
            failures: vec![JobFailure {
                jid: jid.into(),
                errtype: errtype.into(),
                message: "boom".into(),
                backtrace: vec!["line 1".into()],
            }],
        }))
        .await;
    }

    /// Releases `jids`.
    pub async fn release(&self, jids: Vec<String>) {
        self.send(worker_message::Kind::Releases(Releases { jids }))
            .await;
    }

    /// Sends a ping.
    pub async fn ping(&self, id: u64) {
        self.send(worker_message::Kind::Heartbeat(Heartbeat {
            ping_id: id,
            pong_id: 0,
        }))
        .await;
    }

    /// Waits until the gateway has applied everything sent before: a ping
    /// is answered only after the messages ahead of it. Drain notices are
    /// skipped; jobs arriving meanwhile are returned.
    pub async fn sync(&mut self, id: u64) -> Vec<Delivery> {
        self.ping(id).await;
        let mut jobs = Vec::new();
        loop {
            match self.recv().await {
                Received::Pong(got) if got == id => return jobs,
                Received::Jobs(more) => jobs.extend(more),
                Received::Drain(_) | Received::Pong(_) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    }

    /// Reads until the gateway has confirmed every one of `jids` (each
    /// taken from [`TestWorker::settled`] once); returns jobs that arrived
    /// meanwhile. Panics on rejections, drains and the stream's end.
    pub async fn until_settled(&mut self, jids: &[String]) -> Vec<Delivery> {
        let mut jobs = Vec::new();
        let mut missing: Vec<&String> = jids.iter().collect();
        loop {
            missing.retain(|jid| match self.settled.iter().position(|s| s == *jid) {
                Some(i) => {
                    self.settled.swap_remove(i);
                    false
                }
                None => true,
            });
            if missing.is_empty() {
                return jobs;
            }
            match self.recv_or_settled().await {
                None | Some(Received::Pong(_)) => {}
                Some(Received::Jobs(more)) => jobs.extend(more),
                Some(other) => panic!("expected confirmations of {missing:?}, got {other:?}"),
            }
        }
    }

    /// Closes the worker's side (half-close) and drops the stream: the
    /// gateway sees the stream end.
    pub fn cut(self) {
        drop(self);
    }
}

fn message(kind: worker_message::Kind) -> WorkerMessage {
    WorkerMessage { kind: Some(kind) }
}

/// The jid of a delivery.
pub fn jid_of(delivery: &Delivery) -> String {
    delivery.job.as_ref().expect("job set").jid.clone()
}

/// Polls `condition` every 10 ms until it holds; panics after `limit` with
/// `what`. For state that changes asynchronously (results relayed to the
/// Faktory test server), never for waiting on a server to start.
pub async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `FAKTORY_URL` when set, for tests that also run against a real Faktory;
/// prints a skip notice otherwise.
pub fn real_faktory(test: &str) -> Option<String> {
    match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "NOTE: FAKTORY_URL is not set; skipping {test} against a real Faktory"
            );
            None
        }
    }
}

/// Sends the gateway's logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// An HTTP response: status code, headers (lowercase names) and body.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request (`connection: close`) with `headers` and
/// `body` (content-length set) to `addr` and reads the whole response.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the http api");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    assert!(!chunked, "the gateway sets content-length on every reply");
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
