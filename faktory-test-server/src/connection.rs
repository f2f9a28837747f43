//! One client connection: handshake, then a read → execute → write loop.
//!
//! Commands are executed in order. Without a cost model, replies collect in one buffer that is
//! written once per read batch, so a pipelined burst of FETCH/ACK costs one read and one write.
//! With one, a [`Pacer`] holds each command until the one before it is done and each reply
//! until its command is done, as Faktory serves a connection. A FETCH that finds
//! nothing first flushes the replies before it, then blocks (real time) until a job is handed
//! to it (see `waiters.rs`) or the fetch timeout passes; commands pipelined behind it wait, as
//! in Faktory. A job's reply then goes out in three writes, as Faktory 1.10 writes it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, HelloError};
use crate::execute::{self, Step};
use crate::pacer::Pacer;
use crate::resp;
use crate::shared::Shared;
use crate::workers::HelloInfo;

const READ_CHUNK: usize = 64 * 1024;

/// Decrements a counter when dropped.
struct Gauge<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Gauge<'a> {
    fn up(counter: &'a std::sync::atomic::AtomicUsize) -> Gauge<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection is over: peer closed, END, protocol violation, I/O error or cancellation.
#[derive(Debug)]
struct Closed;

/// Serves one accepted socket until it closes or `close` is cancelled.
pub(crate) async fn serve<S>(mut stream: S, shared: Arc<Shared>, close: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _socket = Gauge::up(&shared.open_sockets);
    let id = shared.next_connection_id();
    let mut input = Input::new();
    let hello = tokio::select! {
        // Cancellation-safe: dropping the handshake just drops the socket.
        _ = close.cancelled() => return,
        hello = tokio::time::timeout(
            shared.config.handshake_timeout,
            handshake(&mut stream, &shared, &mut input),
        ) => hello,
    };
    let Ok(Some(hello)) = hello else {
        return;
    };
    let wid = hello.wid.clone();
    if !wid.is_empty() {
        let now = shared.clock.now();
        shared
            .state
            .lock()
            .workers
            .register(hello, id, close.clone(), now);
    }
    let _connection = Gauge::up(&shared.connections);
    let _ = command_loop(&mut stream, &shared, &wid, &mut input, &close).await;
    if !wid.is_empty() {
        shared.state.lock().workers.remove_connection(&wid, id);
    }
}

/// Sends HI, reads and checks HELLO, answers `+OK`. `None` means the socket must be closed.
async fn handshake<S>(stream: &mut S, shared: &Shared, input: &mut Input) -> Option<HelloInfo>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let password = shared.config.password.as_deref();
    let (hi, challenge) = auth::greeting(password);
    stream
        .write_all(format!("{hi}\r\n").as_bytes())
        .await
        .ok()?;
    let line = loop {
        if let Some(line) = input.take_line() {
            break line;
        }
        if input.len() > shared.config.max_line {
            return None;
        }
        if input.read_from(stream).await.ok()? == 0 {
            return None;
        }
    };
    match auth::check_hello(&line, password, challenge.as_ref()) {
        Ok(info) => {
            stream.write_all(b"+OK\r\n").await.ok()?;
            Some(info)
        }
        Err(HelloError::InvalidPassword) => {
            tracing::debug!("invalid password");
            let _ = stream.write_all(b"-ERR Invalid password\r\n").await;
            let _ = stream.shutdown().await;
            None
        }
        Err(e) => {
            tracing::debug!(error = ?e, "invalid HELLO, closing");
            None
        }
    }
}

async fn command_loop<S>(
    stream: &mut S,
    shared: &Shared,
    wid: &str,
    input: &mut Input,
    close: &CancellationToken,
) -> Result<(), Closed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut pacer = shared
        .config
        .cost
        .as_ref()
        .map(|model| Pacer::new(model, &shared.capacity_free_at));
    // With a cost model a bulk reply goes out in Faktory's three writes (see `flush`).
    let pieces = pacer.is_some();
    loop {
        while let Some(line) = input.take_line() {
            if let Some(wake) = pacer.as_mut().and_then(Pacer::next_command) {
                // The previous command is done at `wake`: its reply is due then.
                sleep_until(wake, close).await?;
                flush(stream, &mut out, pieces).await?;
            }
            let (step, work) = execute::execute(shared, wid, &line, &mut out);
            if let Some(pacer) = pacer.as_mut() {
                pacer.served(work);
            }
            match step {
                Step::Continue => {}
                Step::Close => {
                    flush(stream, &mut out, pieces).await?;
                    return Err(Closed);
                }
                Step::WaitForJob { id, receive } => {
                    flush(stream, &mut out, pieces).await?;
                    wait_for_job(shared, id, receive, &mut out, close).await?;
                    if let Some(pacer) = pacer.as_mut() {
                        pacer.resume();
                    }
                }
                Step::SleepThenNothing => {
                    flush(stream, &mut out, pieces).await?;
                    tokio::select! {
                        _ = close.cancelled() => return Err(Closed),
                        _ = tokio::time::sleep(shared.config.fetch_block) => resp::null(&mut out),
                    }
                    if let Some(pacer) = pacer.as_mut() {
                        pacer.resume();
                    }
                }
            }
        }
        if input.len() > shared.config.max_line {
            resp::err(
                &mut out,
                &format!("command line longer than {} bytes", shared.config.max_line),
            );
            let _ = flush(stream, &mut out, pieces).await;
            return Err(Closed);
        }
        if let Some(wake) = pacer.as_ref().and_then(Pacer::all_done) {
            sleep_until(wake, close).await?;
        }
        flush(stream, &mut out, pieces).await?;
        if let Some(pacer) = pacer.as_mut() {
            pacer.replied();
        }
        let (read, waited) = read_input(stream, input, close).await?;
        if let Some(pacer) = pacer.as_mut() {
            pacer.read(waited);
        }
        match read {
            Ok(0) | Err(_) => return Err(Closed),
            Ok(_) => {}
        }
    }
}

/// Reads more input, and says whether the read had to wait for the client.
async fn read_input<S>(
    stream: &mut S,
    input: &mut Input,
    close: &CancellationToken,
) -> Result<(std::io::Result<usize>, bool), Closed>
where
    S: AsyncRead + Unpin,
{
    let mut bytes = std::pin::pin!(input.read_from(stream));
    let mut waited = false;
    let read = std::future::poll_fn(move |cx| match bytes.as_mut().poll(cx) {
        Poll::Pending => {
            waited = true;
            Poll::Pending
        }
        Poll::Ready(read) => Poll::Ready((read, waited)),
    });
    tokio::select! {
        // Cancellation-safe: read_buf either read bytes into `input` or did nothing.
        _ = close.cancelled() => Err(Closed),
        read = read => Ok(read),
    }
}

async fn sleep_until(
    deadline: tokio::time::Instant,
    close: &CancellationToken,
) -> Result<(), Closed> {
    tokio::select! {
        _ = close.cancelled() => Err(Closed),
        () = tokio::time::sleep_until(deadline) => Ok(()),
    }
}

/// Unregisters a blocked FETCH when its wait ends in any way (served, timed out, cancelled).
struct WaiterGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.shared.state.lock().store.waiters.remove(self.id);
    }
}

/// Blocks a registered FETCH until a job is handed to it or the fetch timeout passes.
async fn wait_for_job(
    shared: &Shared,
    id: u64,
    mut receive: oneshot::Receiver<Bytes>,
    out: &mut Vec<u8>,
    close: &CancellationToken,
) -> Result<(), Closed> {
    let guard = WaiterGuard { shared, id };
    tokio::select! {
        // If the connection is closed after a job was handed over, the job stays reserved
        // until its reservation expires, as with Faktory's BRPOP.
        _ = close.cancelled() => return Err(Closed),
        job = &mut receive => {
            if let Ok(json) = job {
                resp::bulk(out, &json);
                return Ok(());
            }
        }
        _ = tokio::time::sleep(shared.config.fetch_block) => {}
    }
    // Unregister first; after that no job can be handed over, so the check below is final.
    drop(guard);
    match receive.try_recv() {
        Ok(json) => resp::bulk(out, &json),
        Err(_) => resp::null(out),
    }
    Ok(())
}

/// Writes and flushes `out`. With `pieces`, a lone bulk reply is written as Faktory 1.10 writes
/// one, its length line, payload and CRLF with a write each (so a client may read a job
/// without its CRLF); anything else goes out in one write.
async fn flush<S>(stream: &mut S, out: &mut Vec<u8>, pieces: bool) -> Result<(), Closed>
where
    S: AsyncWrite + Unpin,
{
    if out.is_empty() {
        return Ok(());
    }
    let result = match pieces.then(|| lone_bulk_payload(out)).flatten() {
        Some(payload) => write_pieces(stream, out, payload).await,
        None => stream.write_all(out).await,
    };
    out.clear();
    if out.capacity() > 4 * 1024 * 1024 {
        out.shrink_to(READ_CHUNK);
    }
    result.map_err(|_| Closed)?;
    stream.flush().await.map_err(|_| Closed)
}

/// Where the payload of `out` lies when `out` is exactly one non-null bulk reply.
fn lone_bulk_payload(out: &[u8]) -> Option<std::ops::Range<usize>> {
    let rest = out.strip_prefix(b"$")?;
    let line = rest.iter().position(|&b| b == b'\r')?;
    let len: usize = std::str::from_utf8(&rest[..line]).ok()?.parse().ok()?;
    let start = 1 + line + 2;
    (start + len + 2 == out.len()).then_some(start..start + len)
}

async fn write_pieces<S>(
    stream: &mut S,
    out: &[u8],
    payload: std::ops::Range<usize>,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    for piece in [
        &out[..payload.start],
        &out[payload.clone()],
        &out[payload.end..],
    ] {
        stream.write_all(piece).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Bytes read from the socket, remembering how far a partial line has been scanned so a huge
/// line arriving in many reads is scanned once, not once per read.
struct Input {
    buf: BytesMut,
    scanned: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            buf: BytesMut::with_capacity(READ_CHUNK),
            scanned: 0,
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    /// Splits the next complete line off, without its `\n` or `\r\n`.
    fn take_line(&mut self) -> Option<BytesMut> {
        match take_line(&mut self.buf, self.scanned) {
            Some(line) => {
                self.scanned = 0;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    async fn read_from<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        stream.read_buf(&mut self.buf).await
    }
}

/// Splits the next complete line off `input` (searching from `from`), without its `\n` or
/// `\r\n`.
fn take_line(input: &mut BytesMut, from: usize) -> Option<BytesMut> {
    let newline = from + input[from..].iter().position(|&b| b == b'\n')?;
    let mut line = input.split_to(newline + 1);
    line.truncate(newline);
    if line.last() == Some(&b'\r') {
        line.truncate(newline - 1);
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newline() {
        let mut input = BytesMut::from(&b"INFO\r\nEND\npartial"[..]);
        assert_eq!(&take_line(&mut input, 0).unwrap()[..], b"INFO");
        assert_eq!(&take_line(&mut input, 0).unwrap()[..], b"END");
        assert!(take_line(&mut input, 0).is_none());
        assert_eq!(&input[..], b"partial");
    }

    #[test]
    fn only_a_lone_bulk_reply_is_split() {
        assert_eq!(lone_bulk_payload(b"$3\r\nabc\r\n"), Some(4..7));
        assert_eq!(lone_bulk_payload(b"$0\r\n\r\n"), Some(4..4));
        for other in [
            &b"$-1\r\n"[..],
            b"+OK\r\n",
            b"$3\r\nabc\r\n+OK\r\n",
            b"$3\r\nabc\r\n$1\r\nx\r\n",
            b"$x\r\n",
        ] {
            assert_eq!(
                lone_bulk_payload(other),
                None,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
