//! A scripted in-process `Gateway` that follows the contract's window rules
//! from an in-memory queue, records every result, and can cut or drain its
//! streams: it tests the SDK's session logic without Faktory or the real
//! gateway.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use faktory_gateway_worker::proto::{
    self as v1, gateway_message,
    gateway_server::{Gateway, GatewayServer},
    worker_message,
};
use futures::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// What the mock saw.
#[derive(Debug, Default)]
pub struct Record {
    pub queue: VecDeque<(v1::Job, u32)>,
    pub acked: Vec<String>,
    pub failed: Vec<v1::JobFailure>,
    pub released: Vec<String>,
    pub rejected: usize,
    pub hellos: Vec<v1::Hello>,
    pub windows: Vec<u32>,
    /// Unfinished jobs per open session.
    pub unfinished: HashMap<u64, HashSet<String>>,
    /// The most unfinished jobs any session ever held.
    pub max_unfinished: usize,
    pub deliveries: usize,
    /// Delivered jobs by jid, to requeue them as they were.
    pub inflight: HashMap<String, (v1::Job, u32)>,
}

/// The running mock; dropping it stops the server.
pub struct MockGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

struct Shared {
    record: Mutex<Record>,
    changed: Notify,
    /// Cancelling the current token ends every open stream.
    cut: Mutex<CancellationToken>,
    drain: Mutex<CancellationToken>,
    /// Cancelling the current token makes every open stream go silent.
    mute: Mutex<CancellationToken>,
    next_session: Mutex<u64>,
}

impl MockGateway {
    pub async fn start() -> MockGateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            record: Mutex::new(Record::default()),
            changed: Notify::new(),
            cut: Mutex::new(CancellationToken::new()),
            drain: Mutex::new(CancellationToken::new()),
            mute: Mutex::new(CancellationToken::new()),
            next_session: Mutex::new(0),
        });
        let stop = CancellationToken::new();
        let service = GatewayServer::new(Service {
            shared: shared.clone(),
        });
        let shutdown = stop.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    shutdown.cancelled_owned(),
                )
                .await
                .unwrap();
        });
        MockGateway { addr, shared, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `n` jobs of `jobtype` with the given args; returns their jids.
    pub fn push(&self, jobtype: &str, args: &str, n: usize) -> Vec<String> {
        let mut record = self.shared.record.lock().unwrap();
        let start = record.queue.len() + record.acked.len() + record.failed.len();
        let jids: Vec<String> = (0..n).map(|i| format!("{jobtype}-{}", start + i)).collect();
        for jid in &jids {
            let job = v1::Job {
                jid: jid.clone(),
                jobtype: jobtype.into(),
                queue: "default".into(),
                args: Bytes::copy_from_slice(args.as_bytes()),
                backtrace: 5,
                ..Default::default()
            };
            record.queue.push_back((job, 1));
        }
        drop(record);
        self.shared.changed.notify_waiters();
        jids
    }

    pub fn with<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.shared.record.lock().unwrap())
    }

    /// Ends every open stream with UNAVAILABLE (like a gateway crash).
    pub fn cut(&self) {
        let mut cut = self.shared.cut.lock().unwrap();
        std::mem::take(&mut *cut).cancel();
    }

    /// Sends `Drain` on every open stream.
    pub fn drain(&self) {
        let mut drain = self.shared.drain.lock().unwrap();
        std::mem::take(&mut *drain).cancel();
    }

    /// Makes every open stream go silent without closing it (a black-holed
    /// connection): nothing more is sent or read.
    pub fn mute(&self) {
        let mut mute = self.shared.mute.lock().unwrap();
        std::mem::take(&mut *mute).cancel();
    }

    /// Resolves once `pred` holds (re-checked whenever the record changes);
    /// panics after 30 s so a broken worker fails the test instead of hanging.
    pub async fn wait_for(&self, pred: impl Fn(&Record) -> bool) {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                if self.with(&pred) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .expect("condition not reached within 30 s");
    }
}

impl Drop for MockGateway {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

struct Service {
    shared: Arc<Shared>,
}

type Out = Pin<Box<dyn Stream<Item = Result<v1::GatewayMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Gateway for Service {
    async fn push(
        &self,
        _: Request<v1::PushRequest>,
    ) -> Result<Response<v1::PushResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }

    type WorkStream = Out;

    async fn work(
        &self,
        request: Request<Streaming<v1::WorkerMessage>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(v1::WorkerMessage {
                kind: Some(worker_message::Kind::Hello(hello)),
            })) => hello,
            _ => return Err(Status::invalid_argument("first message must be hello")),
        };
        let session = {
            let mut next = self.shared.next_session.lock().unwrap();
            *next += 1;
            *next
        };
        let window = hello.window.max(1);
        {
            let mut record = self.shared.record.lock().unwrap();
            record.hellos.push(hello);
            record.unfinished.insert(session, HashSet::new());
        }
        let (tx, rx) = mpsc::channel(64);
        let welcome = v1::Welcome {
            session_id: format!("s{session}"),
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms: 500,
            window,
            max_window: 100_000,
            max_message_bytes: 4 << 20,
        };
        tx.send(Ok(msg(gateway_message::Kind::Welcome(welcome))))
            .await
            .unwrap();
        let cut = self.shared.cut.lock().unwrap().clone();
        let drain = self.shared.drain.lock().unwrap().clone();
        let mute = self.shared.mute.lock().unwrap().clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut conn = Conn {
                shared,
                session,
                window,
                tx,
            };
            conn.run(inbound, cut, drain, mute).await;
            conn.close();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as Out))
    }
}

fn msg(kind: gateway_message::Kind) -> v1::GatewayMessage {
    v1::GatewayMessage { kind: Some(kind) }
}

struct Conn {
    shared: Arc<Shared>,
    session: u64,
    window: u32,
    tx: mpsc::Sender<Result<v1::GatewayMessage, Status>>,
}

impl Conn {
    async fn run(
        &mut self,
        mut inbound: Streaming<v1::WorkerMessage>,
        cut: CancellationToken,
        drain: CancellationToken,
        mute: CancellationToken,
    ) {
        let mut drained = false;
        loop {
            let batch = self.take_batch(drained);
            if !batch.is_empty() {
                let kind = gateway_message::Kind::Jobs(v1::JobBatch { deliveries: batch });
                if self.tx.send(Ok(msg(kind))).await.is_err() {
                    return;
                }
            }
            let changed = self.shared.changed.notified();
            tokio::select! {
                _ = mute.cancelled() => {
                    // Silent but open: read and ignore until the worker hangs up.
                    while let Some(Ok(_)) = inbound.next().await {}
                    return;
                }
                _ = cut.cancelled() => {
                    let _ = self.tx.send(Err(Status::unavailable("cut"))).await;
                    return;
                }
                _ = drain.cancelled(), if !drained => {
                    drained = true;
                    let kind = gateway_message::Kind::Drain(v1::Drain { deadline_unix_ms: 0, reason: "shutdown".into() });
                    let _ = self.tx.send(Ok(msg(kind))).await;
                }
                _ = changed => {}
                message = inbound.next() => match message {
                    Some(Ok(message)) => {
                        if !self.on_message(message).await {
                            return;
                        }
                    }
                    _ => return,
                },
            }
        }
    }

    fn take_batch(&self, drained: bool) -> Vec<v1::Delivery> {
        if drained {
            return Vec::new();
        }
        let mut record = self.shared.record.lock().unwrap();
        let mut batch = Vec::new();
        loop {
            let held = record.unfinished[&self.session].len();
            if held >= self.window as usize || batch.len() >= 100 {
                break;
            }
            let Some((job, attempt)) = record.queue.pop_front() else {
                break;
            };
            record
                .unfinished
                .get_mut(&self.session)
                .unwrap()
                .insert(job.jid.clone());
            record.deliveries += 1;
            record
                .inflight
                .insert(job.jid.clone(), (job.clone(), attempt));
            let held = held + 1;
            record.max_unfinished = record.max_unfinished.max(held);
            batch.push(v1::Delivery {
                job: Some(job),
                reservation_deadline_unix_ms: 4_102_444_800_000,
                attempt,
            });
        }
        batch
    }

    /// Applies one worker message; false ends the stream.
    async fn on_message(&mut self, message: v1::WorkerMessage) -> bool {
        let mut rejected = Vec::new();
        let mut reply = None;
        {
            let mut record = self.shared.record.lock().unwrap();
            let record = &mut *record;
            let session = self.session;
            let mut settle = |record: &mut Record, jid: &str| {
                let known = record.unfinished.get_mut(&session).unwrap().remove(jid);
                if !known {
                    rejected.push(v1::RejectedResult {
                        jid: jid.into(),
                        reason: "unknown jid".into(),
                    });
                }
                known
            };
            match message.kind {
                Some(worker_message::Kind::Acks(acks)) => {
                    for jid in acks.jids {
                        if settle(record, &jid) {
                            record.acked.push(jid);
                        }
                    }
                }
                Some(worker_message::Kind::Fails(fails)) => {
                    for failure in fails.failures {
                        if settle(record, &failure.jid) {
                            record.failed.push(failure);
                        }
                    }
                }
                Some(worker_message::Kind::Releases(releases)) => {
                    for jid in releases.jids {
                        if settle(record, &jid) {
                            record.released.push(jid.clone());
                            requeue(record, &jid);
                        }
                    }
                }
                Some(worker_message::Kind::Window(update)) => {
                    self.window = update.window.max(1);
                    record.windows.push(update.window);
                }
                Some(worker_message::Kind::Heartbeat(beat)) if beat.ping_id != 0 => {
                    reply = Some(v1::Heartbeat {
                        ping_id: 0,
                        pong_id: beat.ping_id,
                    });
                }
                _ => {}
            }
            record.rejected += rejected.len();
        }
        self.shared.changed.notify_waiters();
        if !rejected.is_empty() {
            let kind = gateway_message::Kind::Rejected(v1::ResultRejected { results: rejected });
            if self.tx.send(Ok(msg(kind))).await.is_err() {
                return false;
            }
        }
        if let Some(beat) = reply {
            return self
                .tx
                .send(Ok(msg(gateway_message::Kind::Heartbeat(beat))))
                .await
                .is_ok();
        }
        true
    }

    /// The stream ended: its unfinished jobs are redelivered.
    fn close(&self) {
        let mut record = self.shared.record.lock().unwrap();
        let left = record.unfinished.remove(&self.session).unwrap_or_default();
        for jid in left {
            requeue(&mut record, &jid);
        }
        drop(record);
        self.shared.changed.notify_waiters();
    }
}

/// Puts a delivered job back at the front of the queue, its attempt raised.
fn requeue(record: &mut Record, jid: &str) {
    if let Some((job, attempt)) = record.inflight.remove(jid) {
        record.queue.push_front((job, attempt + 1));
    }
}
