//! Helpers shared by the integration tests: a raw Faktory protocol client and the test target
//! (our in-process server, or a real Faktory named by `FAKTORY_URL`).

#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use faktory_test_server::{ServerConfig, ServerHandle, TestServer, password_hash};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` (the whole line after `-`, e.g. `ERR Job not found x`)
    Error(String),
    /// `$n` with payload
    Bulk(Vec<u8>),
    /// `$-1`
    Null,
    /// The server closed the connection.
    Closed,
}

impl Reply {
    /// The bulk payload as JSON; panics on anything else.
    pub fn json(&self) -> Value {
        match self {
            Reply::Bulk(b) => serde_json::from_slice(b).expect("bulk reply is JSON"),
            other => panic!("expected a bulk JSON reply, got {other:?}"),
        }
    }

    /// Asserts `+OK`.
    pub fn assert_ok(&self) {
        assert_eq!(self, &Reply::Simple("OK".into()), "expected +OK");
    }

    /// Asserts an `-ERR` whose message starts with `prefix` (case-insensitive).
    pub fn assert_err(&self, prefix: &str) {
        match self {
            Reply::Error(e) => {
                let message = e.strip_prefix("ERR ").unwrap_or(e);
                assert!(
                    message.to_lowercase().starts_with(&prefix.to_lowercase()),
                    "error {e:?} does not start with {prefix:?}"
                );
            }
            other => panic!("expected -ERR {prefix}..., got {other:?}"),
        }
    }
}

/// A raw protocol connection.
pub struct Raw {
    stream: BufReader<TcpStream>,
    /// The HI payload.
    pub hi: Value,
}

impl Raw {
    /// Connects and reads HI, without sending HELLO.
    pub async fn open(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut raw = Raw {
            stream: BufReader::new(stream),
            hi: Value::Null,
        };
        let hi = raw.line().await.expect("HI line");
        let json = hi.strip_prefix("+HI ").expect("greeting starts with +HI");
        raw.hi = serde_json::from_str(json).expect("HI JSON");
        raw
    }

    /// Connects and completes the handshake; `hello` fields are merged into `{"v":2}` and the
    /// password hash is added when the server asks for one.
    pub async fn connect(target: &Target, hello: Value) -> Raw {
        let mut raw = Raw::open(&target.addr).await;
        let reply = raw.hello(target.password.as_deref(), hello).await;
        reply.assert_ok();
        raw
    }

    /// Sends HELLO (computing `pwdhash` from `password` if challenged) and returns the reply.
    pub async fn hello(&mut self, password: Option<&str>, extra: Value) -> Reply {
        let mut hello = json!({"v": 2});
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                hello[k] = v;
            }
        }
        if let (Some(salt), Some(pw)) = (self.hi.get("s").and_then(Value::as_str), password) {
            let iterations = self.hi["i"].as_u64().unwrap_or(1) as u32;
            hello["pwdhash"] = json!(password_hash(pw, salt, iterations));
        }
        self.send(&format!("HELLO {hello}")).await;
        self.reply().await
    }

    /// Writes one command line.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// Sends a command and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(line).await;
        self.reply().await
    }

    async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = self.stream.read_until(b'\n', &mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf);
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Reads one reply.
    pub async fn reply(&mut self) -> Reply {
        let Some(line) = self.line().await else {
            return Reply::Closed;
        };
        match line.as_bytes().first() {
            Some(b'+') => Reply::Simple(line[1..].to_owned()),
            Some(b'-') => Reply::Error(line[1..].to_owned()),
            Some(b'$') if &line[1..] == "-1" => Reply::Null,
            Some(b'$') => {
                let len: usize = line[1..].parse().expect("bulk length");
                let mut payload = vec![0; len + 2];
                self.stream
                    .read_exact(&mut payload)
                    .await
                    .expect("bulk payload");
                payload.truncate(len);
                Reply::Bulk(payload)
            }
            _ => panic!("unexpected reply line {line:?}"),
        }
    }

    /// FETCH that must return a job; returns it as JSON.
    pub async fn fetch_job(&mut self, queues: &str) -> Value {
        let reply = self.cmd(&format!("FETCH {queues}")).await;
        assert!(
            matches!(reply, Reply::Bulk(_)),
            "expected a job, got {reply:?}"
        );
        reply.json()
    }
}

/// Where a conformance check runs.
pub struct Target {
    /// URL for the `faktory` crate (`tcp://[:pw@]host:port`).
    pub url: String,
    /// `host:port` for raw connections.
    pub addr: String,
    /// Server password, if any.
    pub password: Option<String>,
    /// Our server, when testing it (`None` against real Faktory).
    pub server: Option<TestServer>,
}

impl Target {
    /// A fresh in-process test server.
    pub async fn test_server() -> Target {
        Target::with_config(ServerConfig::default()).await
    }

    /// A fresh in-process test server with `config`.
    pub async fn with_config(config: ServerConfig) -> Target {
        let password = config.password.clone();
        let server = TestServer::start_with(config)
            .await
            .expect("start test server");
        Target {
            url: server.url(),
            addr: server.addr().to_string(),
            password,
            server: Some(server),
        }
    }

    /// The real Faktory at `FAKTORY_URL`, or `None` (with a visible notice) when unset.
    pub fn real() -> Option<Target> {
        let Ok(url) = std::env::var("FAKTORY_URL") else {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Written straight to stderr so libtest's output capture does not hide it.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping real Faktory run: FAKTORY_URL not set"
                );
            });
            return None;
        };
        let rest = url
            .strip_prefix("tcp://")
            .expect("FAKTORY_URL must be tcp://[:password@]host:port");
        let (password, addr) = match rest.rsplit_once('@') {
            Some((userinfo, addr)) => {
                let pw = userinfo.split_once(':').map_or(userinfo, |(_, pw)| pw);
                (Some(pw.to_owned()), addr.to_owned())
            }
            None => (None, rest.to_owned()),
        };
        Some(Target {
            url,
            addr: addr.trim_end_matches('/').to_owned(),
            password,
            server: None,
        })
    }

    /// The test server's handle (`None` against real Faktory).
    pub fn handle(&self) -> Option<ServerHandle> {
        self.server.as_ref().map(TestServer::handle)
    }
}

/// A name unique within this test run (queues, jids, wids).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A valid job for `queue` with a fresh jid; `extra` fields are merged in.
pub fn job(queue: &str, extra: Value) -> Value {
    let mut job = json!({
        "jid": unique("jid"),
        "jobtype": "conformance",
        "args": [1, "two"],
        "queue": queue,
    });
    if let Value::Object(fields) = extra {
        for (k, v) in fields {
            job[k] = v;
        }
    }
    job
}
