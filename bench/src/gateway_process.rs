//! The gateway as a child process, so its CPU time and peak RSS can be read
//! from `/proc/<pid>` apart from the workers and producers in the bench
//! process.
//!
//! The child is the bench binary itself, re-executed with
//! [`CHILD_ARG`] as its first argument: it runs the same
//! `faktory_gateway::serve` the `faktory-gateway` binary runs, on
//! `127.0.0.1:0`, prints `listening <addr>` on stdout, and shuts down
//! gracefully when its stdin closes (so it also stops if the bench dies).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::Error;
use crate::measure::{ProcessSample, reset_peak_rss, sample_process};

/// First argument that turns the bench binary into a gateway child.
pub const CHILD_ARG: &str = "__gateway-child";

/// How long a gateway may take to drain and exit before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A running gateway child process.
pub struct GatewayProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    pid: u32,
}

impl GatewayProcess {
    /// Starts `exe` (the bench binary) as a gateway for Faktory at
    /// `faktory_url`, with `extra_args` passed on to its configuration
    /// (e.g. `--fetch-concurrency=8`). The metrics endpoint is off and the
    /// shutdown grace period 3 s.
    ///
    /// Fails when the child cannot be started or does not report its
    /// address.
    pub async fn start(
        exe: &Path,
        faktory_url: &str,
        extra_args: &[String],
    ) -> Result<GatewayProcess, Error> {
        let mut child = Command::new(exe)
            .arg(CHILD_ARG)
            .arg("--faktory-url")
            .arg(faktory_url)
            .arg("--metrics-listen=off")
            // Workers are stopped before the gateway; a long grace only
            // delays the next scenario.
            .arg("--shutdown-grace-ms=3000")
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io("start gateway child", e))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::Setup("gateway child exited".into()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Setup("no child stdout".into()))?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        lines
            .read_line(&mut line)
            .await
            .map_err(|e| Error::io("read gateway child address", e))?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| Error::Setup(format!("gateway child did not start: {line:?}")))?;
        // Keep draining stdout so a chatty child never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink).await;
        });
        Ok(GatewayProcess {
            child,
            stdin,
            addr,
            pid,
        })
    }

    /// The gateway's gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// CPU time and peak RSS so far.
    pub fn sample(&self) -> Option<ProcessSample> {
        sample_process(Some(self.pid))
    }

    /// Resets the peak RSS so the next sample shows a fresh peak.
    pub fn reset_peak_rss(&self) -> bool {
        reset_peak_rss(Some(self.pid))
    }

    /// Asks the gateway to shut down (closes its stdin), waits for it to
    /// drain and exit, and kills it if it takes longer than 15 s.
    ///
    /// Fails when it had to be killed or exited with an error.
    pub async fn stop(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::Setup(format!("gateway child exited with {status}"))),
            Ok(Err(e)) => Err(Error::io("wait for gateway child", e)),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(Error::Setup(
                    "gateway child did not stop within 15 s".into(),
                ))
            }
        }
    }
}

/// The child side: parses `args` as the gateway's configuration, serves on
/// `127.0.0.1:0`, prints `listening <addr>`, and shuts down gracefully when
/// stdin closes.
///
/// Fails when the configuration is invalid, binding fails, or the gateway
/// fails.
pub async fn run_child(args: Vec<String>) -> Result<(), Error> {
    use std::io::Write as _;
    use tokio::io::AsyncReadExt as _;

    let argv = std::iter::once("faktory-gateway".to_owned()).chain(args);
    let config = <faktory_gateway::Config as clap::Parser>::try_parse_from(argv)
        .map_err(|e| Error::Setup(format!("gateway configuration: {e}")))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("bind gateway listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("gateway listener address", e))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("report gateway address", e))?;
    drop(stdout);
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while let Ok(read) = stdin.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    };
    faktory_gateway::serve(config, listener, stdin_closed)
        .await
        .map_err(|e| Error::Setup(format!("gateway: {e}")))
}
