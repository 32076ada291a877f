//! A stdio upstream's pipes, shared by rmcp's client and the forwarding path (issue 13).
//!
//! rmcp's client keeps what it does for a stdio server — the handshake, lists, every request
//! the forwarding path declines, the server's own requests and notifications — through rmcp's
//! own line transport ([`AsyncRwTransport`]: its line limit, its handling of malformed lines).
//! Beside it, [`StdioLink`] writes a forwarded `tools/call` to the child as the line the client
//! sent (its id the gateway's own, `"gatehouse-<n>"`) and hands the answer with that id back to
//! the call waiting for it, as the bytes the child wrote.
//!
//! - **stdin**: one task writes whole lines from both (rmcp's messages, forwarded calls,
//!   cancellations), so lines never interleave, and a caller that goes away mid-write cannot
//!   leave half a line behind. Several lines waiting are written with one `write`.
//! - **stdout**: one task reads it line by line (at most rmcp's 16 MiB per line); an answer to a
//!   forwarded call goes to that call, every other line to rmcp's transport through an
//!   in-memory pipe, unchanged. An answer no call waits for (it was cancelled) is dropped, as
//!   rmcp's client drops answers to requests it cancelled.
//! - **the child**: its process group is stopped as rmcp's child-process transport stops it —
//!   `close` ends stdin and waits, then `SIGTERM`, then kill; dropping the transport kills.
//!   When the child's output ends, every forwarded call waiting fails at once and rmcp's
//!   transport sees the end too (the connection is closed; the pool starts a new one).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use gatehouse::mcp::forward::{Answer, UpstreamMessage, parse_message};
use process_wrap::tokio::{ChildWrapper, CommandWrap};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The longest line read from the child: rmcp's own limit (its `DEFAULT_MAX_LINE_LENGTH`).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// How long `close` waits for the child to exit after stdin ends, and again after `SIGTERM`
/// (rmcp's child-process transport waits as long).
const EXIT_WAIT: Duration = Duration::from_secs(3);
/// Lines waiting for stdin are written together up to this many bytes.
const BATCH: usize = 64 * 1024;
/// The prefix of the forwarding path's ids, as JSON text.
pub(crate) const ID_PREFIX: &str = "\"gatehouse-";

/// A started child: rmcp's transport to it, the forwarding path's link, its stderr and pid.
pub(crate) struct Spawned {
    pub(crate) transport: ChildTransport,
    pub(crate) link: Arc<StdioLink>,
    pub(crate) stderr: Option<ChildStderr>,
    pub(crate) pid: Option<u32>,
}

/// Starts `cmd` with piped stdin, stdout and `stderr`, and the two tasks over its pipes.
pub(crate) fn spawn(mut cmd: CommandWrap, stderr: Stdio) -> io::Result<Spawned> {
    cmd.command_mut()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (Some(stdin), Some(stdout)) = (
        child.inner_mut().stdin().take(),
        child.inner_mut().stdout().take(),
    ) else {
        return Err(io::Error::other("the child's pipes were not set up"));
    };
    let stderr = child.inner_mut().stderr().take();
    let (lines, queue) = mpsc::unbounded_channel();
    let closing = CancellationToken::new();
    let waiting = Arc::new(Mutex::new(Waiting {
        open: true,
        calls: HashMap::new(),
    }));
    // rmcp's side of the stdout routing: what it reads is what the child wrote.
    let (to_rmcp, from_child) = tokio::io::duplex(BATCH);
    tokio::spawn(write_stdin(stdin, queue, closing.clone()));
    tokio::spawn(read_stdout(stdout, waiting.clone(), to_rmcp));
    let link = Arc::new(StdioLink {
        lines: lines.clone(),
        waiting,
    });
    let transport = ChildTransport {
        inner: AsyncRwTransport::new(
            from_child,
            LineWriter {
                pending: BytesMut::new(),
                lines,
            },
        ),
        child: ChildGuard(Some(child)),
        closing,
    };
    Ok(Spawned {
        transport,
        link,
        stderr,
        pid,
    })
}

/// A forwarded call's answer: the line the child wrote (without its line break) and what the
/// reader read of it (read once, here).
pub(crate) struct Answered {
    pub(crate) line: Bytes,
    pub(crate) answer: Answer,
}

/// The forwarding path's way to the child (see the module docs).
pub(crate) struct StdioLink {
    lines: mpsc::UnboundedSender<Bytes>,
    waiting: Arc<Mutex<Waiting>>,
}

struct Waiting {
    /// False once the child's output has ended: nothing more will be answered.
    open: bool,
    /// The calls waiting, by the number in their id.
    calls: HashMap<u64, oneshot::Sender<Answered>>,
}

impl StdioLink {
    /// Registers the call numbered `n` and writes `message` (one line's JSON, without the line
    /// break) to the child. `None` when the child's output has ended (the call was not sent).
    pub(crate) fn call(&self, n: u64, message: Bytes) -> Option<oneshot::Receiver<Answered>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = lock(&self.waiting);
            if !w.open {
                return None;
            }
            w.calls.insert(n, tx);
        }
        if self.lines.send(message).is_err() {
            self.forget(n);
            return None;
        }
        Some(rx)
    }

    /// Forgets the call numbered `n` (it was abandoned); its answer, if one comes, is dropped.
    pub(crate) fn forget(&self, n: u64) {
        lock(&self.waiting).calls.remove(&n);
    }

    /// Writes `message` (a notification, without the line break) to the child, not waiting
    /// for it.
    pub(crate) fn notify(&self, message: Bytes) {
        if self.lines.send(message).is_err() {
            tracing::debug!("notification not delivered: the upstream's input is closed");
        }
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    // Every update is one insert, remove or flag: a panic elsewhere leaves it consistent.
    waiting.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the queued messages to the child's stdin, each ending its line here, until every
/// sender is gone or the transport closes (then what is queued is still written, and stdin is
/// closed: the MCP stdio shutdown's first step).
async fn write_stdin(
    mut stdin: ChildStdin,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    closing: CancellationToken,
) {
    // Grown on use: a child per principal should cost little while idle.
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            line = queue.recv() => line,
            () = closing.cancelled() => {
                queue.close();
                queue.recv().await
            }
        };
        let Some(first) = first else { break };
        batch.clear();
        let mut next = Some(first);
        while let Some(message) = next {
            batch.extend_from_slice(&message);
            batch.push(b'\n');
            next = if batch.len() < BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = stdin.write_all(&batch).await {
            tracing::debug!(error = %e, "the upstream's input is closed");
            break;
        }
        if batch.capacity() > 2 * BATCH {
            // Not kept after one large message.
            batch = Vec::new();
        }
    }
}

/// Reads the child's stdout line by line: answers to forwarded calls to those calls, the rest
/// to rmcp's transport. At the end, every call still waiting fails.
async fn read_stdout(stdout: ChildStdout, waiting: Arc<Mutex<Waiting>>, mut to_rmcp: DuplexStream) {
    // tokio's default size (as rmcp's line transport reads): a child per principal, so the
    // per-child buffers are kept small; a larger line is read in several reads.
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(error = %e, "the upstream's output could not be read");
                break;
            }
        }
        if line.is_empty() {
            // Longer than the limit: dropped, as rmcp's transport drops it.
            tracing::error!(
                max_line_length = MAX_LINE,
                "a message from the upstream exceeded the maximum line length; dropped"
            );
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if let Some((n, answer)) = forwarded_answer(text) {
            let len = text.len();
            if let Some(call) = lock(&waiting).calls.remove(&n) {
                let line = Bytes::from(std::mem::take(&mut line)).slice(..len);
                let _ = call.send(Answered { line, answer });
            }
            continue;
        }
        if to_rmcp.write_all(&line).await.is_err() {
            // rmcp's client is gone: the connection is over.
            break;
        }
        if line.capacity() > 16 * BATCH {
            // Not kept for the child's lifetime after one large message.
            line = Vec::new();
        }
    }
    let mut w = lock(&waiting);
    w.open = false;
    // Dropping the senders fails every call still waiting.
    w.calls.clear();
}

/// Reads one line (with its `\n`) into `line`. `Ok(false)` at the end of the output; a line
/// longer than [`MAX_LINE`] is consumed and left empty.
async fn read_line(reader: &mut BufReader<ChildStdout>, line: &mut Vec<u8>) -> io::Result<bool> {
    let mut oversized = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            // A last line without `\n` is an incomplete message: nothing to deliver.
            return Ok(false);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !oversized && line.len() + take > MAX_LINE {
            oversized = true;
            line.clear();
        }
        if !oversized {
            line.extend_from_slice(&buf[..take]);
        }
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// The number of the forwarded call `line` answers, and the answer, if it is such an answer (a
/// result or an error whose id is `"gatehouse-<n>"`; a request from the child with such an id
/// is no answer).
fn forwarded_answer(line: &[u8]) -> Option<(u64, Answer)> {
    memchr::memmem::find(line, ID_PREFIX.as_bytes())?;
    let UpstreamMessage::Answer(a) = parse_message(line)? else {
        return None;
    };
    let n = a.id_text.strip_prefix(ID_PREFIX)?.strip_suffix('"')?;
    // Only the spelling the gateway writes: no sign, no leading zeros, no escapes.
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, a))
}

/// What rmcp's transport writes: cut into messages (its lines, without the line break) for the
/// stdin task.
struct LineWriter {
    pending: BytesMut,
    lines: mpsc::UnboundedSender<Bytes>,
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pending.extend_from_slice(data);
        while let Some(i) = memchr::memchr(b'\n', &self.pending) {
            let message = self.pending.split_to(i).freeze();
            self.pending.advance(1);
            if self.lines.send(message).is_err() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// rmcp's transport to the child, which owns the child.
pub(crate) struct ChildTransport {
    inner: AsyncRwTransport<RoleClient, DuplexStream, LineWriter>,
    child: ChildGuard,
    closing: CancellationToken,
}

impl ChildTransport {
    /// The MCP stdio shutdown: stdin ends, the child gets time to exit, then `SIGTERM`, then
    /// it is killed (its whole process group).
    async fn shut_down(&mut self) -> io::Result<()> {
        self.closing.cancel();
        let Some(child) = self.child.0.as_mut() else {
            return Ok(());
        };
        if !exited(child).await {
            // SIGTERM (15): the group leader's own signal handling decides what it stops.
            if let Err(e) = child.signal(15) {
                tracing::warn!(error = %e, "SIGTERM not delivered to the upstream");
            }
            if !exited(child).await {
                Box::into_pin(child.kill()).await?;
            }
        }
        self.child.0 = None;
        Ok(())
    }
}

async fn exited(child: &mut Box<dyn ChildWrapper>) -> bool {
    matches!(
        tokio::time::timeout(EXIT_WAIT, child.wait()).await,
        Ok(Ok(_))
    )
}

impl Transport<RoleClient> for ChildTransport {
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.inner.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await?;
        self.shut_down().await
    }
}

/// Kills the child's process group when dropped before it was shut down.
struct ChildGuard(Option<Box<dyn ChildWrapper>>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // `kill` also waits, so no zombie is left.
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = Box::into_pin(child.kill()).await {
                        tracing::warn!(error = %e, "the upstream process could not be killed");
                    }
                });
            }
            Err(_) => {
                let _ = child.start_kill();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_with_the_gateways_own_ids_are_taken() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":"gatehouse-7","result":{}}"#,
                Some(7),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"gatehouse-12","error":{"code":-1,"message":"x"}}"#,
                Some(12),
            ),
            // rmcp's own ids, requests from the child, other spellings
            (r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":"gatehouse-7","method":"ping"}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":"gatehouse-07","result":{}}"#, None),
            (r#"{"jsonrpc":"2.0","id":"gatehouse-+7","result":{}}"#, None),
            (r#"{"jsonrpc":"2.0","id":"gatehouse-","result":{}}"#, None),
            (r#"{"jsonrpc":"2.0","id":"gatehouse-7x","result":{}}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":"gatehouse-99999999999999999999","result":{}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"text":"\"gatehouse-3\""}}"#,
                None,
            ),
            (r#"not json "gatehouse-3""#, None),
        ];
        for (line, want) in cases {
            assert_eq!(
                forwarded_answer(line.as_bytes()).map(|(n, _)| n),
                *want,
                "{line}"
            );
        }
    }

    fn message(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn child(program: &str, args: &[&str]) -> Spawned {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args);
        spawn(CommandWrap::from(cmd), Stdio::null()).expect("the child starts")
    }

    // `cat` says back each line it is told: a line shaped as an answer is an answer from the
    // child.
    #[tokio::test]
    async fn answers_reach_their_calls_byte_for_byte_and_the_rest_reaches_rmcp() {
        let Spawned {
            mut transport,
            link,
            ..
        } = child("cat", &[]);
        let one = r#"{"jsonrpc":"2.0","id":"gatehouse-1","result":{"x":"  spaced \u00e9 "}}"#;
        let two = r#"{"id":"gatehouse-2","jsonrpc":"2.0","error":{"code":-32602,"message":"no"}}"#;
        let second = link.call(2, message(two)).expect("open");
        let first = link.call(1, message(one)).expect("open");
        let first = first.await.unwrap();
        assert_eq!(first.line, one);
        assert_eq!(&one[first.answer.id], r#""gatehouse-1""#);
        assert_eq!(second.await.unwrap().line, two);
        // An answer no call waits for is dropped; a message for rmcp reaches it unchanged.
        link.notify(message(
            r#"{"jsonrpc":"2.0","id":"gatehouse-9","result":{}}"#,
        ));
        link.notify(message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"d"}}"#,
        ));
        let got = serde_json::to_value(transport.receive().await.expect("a message")).unwrap();
        assert_eq!(got["method"], "notifications/message", "{got}");
        assert_eq!(got["params"]["data"], "d", "{got}");

        // A call the child never answers fails when its output ends (here: `close` ends stdin
        // and `cat` exits); after that nothing is sent.
        let unanswered = link
            .call(
                5,
                message(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            )
            .expect("open");
        transport.close().await.unwrap();
        assert!(unanswered.await.is_err(), "fails once the output ends");
        assert!(
            link.call(6, message(one)).is_none(),
            "nothing sent to a child that is gone"
        );
    }

    // 400 lines of four kinds, some far longer than the read buffer, through `cat`: every
    // forwarded answer reaches its own call, and everything else reaches rmcp, in order —
    // answers with rmcp's numeric ids, requests from the child with an id spelled like the
    // gateway's, notifications mentioning it.
    #[tokio::test]
    async fn mixed_traffic_is_routed_line_by_line() {
        let Spawned {
            mut transport,
            link,
            ..
        } = child("cat", &[]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % m
        };
        let mut calls = Vec::new();
        let mut to_rmcp = Vec::new();
        for i in 0..400u64 {
            let pad = "p".repeat(match next(10) {
                0 => 20_000 + next(60_000) as usize,
                _ => next(200) as usize,
            });
            match next(4) {
                0 | 1 => {
                    let text = format!(
                        r#"{{"jsonrpc":"2.0","id":"gatehouse-{i}","result":{{"i":{i},"pad":"{pad}"}}}}"#
                    );
                    calls.push((link.call(i, message(&text)).expect("open"), text));
                }
                kind => {
                    let text = if kind == 2 {
                        format!(r#"{{"jsonrpc":"2.0","id":{i},"result":{{"pad":"{pad}"}}}}"#)
                    } else if next(2) == 0 {
                        format!(r#"{{"jsonrpc":"2.0","id":"gatehouse-{i}","method":"ping"}}"#)
                    } else {
                        format!(
                            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":"gatehouse-{i} {pad}"}}}}"#
                        )
                    };
                    link.notify(message(&text));
                    to_rmcp.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
                }
            }
        }
        // rmcp's side is read meanwhile, as rmcp's client always reads it: what waits for it
        // holds back what comes after it on the pipe.
        let rmcp = tokio::spawn(async move {
            for want in to_rmcp {
                let got =
                    serde_json::to_value(transport.receive().await.expect("a message")).unwrap();
                assert_eq!(got["id"], want["id"]);
                assert_eq!(got["method"], want["method"]);
                assert_eq!(got["params"]["data"], want["params"]["data"]);
                assert_eq!(got["result"]["pad"], want["result"]["pad"]);
            }
            transport
        });
        // A line routed wrongly would leave a call waiting: bounded, it fails instead.
        let all = async {
            for (call, text) in calls {
                assert_eq!(call.await.expect("answered").line, text.as_str());
            }
            rmcp.await.expect("rmcp's side read everything, in order")
        };
        let transport = tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("every line reached its reader");
        drop(transport);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_dropped_and_the_next_one_read() {
        // (The transport owns the child: kept until the end.)
        let Spawned {
            link,
            transport: _transport,
            ..
        } = child("cat", &[]);
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":"gatehouse-1","result":{{"x":"{}"}}}}"#,
            "a".repeat(MAX_LINE)
        );
        let one = r#"{"jsonrpc":"2.0","id":"gatehouse-1","result":{}}"#;
        let answer = link.call(1, message(&big)).expect("open");
        link.notify(message(one));
        assert_eq!(answer.await.unwrap().line, one);
    }

    #[tokio::test]
    async fn a_dropped_transport_kills_the_child_and_its_waiting_calls_fail() {
        let Spawned {
            transport,
            link,
            pid,
            ..
        } = child("sleep", &["60"]);
        assert!(pid.is_some());
        let waiting = link
            .call(
                1,
                message(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            )
            .expect("open");
        drop(transport);
        assert!(waiting.await.is_err(), "the killed child's output ended");
    }

    #[tokio::test]
    async fn rmcp_writes_reach_the_queue_as_whole_messages() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut w = LineWriter {
            pending: BytesMut::new(),
            lines: tx,
        };
        w.write_all(b"{\"a\":1}\n{\"b\"").await.unwrap();
        w.write_all(b":2}\n").await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"{\"b\":2}"));
        assert!(rx.try_recv().is_err(), "nothing but whole messages");
    }
}
