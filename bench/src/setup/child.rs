//! Helper processes the bench starts from its own binary, so their CPU time
//! and peak RSS can be read from `/proc/<pid>` apart from the workers and
//! producers in the bench process: the gateway
//! ([`crate::setup::gateway_process`]) and, on request, the Faktory test server
//! ([`crate::setup::target`]).
//!
//! Protocol: the parent runs its own executable with a role argument; the
//! child prints `listening <address>` as its first stdout line once it
//! serves, and shuts down gracefully when its stdin closes (so it also
//! stops if the bench dies).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::Error;
use crate::measure::process_stats::{ProcessSample, reset_peak_rss, sample_process};

/// How long a child may take to drain and exit before it is killed. A
/// gateway stopped just as its queue ran dry waits for its pipelined
/// FETCHes, ~2 s each in turn (`--fetch-max-depth` × 2 s: 8 s at the
/// default 4, 32 s at depth 16).
const STOP_LIMIT: Duration = Duration::from_secs(40);

/// A running helper process.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    announced: String,
    what: &'static str,
}

impl ChildProcess {
    /// Runs `exe` with `args` and waits for its `listening <address>` line.
    /// `what` names the child in errors.
    ///
    /// Fails when the child cannot be started or does not announce itself.
    pub async fn start(
        exe: &Path,
        args: &[String],
        what: &'static str,
    ) -> Result<ChildProcess, Error> {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("start {what} child"), e))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::Setup(format!("{what} child exited")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Setup(format!("no stdout from {what} child")))?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        lines
            .read_line(&mut line)
            .await
            .map_err(|e| Error::io(format!("read {what} child address"), e))?;
        let announced = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| Error::Setup(format!("{what} child did not start: {line:?}")))?
            .to_owned();
        // Keep draining stdout so a chatty child never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink).await;
        });
        Ok(ChildProcess {
            child,
            stdin,
            pid,
            announced,
            what,
        })
    }

    /// The address the child announced.
    pub fn announced(&self) -> &str {
        &self.announced
    }

    /// CPU time and peak RSS so far.
    pub fn sample(&self) -> Option<ProcessSample> {
        sample_process(Some(self.pid))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resets the peak RSS so the next sample shows a fresh peak.
    pub fn reset_peak_rss(&self) -> bool {
        reset_peak_rss(Some(self.pid))
    }

    /// Closes the child's stdin, waits for it to exit, and kills it if it
    /// takes longer than 40 s.
    ///
    /// Fails when it had to be killed or exited with an error.
    pub async fn stop(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        let what = self.what;
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::Setup(format!("{what} child exited with {status}"))),
            Ok(Err(e)) => Err(Error::io(format!("wait for {what} child"), e)),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(Error::Setup(format!(
                    "{what} child did not stop within {} s",
                    STOP_LIMIT.as_secs()
                )))
            }
        }
    }

    /// Kills the child with SIGKILL and waits for it to be gone.
    ///
    /// Fails when the signal cannot be sent.
    pub async fn kill(mut self) -> Result<(), Error> {
        let what = self.what;
        self.child
            .kill()
            .await
            .map_err(|e| Error::io(format!("kill {what} child"), e))
    }
}

/// The child side: prints `listening <announced>` and returns a future
/// that resolves when stdin closes.
///
/// Fails when stdout cannot be written.
pub fn announce(announced: &str) -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    use std::io::Write as _;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {announced}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("announce child address", e))?;
    Ok(async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while let Ok(read) = stdin.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    })
}
