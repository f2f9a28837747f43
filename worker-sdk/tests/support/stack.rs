//! The real thing on loopback: the Faktory test server, a gateway started
//! with `faktory_gateway::serve`, and helpers to push jobs and wait for
//! conditions.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use faktory_gateway::Config;
use faktory_gateway_worker::proto::{Job, PushRequest, PushStatus, gateway_client::GatewayClient};
use faktory_test_server::TestServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The task running `faktory_gateway::serve`.
type ServeTask = JoinHandle<Result<(), faktory_gateway::Error>>;

/// A gateway running in this process.
pub struct Gateway {
    addr: SocketAddr,
    faktory_url: String,
    extra: Vec<String>,
    running: Option<(oneshot::Sender<()>, ServeTask)>,
}

impl Gateway {
    /// Starts a gateway for `faktory_url` with extra flags.
    pub async fn start(faktory_url: &str, extra: &[&str]) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut gateway = Gateway {
            addr: listener.local_addr().unwrap(),
            faktory_url: faktory_url.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            running: None,
        };
        gateway.serve(listener);
        gateway
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut args = vec![
            "faktory-gateway".to_owned(),
            "--faktory-url".to_owned(),
            self.faktory_url.clone(),
            "--metrics-listen".to_owned(),
            "off".to_owned(),
        ];
        args.extend(self.extra.iter().cloned());
        let config = Config::try_parse_from(args).expect("valid gateway flags");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(faktory_gateway::serve(config, listener, async {
            let _ = stopped.await;
        }));
        self.running = Some((stop, task));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the gateway down (drain included) and waits for it.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await.unwrap().expect("clean gateway shutdown");
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the gateway port");
        self.serve(listener);
    }
}

/// Faktory test server plus a gateway in front of it.
pub struct Stack {
    pub faktory: TestServer,
    pub gateway: Gateway,
}

impl Stack {
    /// Gateway flags tuned for tests unless `extra` sets them: jobs of a
    /// vanished worker go straight back, and shutdown does not linger.
    pub async fn start(extra: &[&str]) -> Stack {
        super::init_tracing();
        let faktory = TestServer::start().await.expect("test server");
        let mut flags = extra.to_vec();
        for (flag, value) in [
            ("--redelivery-grace-ms", "0"),
            ("--shutdown-grace-ms", "5000"),
        ] {
            if !extra.contains(&flag) {
                flags.extend([flag, value]);
            }
        }
        let gateway = Gateway::start(&faktory.url(), &flags).await;
        Stack { faktory, gateway }
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
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
