//! The real thing on loopback: the Faktory test server, gateways started
//! with `faktory_gateway::serve` (each on its own runtime, so one can be
//! killed), and helpers to push jobs and wait for conditions.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use faktory_gateway::Config;
use faktory_gateway_worker::proto::{Job, PushRequest, PushStatus, gateway_client::GatewayClient};
use faktory_test_server::TestServer;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The task running `faktory_gateway::serve`.
type ServeTask = JoinHandle<Result<(), faktory_gateway::Error>>;

/// A gateway running in this process, on its own tokio runtime: stopping it
/// is its graceful shutdown, killing it shuts the runtime down (every task
/// dropped mid-flight, every socket closed, nothing released), as a crashed
/// process would.
pub struct Gateway {
    addr: SocketAddr,
    faktory_url: String,
    extra: Vec<String>,
    running: Option<Running>,
}

struct Running {
    runtime: Runtime,
    stop: oneshot::Sender<()>,
    task: ServeTask,
}

impl Gateway {
    /// Starts a gateway for `faktory_url` with extra flags.
    pub async fn start(faktory_url: &str, extra: &[&str]) -> Gateway {
        Gateway::start_at("127.0.0.1:0".parse().unwrap(), faktory_url, extra).await
    }

    /// Starts a gateway on `addr` (e.g. one from [`free_addr`]).
    pub async fn start_at(addr: SocketAddr, faktory_url: &str, extra: &[&str]) -> Gateway {
        let listener = std::net::TcpListener::bind(addr).expect("bind the gateway");
        let mut gateway = Gateway {
            addr: listener.local_addr().unwrap(),
            faktory_url: faktory_url.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            running: None,
        };
        gateway.serve(listener);
        gateway
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        let mut args = vec![
            "faktory-gateway".to_owned(),
            "--faktory-url".to_owned(),
            self.faktory_url.clone(),
            "--metrics-listen".to_owned(),
            "off".to_owned(),
        ];
        args.extend(self.extra.iter().cloned());
        let config = Config::try_parse_from(args).expect("valid gateway flags");
        listener.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway")
            .enable_all()
            .build()
            .expect("gateway runtime");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("listener on this runtime");
            faktory_gateway::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running = Some(Running {
            runtime,
            stop,
            task,
        });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the gateway down (drain included) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.await.unwrap().expect("clean gateway shutdown");
            running.runtime.shutdown_background();
        }
    }

    /// Kills the gateway: see the type's docs.
    pub fn kill(&mut self) {
        if let Some(running) = self.running.take() {
            running.runtime.shutdown_background();
        }
    }

    /// Starts it again on the same port (after a kill, once the old
    /// runtime has let go of it).
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("rebind the gateway port: {e}"),
            }
        };
        self.serve(listener);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address nothing listens on (bound, then let go), for a
/// gateway that is down or starts later.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Faktory test server plus a gateway in front of it.
pub struct Stack {
    pub faktory: TestServer,
    pub gateway: Gateway,
    /// The gateway's flags, for [`another_gateway`](Self::another_gateway).
    flags: Vec<String>,
}

impl Stack {
    /// Gateway flags tuned for tests unless `extra` sets them: jobs of a
    /// vanished worker go straight back, and shutdown does not linger.
    pub async fn start(extra: &[&str]) -> Stack {
        super::init_tracing();
        let faktory = TestServer::start().await.expect("test server");
        let mut flags: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for (flag, value) in [
            ("--redelivery-grace-ms", "0"),
            ("--shutdown-grace-ms", "5000"),
        ] {
            if !extra.contains(&flag) {
                flags.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        let gateway = Gateway::start(&faktory.url(), &Self::as_strs(&flags)).await;
        Stack {
            faktory,
            gateway,
            flags,
        }
    }

    /// One more gateway beside the same Faktory, with the same flags, on
    /// `addr` (`127.0.0.1:0` for any port).
    pub async fn another_gateway(&self, addr: SocketAddr) -> Gateway {
        Gateway::start_at(addr, &self.faktory.url(), &Self::as_strs(&self.flags)).await
    }

    fn as_strs(flags: &[String]) -> Vec<&str> {
        flags.iter().map(String::as_str).collect()
    }
}

/// A job of `jobtype` with these `args` (JSON) and `retry`.
pub fn job(jobtype: &str, args: &str, retry: Option<i32>) -> Job {
    Job {
        jobtype: jobtype.into(),
        args: args.to_owned().into(),
        retry,
        ..Job::default()
    }
}

/// Pushes `n` jobs through the gateway's `Push`, in batches of 1,000; returns
/// their jids.
pub async fn push(
    gateway_url: &str,
    jobtype: &str,
    args: &str,
    retry: Option<i32>,
    n: usize,
) -> Vec<String> {
    push_like(gateway_url, &job(jobtype, args, retry), n).await
}

/// Like [`push`], for `n` copies of `template` (each gets its own jid).
pub async fn push_like(gateway_url: &str, template: &Job, n: usize) -> Vec<String> {
    let mut client = GatewayClient::connect(gateway_url.to_owned())
        .await
        .expect("connect");
    push_like_via(&mut client, template, n).await
}

/// Like [`push`], over an existing client.
pub async fn push_via(
    client: &mut GatewayClient<Channel>,
    jobtype: &str,
    args: &str,
    retry: Option<i32>,
    n: usize,
) -> Vec<String> {
    push_like_via(client, &job(jobtype, args, retry), n).await
}

async fn push_like_via(
    client: &mut GatewayClient<Channel>,
    template: &Job,
    n: usize,
) -> Vec<String> {
    let mut jids = Vec::with_capacity(n);
    let mut pushed = 0;
    while pushed < n {
        let count = (n - pushed).min(1000);
        let jobs = vec![template.clone(); count];
        let response = client
            .push(PushRequest { jobs })
            .await
            .expect("push")
            .into_inner();
        for result in response.results {
            assert_eq!(result.status(), PushStatus::Accepted, "{}", result.reason);
            jids.push(result.jid);
        }
        pushed += count;
    }
    jids
}

/// Polls `condition` every few milliseconds until it holds; panics naming
/// `what` after 60 s so a broken system fails instead of hanging.
pub async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    within(Duration::from_secs(60), what, condition).await;
}

/// Like [`eventually`], giving up after `limit` (a liveness bound, not a
/// measurement).
pub async fn within(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A worker for `gateway` that takes jobs from `queue` only.
pub fn worker_on(gateway: &Gateway, queue: &str) -> faktory_gateway_worker::WorkerBuilder {
    faktory_gateway_worker::Worker::builder()
        .gateway(gateway.url())
        .queues([queue])
}

/// The Faktory a test that also runs against a real one talks to:
/// `FAKTORY_URL` when set (such tests then keep to queues of their own, see
/// [`unique_queue`]), else a fresh test server, kept alive by the returned
/// handle.
pub async fn faktory_url() -> (String, Option<TestServer>) {
    super::init_tracing();
    match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            let server = TestServer::start().await.expect("test server");
            (server.url(), Some(server))
        }
    }
}

/// A queue name no other run uses, so runs against a shared real Faktory do
/// not take each other's jobs.
pub fn unique_queue(tag: &str) -> String {
    format!(
        "sdk-{tag}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
