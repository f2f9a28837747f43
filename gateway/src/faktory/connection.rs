//! [`Connection`]: one authenticated connection to Faktory, with pipelined batch commands, and
//! [`ConnectOptions`].
//!
//! Every operation encodes its whole batch into one reused write buffer, writes it with a single
//! flush, then reads exactly one reply per command in order. Replies are parsed straight out of
//! the read buffer; fetched jobs are slices of it, not copies.
//!
//! Cancellation: dropping an operation's future half-way (or any I/O, timeout or protocol
//! failure) leaves the request/reply stream out of step, so the connection marks itself broken
//! and every later call returns [`Error::Broken`]; callers reconnect (see
//! [`connect_with_retry`](super::connect_with_retry)). Faktory's per-command error replies do
//! not break the connection.

use std::{
    collections::HashMap,
    fmt, io,
    path::PathBuf,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::command::{self, FailCommand};
use super::error::{Error, ServerError};
use super::handshake::{self, Identity};
use super::resp::{DEFAULT_MAX_REPLY, Reply, ReplyParser};
use super::transport::Transport;
use super::url::FaktoryUrl;

/// Read buffer growth step; also the initial size of both buffers.
const BUFFER_CHUNK: usize = 64 * 1024;
/// An idle buffer larger than this (after a huge batch or reply) is given back.
const BUFFER_KEEP: usize = 4 << 20;

/// How to connect, beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// An extra CA certificate file (PEM) trusted in addition to the webpki roots, for
    /// Faktory servers with self-signed certificates (`tcp+tls://` only).
    pub tls_ca: Option<PathBuf>,
    /// Deadline for TCP connect, TLS handshake and the HI/HELLO exchange together.
    pub connect_timeout: Duration,
    /// Deadline for the replies to a batch of non-blocking commands.
    pub io_timeout: Duration,
    /// How long Faktory blocks one FETCH on empty queues (2 s in Faktory); a pipelined fetch of
    /// depth `d` waits up to `d * fetch_block + io_timeout`.
    pub fetch_block: Duration,
    /// Largest single reply accepted.
    pub max_reply: usize,
    /// Pace the reading of pipelined replies: after writing a batch of `n` commands, wait about
    /// as long as Faktory took for `n - 1` replies last time (at most 20 ms) before
    /// reading. Faktory answers one connection's commands one after another, so without this
    /// every reply arrives, and wakes the reader, on its own.
    pub pace_reads: bool,
}

/// Longest wait before reading the replies of a paced batch.
pub(crate) const MAX_READ_PACE: Duration = Duration::from_millis(20);

/// The read low-water mark while a paced batch waits out its pace: replies arriving meanwhile
/// do not wake the process (one wakeup per reply otherwise, each Faktory reply arriving on its
/// own). Small enough not to make the kernel grow the socket's receive buffer for it; more
/// arriving than this only ends the quiet early.
const HOLD_READS: usize = 32 * 1024;

/// The fewest bytes any RESP reply takes (`+\r\n`): replies still to come bring at least this
/// many bytes each, so waiting for that many is never waiting for bytes that cannot come.
const MIN_REPLY_BYTES: usize = 3;

/// Whether a batch's replies come as soon as Faktory gets to their commands, or may each wait
/// on the queues (FETCH blocks up to [`ConnectOptions::fetch_block`] on empty ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    Prompt,
    MayBlock,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls_ca: None,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            fetch_block: Duration::from_secs(2),
            max_reply: DEFAULT_MAX_REPLY,
            pace_reads: false,
        }
    }
}

impl ConnectOptions {
    /// The deadline for the replies of a pipelined fetch of `depth` FETCHes:
    /// `depth * fetch_block + io_timeout`. A fetch still unanswered then fails with a timeout
    /// and its connection is dropped.
    pub fn fetch_limit(&self, depth: usize) -> Duration {
        fetch_limit(self.io_timeout, self.fetch_block, depth)
    }
}

/// See [`ConnectOptions::fetch_limit`].
fn fetch_limit(io_timeout: Duration, fetch_block: Duration, depth: usize) -> Duration {
    io_timeout + fetch_block.saturating_mul(u32::try_from(depth).unwrap_or(u32::MAX))
}

/// What Faktory said to a `BEAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatState {
    /// Carry on.
    Ok,
    /// Stop fetching new jobs; finish the ones in hand.
    Quiet,
    /// Finish up and exit.
    Terminate,
}

/// One authenticated connection to Faktory over TCP or TLS. Owned by one task at a time.
pub struct Connection {
    transport: Transport,
    read_buf: BytesMut,
    write_buf: BytesMut,
    parser: ReplyParser,
    io_timeout: Duration,
    fetch_block: Duration,
    pace_reads: bool,
    /// Time per reply of the last paced exchange, at most [`MAX_READ_PACE`].
    reply_interval: Duration,
    /// Whether paced exchanges set the socket's read low-water mark (paced reads on plain TCP
    /// on Linux, see [`Transport::set_read_low_water`]).
    low_water_on: bool,
    /// The read low-water mark the socket has now (1: the kernel's default).
    low_water: usize,
    /// Set while an exchange is in progress and left set if it does not finish cleanly.
    broken: bool,
    endpoint: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.transport.is_tls())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects with [`ConnectOptions::default`]; see [`Connection::connect_with`].
    ///
    /// # Errors
    /// As [`Connection::connect_with`].
    pub async fn connect(
        url: &FaktoryUrl,
        identity: Option<&Identity>,
    ) -> Result<Connection, Error> {
        Connection::connect_with(url, identity, &ConnectOptions::default()).await
    }

    /// Connects, runs the TLS handshake for `tcp+tls://`, and authenticates: reads `HI`, answers
    /// `HELLO` (with the password hash when Faktory asks for one) and expects `+OK`. With an
    /// `identity` the connection registers a Faktory worker process that must [`beat`](Self::beat).
    ///
    /// # Errors
    /// [`Error::Io`] when the server cannot be reached, [`Error::Tls`] for TLS problems,
    /// [`Error::Auth`] for a wrong or missing password, [`Error::Timeout`] after
    /// `connect_timeout`, [`Error::UnexpectedReply`]/[`Error::Protocol`] when the peer does not
    /// speak Faktory.
    pub async fn connect_with(
        url: &FaktoryUrl,
        identity: Option<&Identity>,
        options: &ConnectOptions,
    ) -> Result<Connection, Error> {
        let connect = async {
            let transport = Transport::open(url, options.tls_ca.as_deref()).await?;
            let low_water_on = options.pace_reads && transport.has_read_low_water();
            let mut conn = Connection {
                transport,
                read_buf: BytesMut::with_capacity(BUFFER_CHUNK),
                write_buf: BytesMut::with_capacity(BUFFER_CHUNK),
                parser: ReplyParser::new(options.max_reply),
                io_timeout: options.io_timeout,
                fetch_block: options.fetch_block,
                pace_reads: options.pace_reads,
                reply_interval: Duration::ZERO,
                low_water_on,
                low_water: 1,
                broken: true,
                endpoint: url.to_string(),
            };
            let greeting = conn.read_reply().await?;
            let hello = handshake::answer_hi(&greeting, url, identity)?;
            command::hello(&mut conn.write_buf, &hello);
            conn.send().await?;
            handshake::check_hello_reply(conn.read_reply().await?, hello.has_password())?;
            conn.broken = false;
            Ok(conn)
        };
        let conn = with_deadline("connect", options.connect_timeout, connect).await?;
        tracing::debug!(url = %url, wid = identity.map(|i| i.wid.as_str()), "connected to faktory");
        Ok(conn)
    }

    /// Whether an earlier failure left this connection unusable (every call returns
    /// [`Error::Broken`]); reconnect.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// `PUSH` one job (raw JSON object).
    ///
    /// # Errors
    /// [`Error::Server`] when Faktory refuses the job (the connection stays usable); connection
    /// errors otherwise.
    pub async fn push(&mut self, job_json: &[u8]) -> Result<(), Error> {
        self.begin()?;
        command::push(&mut self.write_buf, job_json);
        let reply = self.exchange_one("PUSH").await?;
        expect_ok("PUSH", reply)
    }

    /// `PUSHB` a JSON array of jobs. Faktory pushes every valid job and reports the others:
    /// the returned map holds jid → Faktory's error for the failed jobs only (empty when all
    /// were pushed).
    ///
    /// # Errors
    /// [`Error::Server`] when Faktory refuses the whole batch (e.g. invalid JSON); connection
    /// errors otherwise.
    pub async fn push_bulk(
        &mut self,
        jobs_json_array: &[u8],
    ) -> Result<HashMap<String, String>, Error> {
        self.begin()?;
        command::push_bulk(&mut self.write_buf, jobs_json_array);
        let reply = self.exchange_one("PUSHB").await?;
        let text = match reply {
            Reply::Error(line) => return Err(Error::Server(ServerError::from_line(&line))),
            Reply::Simple(ref t) | Reply::Bulk(Some(ref t))
                if t.as_ref() == b"{}" || t.as_ref() == b"OK" =>
            {
                return Ok(HashMap::new());
            }
            Reply::Simple(ref t) | Reply::Bulk(Some(ref t)) => t,
            other => return Err(unexpected("PUSHB", &other)),
        };
        let failures: HashMap<String, serde_json::Value> =
            serde_json::from_slice(text).map_err(|_| unexpected("PUSHB", &reply))?;
        Ok(failures
            .into_iter()
            .map(|(jid, why)| match why {
                serde_json::Value::String(s) => (jid, s),
                other => (jid, other.to_string()),
            })
            .collect())
    }

    /// Writes `depth` `FETCH` commands for `queues` (tried in order) back to back, then reads
    /// `depth` replies; returns the raw JSON of each job received, in order (empty replies are
    /// skipped). On empty queues each FETCH blocks about [`ConnectOptions::fetch_block`], so
    /// choose `depth` by what the queues hold.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no queues or a queue name with whitespace;
    /// [`Error::Server`] when every reply was an error; connection errors otherwise. An error
    /// reply among received jobs is logged and the jobs are returned, as they are reserved.
    ///
    /// Jobs received before a connection error, a timeout or a dropped future are lost to the
    /// caller while Faktory holds their reservations; [`Connection::fetch_each`] hands each job
    /// over as soon as it is read, and on shutdown in-flight fetches are best left to finish
    /// (at most `depth` × [`ConnectOptions::fetch_block`]).
    pub async fn fetch(&mut self, queues: &[String], depth: usize) -> Result<Vec<Bytes>, Error> {
        let mut jobs = Vec::with_capacity(depth);
        self.fetch_each(queues, depth, |job| jobs.push(job)).await?;
        Ok(jobs)
    }

    /// Like [`Connection::fetch`], but hands each job to `on_job` as soon as its reply is read,
    /// so jobs at the head of a deep pipeline need not wait for the FETCHes behind them (which
    /// block on empty queues). Returns how many jobs were handed over.
    ///
    /// # Errors
    /// As [`Connection::fetch`]; jobs handed to `on_job` before a connection error stay handed
    /// over (they are reserved at Faktory).
    pub async fn fetch_each(
        &mut self,
        queues: &[String],
        depth: usize,
        mut on_job: impl FnMut(Bytes),
    ) -> Result<usize, Error> {
        command::check_queues(queues)?;
        self.begin()?;
        if depth == 0 {
            return Ok(0);
        }
        command::fetch(&mut self.write_buf, queues, depth);
        let mut received = 0;
        let mut first_error = None;
        let limit = fetch_limit(self.io_timeout, self.fetch_block, depth);
        self.exchange(
            "FETCH",
            depth,
            limit,
            Answers::MayBlock,
            |reply| match reply {
                Reply::Bulk(Some(job)) => {
                    received += 1;
                    on_job(job);
                }
                Reply::Bulk(None) => {}
                Reply::Error(line) => {
                    first_error.get_or_insert(Error::Server(ServerError::from_line(&line)));
                }
                other => {
                    first_error.get_or_insert(unexpected("FETCH", &other));
                }
            },
        )
        .await?;
        match first_error {
            Some(e) if received == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, jobs = received, "faktory returned an error among fetched jobs");
                Ok(received)
            }
            None => Ok(received),
        }
    }

    /// `ACK`s every jid in one pipelined batch; one result per jid, in order. Faktory answers
    /// `+OK` even for unknown jids.
    ///
    /// # Errors
    /// Connection errors, or [`Error::UnexpectedReply`] when a reply is neither `+OK` nor an
    /// error (the outcome of the batch is then unknown).
    pub async fn ack_many(
        &mut self,
        jids: &[String],
    ) -> Result<Vec<Result<(), ServerError>>, Error> {
        self.ack_each(jids.iter().map(String::as_str)).await
    }

    /// Like [`Connection::ack_many`], for jids borrowed from wherever they are kept.
    ///
    /// # Errors
    /// As [`Connection::ack_many`].
    pub async fn ack_each<'a>(
        &mut self,
        jids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Result<(), ServerError>>, Error> {
        self.begin()?;
        let mut count = 0;
        for jid in jids {
            command::ack(&mut self.write_buf, jid);
            count += 1;
        }
        self.exchange_ok_many("ACK", count).await
    }

    /// `FAIL`s every job in one pipelined batch; one result per job, in order (a FAIL of a jid
    /// Faktory does not hold reserved is `Err(ServerError { kind: "ERR", message: "Job not found" })`).
    ///
    /// # Errors
    /// As [`Connection::ack_many`].
    pub async fn fail_many(
        &mut self,
        fails: &[FailCommand],
    ) -> Result<Vec<Result<(), ServerError>>, Error> {
        self.begin()?;
        for fail in fails {
            command::fail(&mut self.write_buf, fail);
        }
        self.exchange_ok_many("FAIL", fails.len()).await
    }

    /// `BEAT` for worker process `wid` (the identity this connection or another one said HELLO
    /// with).
    ///
    /// # Errors
    /// [`Error::Server`] when Faktory does not know the wid; connection errors otherwise.
    pub async fn beat(&mut self, wid: &str) -> Result<BeatState, Error> {
        self.begin()?;
        command::beat(&mut self.write_buf, wid);
        let reply = self.exchange_one("BEAT").await?;
        #[derive(Deserialize)]
        struct Beat {
            state: String,
        }
        match reply {
            Reply::Simple(ref ok) if ok.as_ref() == b"OK" => Ok(BeatState::Ok),
            Reply::Error(line) => Err(Error::Server(ServerError::from_line(&line))),
            Reply::Simple(ref json) | Reply::Bulk(Some(ref json)) => {
                match serde_json::from_slice::<Beat>(json).map(|b| b.state) {
                    Ok(s) if s == "quiet" => Ok(BeatState::Quiet),
                    Ok(s) if s == "terminate" => Ok(BeatState::Terminate),
                    Ok(s) if s.is_empty() => Ok(BeatState::Ok),
                    _ => Err(unexpected("BEAT", &reply)),
                }
            }
            other => Err(unexpected("BEAT", &other)),
        }
    }

    /// `INFO`: Faktory's server statistics as JSON.
    ///
    /// # Errors
    /// Connection errors, or [`Error::UnexpectedReply`] when the reply is not JSON.
    pub async fn info(&mut self) -> Result<serde_json::Value, Error> {
        self.begin()?;
        command::bare(&mut self.write_buf, "INFO");
        match self.exchange_one("INFO").await? {
            Reply::Error(line) => Err(Error::Server(ServerError::from_line(&line))),
            reply => match reply.text().map(|t| serde_json::from_slice(t)) {
                Some(Ok(json)) => Ok(json),
                _ => Err(unexpected("INFO", &reply)),
            },
        }
    }

    /// Sends one raw command line (without CRLF) and returns Faktory's reply, for commands this
    /// type has no method for (e.g. `FLUSH` in tests). Error replies are returned as
    /// [`Reply::Error`], not as `Err`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the line contains CR or LF; connection errors otherwise.
    pub async fn call(&mut self, line: &[u8]) -> Result<Reply, Error> {
        if line.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(Error::InvalidInput {
                reason: "a command line cannot contain cr or lf".to_owned(),
            });
        }
        self.begin()?;
        self.write_buf.extend_from_slice(line);
        self.write_buf.extend_from_slice(b"\r\n");
        self.exchange_one("command").await
    }

    /// Says `END` and closes the connection. Faktory does not reply to END.
    ///
    /// # Errors
    /// [`Error::Broken`] if the connection was already unusable; I/O errors while sending.
    pub async fn end(mut self) -> Result<(), Error> {
        self.begin()?;
        command::bare(&mut self.write_buf, "END");
        let io_timeout = self.io_timeout;
        with_deadline("END", io_timeout, async {
            self.send().await?;
            // Faktory closes its end right away; a failed TLS close_notify is harmless here.
            let _ = self.transport.shutdown().await;
            Ok(())
        })
        .await
    }

    /// Checks the connection is usable and starts a fresh batch in the write buffer.
    fn begin(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        if self.write_buf.capacity() > BUFFER_KEEP {
            self.write_buf = BytesMut::with_capacity(BUFFER_CHUNK);
        }
        if self.read_buf.is_empty() && self.read_buf.capacity() > BUFFER_KEEP {
            self.read_buf = BytesMut::with_capacity(BUFFER_CHUNK);
        }
        self.write_buf.clear();
        Ok(())
    }

    /// Sends one buffered command and reads its reply.
    async fn exchange_one(&mut self, command: &'static str) -> Result<Reply, Error> {
        let mut reply = None;
        self.exchange(command, 1, self.io_timeout, Answers::Prompt, |r| {
            reply = Some(r);
        })
        .await?;
        // exchange read exactly one reply.
        reply.ok_or(Error::Closed)
    }

    /// Sends buffered commands that each answer `+OK` or an error; one result per command.
    async fn exchange_ok_many(
        &mut self,
        command: &'static str,
        count: usize,
    ) -> Result<Vec<Result<(), ServerError>>, Error> {
        let mut results = Vec::with_capacity(count);
        let mut odd = None;
        self.exchange(
            command,
            count,
            self.io_timeout,
            Answers::Prompt,
            |reply| match reply {
                Reply::Simple(ref ok) if ok.as_ref() == b"OK" => results.push(Ok(())),
                Reply::Error(line) => results.push(Err(ServerError::from_line(&line))),
                other => {
                    odd.get_or_insert(unexpected(command, &other));
                }
            },
        )
        .await?;
        match odd {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    /// Writes the write buffer with one flush, then hands `count` replies to `on_reply` in
    /// order, all within `limit`. The connection is marked broken unless this completes.
    async fn exchange(
        &mut self,
        command: &'static str,
        count: usize,
        limit: Duration,
        answers: Answers,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), Error> {
        if count == 0 {
            return Ok(());
        }
        self.broken = true;
        let paced = self.pace_reads && count > 1;
        let pace = if paced {
            self.reply_interval
                .saturating_mul(u32::try_from(count - 1).unwrap_or(u32::MAX))
                .min(MAX_READ_PACE)
        } else {
            Duration::ZERO
        };
        let started = tokio::time::Instant::now();
        let result = with_deadline(command, limit, async {
            self.send().await?;
            if !pace.is_zero() {
                // Replies arriving during the pace need not wake anyone: they are read after it.
                self.set_low_water(HOLD_READS)?;
                tokio::time::sleep(pace).await;
            }
            for read in 1..=count {
                let sure_to_follow = match answers {
                    Answers::Prompt => count - read,
                    Answers::MayBlock => 0,
                };
                on_reply(self.read_reply_then(sure_to_follow).await?);
            }
            Ok(())
        })
        .await;
        if paced {
            let per_reply = started.elapsed() / u32::try_from(count).unwrap_or(u32::MAX);
            self.reply_interval = per_reply.min(MAX_READ_PACE);
        }
        match result {
            Ok(()) => self.broken = false,
            Err(ref e) => {
                tracing::debug!(endpoint = %self.endpoint, command, count, error = %e, "faktory connection broken");
            }
        }
        result
    }

    /// Writes the whole write buffer and flushes once.
    ///
    /// Whenever the socket takes no more, whatever replies have arrived are moved into the read
    /// buffer: Faktory answers pipelined commands as it reads them and stops reading while its
    /// replies back up, so a batch larger than the socket buffers would otherwise deadlock.
    async fn send(&mut self) -> Result<(), Error> {
        let mut written = 0;
        std::future::poll_fn(|cx| {
            while written < self.write_buf.len() {
                let unwritten = &self.write_buf[written..];
                match Pin::new(&mut self.transport).poll_write(cx, unwritten) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => return self.poll_drain_readable(cx),
                }
            }
            match Pin::new(&mut self.transport).poll_flush(cx) {
                Poll::Ready(result) => Poll::Ready(result.map_err(Error::from)),
                Poll::Pending => self.poll_drain_readable(cx),
            }
        })
        .await?;
        self.write_buf.clear();
        Ok(())
    }

    /// Reads until one complete reply is buffered and takes it off.
    async fn read_reply(&mut self) -> Result<Reply, Error> {
        self.read_reply_then(0).await
    }

    /// Like [`Connection::read_reply`], with `later` more replies of this exchange that come
    /// without waiting on anything but Faktory's turn. With the low-water mark on, the socket
    /// is waited on until the bytes this reply still needs (see [`ReplyParser::missing`]) and
    /// [`MIN_REPLY_BYTES`] for each of those later ones have arrived, so that replies arriving
    /// one by one wake the reader once for several of them, and a reply arriving in pieces
    /// (Faktory 1.10 writes a job's length line, the job and its CRLF separately) once.
    ///
    /// Replies that may block are never counted: a job whose closing CRLF came on its own
    /// would otherwise wait in the socket while the FETCHes behind it block on an empty queue
    /// (2 s each in Faktory).
    async fn read_reply_then(&mut self, later: usize) -> Result<Reply, Error> {
        loop {
            if let Some(reply) = self.parser.parse(&mut self.read_buf)? {
                return Ok(reply);
            }
            let due = self.parser.missing(&self.read_buf) + MIN_REPLY_BYTES * later;
            self.set_low_water(due.min(HOLD_READS))?;
            if self.read_buf.capacity() - self.read_buf.len() < BUFFER_CHUNK / 4 {
                self.read_buf.reserve(BUFFER_CHUNK);
            }
            if self.transport.read_buf(&mut self.read_buf).await? == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// Sets the socket's read low-water mark to `bytes` when the connection uses one (see
    /// [`Transport::set_read_low_water`]) and it differs from the mark in force.
    ///
    /// # Errors
    /// When lowering the mark fails: the socket might otherwise never be reported readable
    /// for the bytes that can still come. A failure to raise it only turns the mark off.
    fn set_low_water(&mut self, bytes: usize) -> Result<(), Error> {
        if !self.low_water_on || bytes == self.low_water {
            return Ok(());
        }
        match self.transport.set_read_low_water(bytes) {
            Ok(()) => {
                self.low_water = bytes;
                Ok(())
            }
            Err(e) if bytes > self.low_water => {
                tracing::debug!(endpoint = %self.endpoint, error = %e, "cannot set the read low-water mark; reading without it");
                self.low_water_on = false;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads everything available now into the read buffer; `Pending` once nothing more is
    /// readable (the caller is woken by either readiness), an error if the peer closed or
    /// failed. Any byte is worth reading here (the low-water mark goes back to 1): the peer may
    /// be waiting for room to write more.
    fn poll_drain_readable(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Err(e) = self.set_low_water(1) {
            return Poll::Ready(Err(e));
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.transport).poll_read(cx, &mut chunk_buf) {
                Poll::Ready(Ok(())) if chunk_buf.filled().is_empty() => {
                    return Poll::Ready(Err(Error::Closed));
                }
                Poll::Ready(Ok(())) => self.read_buf.extend_from_slice(chunk_buf.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn with_deadline<T>(
    operation: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            operation,
            after: limit,
        }),
    }
}

fn unexpected(command: &'static str, reply: &Reply) -> Error {
    Error::UnexpectedReply {
        command,
        reply: reply.summary(),
    }
}

fn expect_ok(command: &'static str, reply: Reply) -> Result<(), Error> {
    match reply {
        Reply::Simple(ref ok) if ok.as_ref() == b"OK" => Ok(()),
        Reply::Error(line) => Err(Error::Server(ServerError::from_line(&line))),
        other => Err(unexpected(command, &other)),
    }
}
