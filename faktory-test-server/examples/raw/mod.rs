//! A minimal raw Faktory client for the examples that measure throughput: HI/HELLO (with a
//! password when the URL has one), write bytes, read RESP replies. Replies are not checked
//! beyond "not an error", so the measured cost is the server's, not a client library's.

use faktory_test_server::password_hash;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One connection to a Faktory server.
pub(crate) struct Client {
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    /// Connects to `url` (`tcp://[:password@]host:port` or a bare `host:port`) and says HELLO.
    pub(crate) async fn connect(url: &str) -> Client {
        let rest = url.strip_prefix("tcp://").unwrap_or(url);
        let (password, addr) = match rest.rsplit_once('@') {
            Some((user, addr)) => (user.strip_prefix(':'), addr),
            None => (None, rest),
        };
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            stream: BufReader::with_capacity(256 * 1024, stream),
            line: Vec::new(),
        };
        let hi = client.read_line().await;
        let hi: serde_json::Value =
            serde_json::from_slice(hi.strip_prefix(b"+HI ").expect("+HI")).expect("HI JSON");
        let mut hello = serde_json::json!({"v": 2});
        if let (Some(password), Some(salt)) = (password, hi["s"].as_str()) {
            let iterations = u32::try_from(hi["i"].as_u64().unwrap_or(1)).unwrap_or(1);
            hello["pwdhash"] = password_hash(password, salt, iterations).into();
        }
        client.write(format!("HELLO {hello}\r\n").as_bytes()).await;
        client.read_line().await; // +OK
        client
    }

    /// Writes `bytes` (one or more whole commands).
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    async fn read_line(&mut self) -> &[u8] {
        self.line.clear();
        self.stream
            .read_until(b'\n', &mut self.line)
            .await
            .expect("read");
        &self.line
    }

    /// Reads one reply into `payload`: the bulk payload, empty for simple strings and `$-1`.
    /// Panics on an error reply.
    pub(crate) async fn reply(&mut self, payload: &mut Vec<u8>) {
        payload.clear();
        let line = self.read_line().await;
        if line.first() == Some(&b'$') && line.get(1) != Some(&b'-') {
            let len: usize = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            payload.resize(len + 2, 0);
            self.stream.read_exact(payload).await.expect("payload");
            payload.truncate(len);
        } else {
            assert!(
                line.first() != Some(&b'-'),
                "server error: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

/// Appends `ACK {"jid":..}` for the job JSON `job`.
pub(crate) fn ack_for(job: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"ACK {\"jid\":\"");
    out.extend_from_slice(jid_of(job));
    out.extend_from_slice(b"\"}\r\n");
}

/// The jid of a job JSON document.
fn jid_of(job: &[u8]) -> &[u8] {
    let key = b"\"jid\":\"";
    let start = job.windows(key.len()).position(|w| w == key).expect("jid") + key.len();
    let len = job[start..]
        .iter()
        .position(|&b| b == b'"')
        .expect("jid end");
    &job[start..start + len]
}

/// Appends `PUSHB [..]` with `jobs` jobs on `queue`, jids `{prefix}-{n}` for n in `0..jobs`.
pub(crate) fn push_batch(queue: &str, prefix: &str, jobs: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"PUSHB [");
    for n in 0..jobs {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(job(queue, &format!("{prefix}-{n}")).as_bytes());
    }
    out.extend_from_slice(b"]\r\n");
}

/// One small job's JSON.
pub(crate) fn job(queue: &str, jid: &str) -> String {
    format!(r#"{{"jid":"{jid}","jobtype":"bench","args":[1],"queue":"{queue}","reserve_for":600}}"#)
}
