//! The connection-serving shell: accepts QUIC connections, reads request
//! frames from any number of bidirectional streams, hands each request to
//! the node (`Service`) and writes the answers back on the stream they came
//! from, in completion order, each with its id.
//!
//! ```text
//!  stream recv ──frames──▶ reader ──dispatch──▶ Service ──Replier──┐
//!                            │ (errors, auth)                      ▼
//!  stream send ◀──batched writes── answers ◀──mpsc per stream──────┘
//!                     (one task per connection, all its streams)
//! ```
//!
//! One task writes the answers of all of a connection's streams
//! (`stream_out`): answers that become ready together (a group commit's)
//! leave in one packet rather than one per stream. A stream the client
//! does not read waits alone (its queued answers still hold their
//! in-flight permits).
//!
//! Bounds: requests in flight per connection (`IN_FLIGHT_PER_CONNECTION_MAX`,
//! a semaphore: when it is empty the readers stop reading, which is
//! backpressure through QUIC flow control), frame size and time before
//! authentication (`UNAUTHENTICATED_FRAME_BYTES_MAX`, `AUTH_WAIT`), the
//! bytes of request frames a connection has being read or run
//! (`CONNECTION_FRAME_BYTES_MAX`), the room a stream's buffer keeps
//! (`READ_BUFFER_KEEP_BYTES`) and reads ahead (`frame::READ_AHEAD_BYTES`),
//! failed auth attempts, malformed frames per connection, connections per
//! endpoint, bytes per write batch, and the time a stopping node gives its
//! answers to reach clients (`FLUSH_MAX`).
//!
//! A frame the connection's byte budget cannot take is answered
//! `overloaded` at once and its body read and dropped, not waited for: a
//! stream waiting for the budget would hold its unread bytes in the
//! connection's flow-control window, and enough of them would starve the
//! streams holding the budget, which need their bodies' bytes to finish.
//!
//! Stopping (`serve`): once `signal` fires, new connections are refused
//! and `drain` runs while the open ones are served (the node answers what
//! arrives `unavailable`). Once it is done, every request read has its
//! answer queued: each stream stops reading, writes its answers, finishes,
//! and waits for the client to acknowledge them; then the connection
//! closes with `CLOSE_SHUTDOWN`.
//! Must not: block in `Service` calls, or let one connection affect another.

use super::endpoint::STREAMS_PER_CONNECTION_MAX;
use super::frame::{FrameError, FrameReader};
use super::stream_out::{self, Ended, StreamOut};
use crate::proto::codec::{self, FrameTooLarge};
use crate::proto::{
    ErrorCode, ErrorReply, Reply, Request, ResponseFrame, ALPN, FRAME_BYTES_MAX,
    IN_FLIGHT_PER_CONNECTION_MAX,
};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// `auth` requests one connection may make; the last of them failing
/// closes the connection, and any more are refused unchecked.
pub const AUTH_ATTEMPTS_MAX: u32 = 5;
/// Malformed or oversized frames before the connection is closed.
pub const BAD_FRAMES_MAX: u32 = 8;
/// Connections served at once; more are refused.
pub const CONNECTIONS_MAX: usize = 10_000;
/// A stream's answers are encoded ahead of its flow control up to about
/// this many bytes (and its buffer keeps at most twice this between
/// batches).
pub const WRITE_BATCH_BYTES_MAX: usize = 256 << 10;
/// The largest frame read before the connection has authenticated; a
/// bigger one waits (unread, held back by QUIC flow control) until it has.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: usize = 64 << 10;
/// How long a connection may go without a successful `auth` before it is
/// closed (`CLOSE_AUTH_TIMEOUT`).
pub const AUTH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// A stream's read buffer keeps up to this much room between frames; a
/// bigger one (it held a big frame) is given back.
pub const READ_BUFFER_KEEP_BYTES: usize = 64 << 10;
/// Bytes of request frames one connection may have at once, from the
/// length prefix until the request is answered (being read, decoded, or
/// run). A frame that does not fit is answered `overloaded` (nothing was
/// done) and its body dropped as it arrives. Room for the biggest frame.
pub const CONNECTION_FRAME_BYTES_MAX: usize = 64 << 20;
const _: () = assert!(CONNECTION_FRAME_BYTES_MAX >= FRAME_BYTES_MAX);
/// Of a frame refused for the budget, the bytes kept to find its `id`
/// (the rest is dropped unread by anything).
const REFUSED_ID_BYTES: usize = 1 << 10;
/// Once a stopping node has answered everything, how long its streams get
/// to deliver those answers (written, and acknowledged by the client)
/// before the connections close.
pub const FLUSH_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Application close codes (QUIC CONNECTION_CLOSE) the node uses.
pub const CLOSE_SHUTDOWN: u32 = 0;
pub const CLOSE_WRONG_PROTOCOL: u32 = 1;
pub const CLOSE_AUTH_ATTEMPTS: u32 = 2;
pub const CLOSE_BAD_FRAMES: u32 = 3;
pub const CLOSE_AUTH_TIMEOUT: u32 = 4;
/// STOP_SENDING code on a stream closed after `bad_request` / `too_large`.
pub const STOP_BAD_FRAME: u32 = 1;

/// What the node provides to the shell.
pub trait Service: Send + Sync + 'static {
    type Session: Send + Sync + 'static;
    /// Checks a token. Err is answered as is; the connection stays open for
    /// another try, up to `AUTH_ATTEMPTS_MAX`. An Err of `quota_exceeded`
    /// says the token is right but its tenant may not connect now: it does
    /// not count as a failed attempt.
    fn authenticate(&self, token: &str) -> Result<(Self::Session, Reply), ErrorReply>;
    /// Starts a request (never `Auth`); must not block. The answer goes
    /// through `reply` exactly once; dropping it answers `internal`.
    fn dispatch(&self, session: &Arc<Self::Session>, request: Request, reply: Replier);
    fn connection_opened(&self) {}
    fn connection_closed(&self) {}
}

/// Kept by a replier until its answer goes (`Replier::holding`), and told
/// how the request ended just before (the error's code, or None).
pub trait AnswerGuard: Send + 'static {
    fn answered(&mut self, _error: Option<ErrorCode>) {}
}

/// One response on its way to a stream's writer; holds its in-flight permit
/// until written.
struct Outgoing {
    frame: ResponseFrame,
    _permit: OwnedSemaphorePermit,
}

/// Answers one request. Cheap to move to another thread or task.
pub struct Replier {
    id: u64,
    slot: Option<(mpsc::Sender<Outgoing>, OwnedSemaphorePermit)>,
    /// The request frame's bytes in the connection's budget
    /// (`CONNECTION_FRAME_BYTES_MAX`), given back with the answer.
    frame_bytes: Option<OwnedSemaphorePermit>,
    /// Set once the client stopped the stream or the connection is lost:
    /// nobody will read the answer, so work for it may stop.
    gone: Arc<AtomicBool>,
    /// Told and dropped once the answer is sent (`holding`).
    held: Option<Box<dyn AnswerGuard>>,
}

impl Replier {
    /// This replier, keeping `guard` until the answer is sent (e.g. the
    /// request's place in a quota).
    pub fn holding(mut self, guard: impl AnswerGuard) -> Replier {
        self.held = Some(Box::new(guard));
        self
    }

    /// The id of the request this answers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A flag set once nobody can receive this answer any more (the
    /// client stopped the stream or the connection is lost).
    pub fn gone(&self) -> Arc<AtomicBool> {
        self.gone.clone()
    }

    pub fn send(mut self, response: Result<Reply, ErrorReply>) {
        self.deliver(response, None);
    }

    /// `send`, saying the answer came from the node that leads, which
    /// clients reach at `leader` (a forwarded request).
    pub fn send_from_leader(mut self, response: Result<Reply, ErrorReply>, leader: Option<String>) {
        self.deliver(response, leader);
    }

    fn deliver(&mut self, response: Result<Reply, ErrorReply>, leader: Option<String>) {
        // Given back before the answer goes: a client that waits for it
        // before its next request finds the place free.
        if let Some(mut held) = self.held.take() {
            held.answered(response.as_ref().err().map(|e| e.code));
        }
        self.frame_bytes = None;
        if let Some((tx, permit)) = self.slot.take() {
            let frame = ResponseFrame {
                id: self.id,
                response,
                leader,
            };
            // Never full: every queued response holds one of the
            // connection's permits and the queue has room for all of them.
            // Closed means the stream is gone; the answer has nowhere to go.
            let _ = tx.try_send(Outgoing {
                frame,
                _permit: permit,
            });
        }
    }
}

/// A replier whose answer is read back by the test (`TestAnswer::take`).
#[cfg(test)]
pub fn test_replier(id: u64) -> (Replier, TestAnswer) {
    let (tx, rx) = mpsc::channel(1);
    let permit = Arc::new(Semaphore::new(1))
        .try_acquire_owned()
        .expect("a fresh semaphore has a permit");
    let replier = Replier {
        id,
        slot: Some((tx, permit)),
        frame_bytes: None,
        gone: Arc::new(AtomicBool::new(false)),
        held: None,
    };
    (replier, TestAnswer(rx))
}

#[cfg(test)]
pub struct TestAnswer(mpsc::Receiver<Outgoing>);

#[cfg(test)]
impl TestAnswer {
    /// The answer, if one was sent.
    pub fn take(&mut self) -> Option<ResponseFrame> {
        self.0.try_recv().ok().map(|o| o.frame)
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        self.deliver(
            Err(ErrorReply::new(
                ErrorCode::Internal,
                "the node dropped this request without answering it",
            )),
            None,
        );
    }
}

/// Serves `endpoint` until `signal` fires; then refuses new connections
/// while `drain` runs (the node finishes and answers what it has), delivers
/// every answer (up to `FLUSH_MAX`) and closes every connection with
/// `CLOSE_SHUTDOWN`.
pub async fn serve<S: Service>(
    endpoint: quinn::Endpoint,
    service: Arc<S>,
    chain: Arc<[Vec<u8>]>,
    signal: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) {
    tokio::pin!(signal);
    tokio::pin!(drain);
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut draining = false;
    loop {
        tokio::select! {
            _ = &mut signal, if !draining => draining = true,
            _ = &mut drain, if draining => break,
            incoming = endpoint.accept() => match incoming {
                None => break,
                Some(incoming) if draining || connections.len() >= CONNECTIONS_MAX => {
                    incoming.refuse()
                }
                Some(incoming) => {
                    connections.spawn(connection(
                        incoming,
                        service.clone(),
                        chain.clone(),
                        stopped.clone(),
                    ));
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Every request read has its answer queued (or on its way from a
    // task the node no longer waits for): the streams deliver them.
    let _ = stop.send(true);
    let _ = tokio::time::timeout(FLUSH_MAX, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node stopping");
    connections.shutdown().await;
    // Lets the closes reach the clients.
    let _ = tokio::time::timeout(FLUSH_MAX, endpoint.wait_idle()).await;
}

/// State shared by a connection's streams.
struct Conn<S: Service> {
    service: Arc<S>,
    connection: Connection,
    session: OnceLock<Arc<S::Session>>,
    in_flight: Arc<Semaphore>,
    /// Bytes of request frames being read or run (`CONNECTION_FRAME_BYTES_MAX`).
    frame_bytes: Arc<Semaphore>,
    /// Told when `session` is set: big frames wait for it.
    authenticated: Notify,
    /// `auth` requests taken so far, counted before the token is checked,
    /// so pipelined or parallel guesses cannot check more than the cap.
    auth_attempts: AtomicU32,
    bad_frames: AtomicU32,
    /// The certificate chain the endpoint presents (`certificate`).
    chain: Arc<[Vec<u8>]>,
    /// Hands each new stream's answers to the connection's `answers` task.
    adopt: mpsc::Sender<Adopt>,
}

/// Calls `connection_closed` however the connection task ends.
struct Opened<S: Service>(Arc<S>);

impl<S: Service> Drop for Opened<S> {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

async fn connection<S: Service>(
    incoming: quinn::Incoming,
    service: Arc<S>,
    chain: Arc<[Vec<u8>]>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(connection) = incoming.await else {
        return;
    };
    let alpn = connection
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(ALPN) {
        connection.close(
            VarInt::from_u32(CLOSE_WRONG_PROTOCOL),
            b"this node speaks ALPN ohm/1 only",
        );
        return;
    }
    service.connection_opened();
    let _opened = Opened(service.clone());
    // `answers` takes what arrives on every turn; a stream task sends one
    // `Adopt` as it starts, and the client has at most
    // STREAMS_PER_CONNECTION_MAX of them open at once.
    let (adopt, adopt_rx) = mpsc::channel(STREAMS_PER_CONNECTION_MAX as usize);
    tokio::spawn(answers(adopt_rx));
    let conn = Arc::new(Conn {
        service,
        connection: connection.clone(),
        session: OnceLock::new(),
        in_flight: Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX)),
        frame_bytes: Arc::new(Semaphore::new(CONNECTION_FRAME_BYTES_MAX)),
        authenticated: Notify::new(),
        auth_attempts: AtomicU32::new(0),
        bad_frames: AtomicU32::new(0),
        chain,
        adopt,
    });
    tokio::spawn(close_unless_authenticated(conn.clone()));
    // Streams are bounded by the transport's STREAMS_PER_CONNECTION_MAX.
    let mut streams = JoinSet::new();
    let for_streams = stop.clone();
    loop {
        tokio::select! {
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(stream(conn.clone(), send, recv, for_streams.clone()));
                }
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => break,
        }
        while streams.try_join_next().is_some() {}
    }
    // The node is stopping: each stream delivers its answers and finishes.
    while streams.join_next().await.is_some() {}
    connection.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node stopping");
}

async fn stream<S: Service>(
    conn: Arc<Conn<S>>,
    send: SendStream,
    recv: RecvStream,
    mut stop: watch::Receiver<bool>,
) {
    let mut recv = FrameReader::new(recv);
    // Room for every permit, so a `Replier` never finds the queue full.
    let (tx, rx) = mpsc::channel(IN_FLIGHT_PER_CONNECTION_MAX);
    let gone = watch_gone(&send);
    let (done, done_rx) = oneshot::channel();
    let handed = conn.adopt.send(Adopt {
        send,
        answers: rx,
        done,
    });
    if handed.await.is_err() {
        // Cannot be: `answers` ends only once every sender (this
        // connection's `Conn`) is gone.
        return;
    }
    let mut buf = Vec::new();
    let mut stopping = false;
    loop {
        let next = async {
            // Take the permit first: with none left, this stream stops
            // reading.
            let permit = conn.in_flight.clone().acquire_owned().await.ok()?;
            Some((permit, read_request(&conn, &mut recv, &mut buf).await))
        };
        let (permit, read) = tokio::select! {
            next = next => match next {
                Some(next) => next,
                None => break,
            },
            // A frame half read is dropped: the client sent it after the
            // node stopped taking requests, and it was not run.
            _ = stop.wait_for(|s| *s) => {
                stopping = true;
                break;
            }
        };
        let decoded = read.map(|more| {
            more.map(|frame_bytes| {
                let decoded = codec::decode_request(&buf);
                if buf.capacity() > READ_BUFFER_KEEP_BYTES {
                    buf = Vec::new();
                }
                (decoded, frame_bytes)
            })
        });
        let (id, error) = match decoded {
            Ok(Some((Ok(frame), frame_bytes))) => {
                let replier = Replier {
                    id: frame.id,
                    slot: Some((tx.clone(), permit)),
                    frame_bytes: Some(frame_bytes),
                    gone: gone.clone(),
                    held: None,
                };
                if handle(&conn, frame.request, replier).await {
                    continue;
                }
                break;
            }
            // Only a value was wrong: answer that request, keep reading.
            Ok(Some((Err(e), _))) if e.bad_value && e.id.is_some() => {
                Replier {
                    id: e.id.unwrap_or(0),
                    slot: Some((tx.clone(), permit)),
                    frame_bytes: None,
                    gone: gone.clone(),
                    held: None,
                }
                .send(Err(ErrorReply::new(ErrorCode::BadArguments, e.to_string())));
                continue;
            }
            // The connection's other frames hold its byte budget: this one
            // is answered now and its body dropped as it arrives; the
            // stream goes on.
            Err(ReadError::OverBudget { bytes, id, rest }) => {
                Replier {
                    id: id.unwrap_or(0),
                    slot: Some((tx.clone(), permit)),
                    frame_bytes: None,
                    gone: gone.clone(),
                    held: None,
                }
                .send(Err(ErrorReply::new(
                    ErrorCode::Overloaded,
                    format!(
                        "this connection has {} bytes of requests being read or run, and a \
                         frame of {bytes} bytes would take it over its limit of \
                         {CONNECTION_FRAME_BYTES_MAX}: it was not read or run; retry once \
                         answers come back",
                        CONNECTION_FRAME_BYTES_MAX - conn.frame_bytes.available_permits()
                    ),
                )));
                if recv.skip(rest).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Some((Err(e), _))) => (
                e.id.unwrap_or(0),
                ErrorReply::new(ErrorCode::BadRequest, e.to_string()),
            ),
            Ok(None) | Err(ReadError::Frame(FrameError::Read(_))) => break,
            Err(ReadError::Frame(e @ FrameError::TooLarge { .. })) => {
                (0, ErrorReply::new(ErrorCode::TooLarge, e.to_string()))
            }
            Err(ReadError::Frame(e @ FrameError::Truncated)) => {
                (0, ErrorReply::new(ErrorCode::BadRequest, e.to_string()))
            }
            Err(ReadError::Unauthenticated(bytes)) => (
                0,
                ErrorReply::new(
                    ErrorCode::Unauthenticated,
                    format!(
                        "a frame of {bytes} bytes before `auth` (over \
                         {UNAUTHENTICATED_FRAME_BYTES_MAX} bytes) is read only once the \
                         connection has authenticated, and it did not within {AUTH_WAIT:?}"
                    ),
                ),
            ),
        };
        // A frame we could not read: answer it, then close this stream.
        Replier {
            id,
            slot: Some((tx.clone(), permit)),
            frame_bytes: None,
            gone: gone.clone(),
            held: None,
        }
        .send(Err(error));
        let _ = recv.get_mut().stop(VarInt::from_u32(STOP_BAD_FRAME));
        if conn.bad_frames.fetch_add(1, Ordering::Relaxed) + 1 >= BAD_FRAMES_MAX {
            drop(tx);
            let _ = done_rx.await;
            conn.connection.close(
                VarInt::from_u32(CLOSE_BAD_FRAMES),
                b"too many malformed frames",
            );
            return;
        }
        break;
    }
    drop(tx);
    let finished = done_rx.await;
    if let (true, Ok(Some(send))) = (stopping, finished) {
        // `recv` stays open meanwhile, so the client's writes wait rather
        // than fail and its reader takes every answer.
        let _ = send.stopped().await;
    }
}

/// Why a request frame was not read.
enum ReadError {
    Frame(FrameError),
    /// A frame of this many bytes, over `UNAUTHENTICATED_FRAME_BYTES_MAX`,
    /// and the connection did not authenticate within `AUTH_WAIT`.
    Unauthenticated(usize),
    /// A frame of `bytes` over what is left of the connection's byte
    /// budget: its `id` (when the first `REFUSED_ID_BYTES` show it) and
    /// the `rest` of its body, still to be dropped.
    OverBudget {
        bytes: usize,
        id: Option<u64>,
        rest: usize,
    },
}

/// Reads one request frame into `buf`, with its bytes taken from the
/// connection's budget (None when the client finished the stream between
/// frames). Before the connection has authenticated, a frame over
/// `UNAUTHENTICATED_FRAME_BYTES_MAX` waits (unread: QUIC flow control
/// holds the client back) until it has.
async fn read_request<S: Service>(
    conn: &Conn<S>,
    recv: &mut FrameReader,
    buf: &mut Vec<u8>,
) -> Result<Option<OwnedSemaphorePermit>, ReadError> {
    let Some(bytes) = recv
        .length(FRAME_BYTES_MAX)
        .await
        .map_err(ReadError::Frame)?
    else {
        return Ok(None);
    };
    if bytes > UNAUTHENTICATED_FRAME_BYTES_MAX && !wait_authenticated(conn).await {
        return Err(ReadError::Unauthenticated(bytes));
    }
    // At most FRAME_BYTES_MAX (40 MiB): fits in u32.
    let Ok(frame_bytes) = conn
        .frame_bytes
        .clone()
        .try_acquire_many_owned(bytes as u32)
    else {
        let head = bytes.min(REFUSED_ID_BYTES);
        recv.body(buf, head).await.map_err(ReadError::Frame)?;
        return Err(ReadError::OverBudget {
            bytes,
            id: codec::peek_id(buf),
            rest: bytes - head,
        });
    };
    recv.body(buf, bytes).await.map_err(ReadError::Frame)?;
    Ok(Some(frame_bytes))
}

/// Whether the connection is authenticated, waiting for it up to
/// `AUTH_WAIT` from now.
async fn wait_authenticated<S: Service>(conn: &Conn<S>) -> bool {
    let deadline = tokio::time::Instant::now() + AUTH_WAIT;
    loop {
        let told = conn.authenticated.notified();
        tokio::pin!(told);
        // Registered before the look, so a `notify_waiters` after it is
        // not missed.
        told.as_mut().enable();
        if conn.session.get().is_some() {
            return true;
        }
        if tokio::time::timeout_at(deadline, told).await.is_err() {
            return conn.session.get().is_some();
        }
    }
}

/// Closes the connection if it has not authenticated within `AUTH_WAIT`
/// (it holds a slot of `CONNECTIONS_MAX` and its streams' buffers).
async fn close_unless_authenticated<S: Service>(conn: Arc<Conn<S>>) {
    tokio::select! {
        _ = conn.connection.closed() => {}
        authenticated = wait_authenticated(&conn) => {
            if !authenticated {
                conn.connection.close(
                    VarInt::from_u32(CLOSE_AUTH_TIMEOUT),
                    b"no successful auth in time",
                );
            }
        }
    }
}

/// A flag set once the client stops this stream or the connection is lost:
/// what still runs for it may stop (`Replier::gone`). The task watching
/// ends when the stream does (the client read everything, or it is gone).
fn watch_gone(send: &SendStream) -> Arc<AtomicBool> {
    let gone = Arc::new(AtomicBool::new(false));
    let stopped = send.stopped();
    let flag = gone.clone();
    tokio::spawn(async move {
        // Ok(None): we finished and the client read everything.
        if !matches!(stopped.await, Ok(None)) {
            flag.store(true, Ordering::Relaxed);
        }
    });
    gone
}

/// Routes one decoded request. `false`: stop reading this stream (the
/// connection is being closed).
async fn handle<S: Service>(conn: &Conn<S>, request: Request, replier: Replier) -> bool {
    if let Request::Certificate = request {
        // What the handshake already showed: answered before `auth`.
        replier.send(Ok(Reply::Certificate {
            chain: conn.chain.to_vec(),
        }));
        return true;
    }
    let Request::Auth { token } = request else {
        match conn.session.get() {
            Some(session) => conn.service.dispatch(session, request, replier),
            None => replier.send(Err(ErrorReply::new(
                ErrorCode::Unauthenticated,
                "send `auth` with a token first",
            ))),
        }
        return true;
    };
    if conn.session.get().is_some() {
        replier.send(Err(ErrorReply::new(
            ErrorCode::NotSupported,
            "this connection is already authenticated; open a new connection to change principal",
        )));
        return true;
    }
    let attempt = conn.auth_attempts.fetch_add(1, Ordering::Relaxed) + 1;
    if attempt > AUTH_ATTEMPTS_MAX {
        // The connection is closing (or about to): this token is not
        // looked at, so no connection checks more than the cap.
        replier.send(Err(ErrorReply::new(
            ErrorCode::AuthFailed,
            format!(
                "more than {AUTH_ATTEMPTS_MAX} auth attempts on this connection: this token was \
                 not checked; open a new connection"
            ),
        )));
        return false;
    }
    match conn.service.authenticate(&token) {
        Ok((session, reply)) => {
            let answer = match conn.session.set(Arc::new(session)) {
                Ok(()) => {
                    conn.authenticated.notify_waiters();
                    Ok(reply)
                }
                Err(_) => Err(ErrorReply::new(
                    ErrorCode::NotSupported,
                    "this connection was authenticated on another stream meanwhile",
                )),
            };
            replier.send(answer);
            true
        }
        Err(e) if e.code == ErrorCode::QuotaExceeded => {
            // Not a guess: the client may try again once it is under
            // its quota, on this connection.
            conn.auth_attempts.fetch_sub(1, Ordering::Relaxed);
            replier.send(Err(e));
            true
        }
        Err(e) => {
            replier.send(Err(e));
            if attempt >= AUTH_ATTEMPTS_MAX {
                // Let the writer flush the answer before the close.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                conn.connection.close(
                    VarInt::from_u32(CLOSE_AUTH_ATTEMPTS),
                    b"too many failed auth attempts",
                );
                return false;
            }
            true
        }
    }
}

/// A new stream's way out, for its connection's `answers` task.
struct Adopt {
    send: SendStream,
    /// The stream's answers; closed once its reader and every `Replier`
    /// of its requests are gone.
    answers: mpsc::Receiver<Outgoing>,
    /// Told once every answer is written and the stream finished (the
    /// stream, to wait for the client's acknowledgement) or it failed
    /// (None).
    done: oneshot::Sender<Option<SendStream>>,
}

/// Writes the answers of every stream of one connection as they become
/// ready (`stream_out`). Ends once no stream can be adopted any more and
/// every adopted one is done.
async fn answers(mut adopt_rx: mpsc::Receiver<Adopt>) {
    type Done = oneshot::Sender<Option<SendStream>>;
    // At most STREAMS_PER_CONNECTION_MAX: a stream whose last answers are
    // still being written has not finished its send half, so it still
    // counts against the transport's limit on open streams.
    let mut outs: Vec<(StreamOut<Outgoing>, Done)> = Vec::new();
    let mut adopting = true;
    std::future::poll_fn(|cx| {
        while adopting {
            match adopt_rx.poll_recv(cx) {
                Poll::Ready(Some(a)) => outs.push((
                    StreamOut::new(a.send, a.answers, WRITE_BATCH_BYTES_MAX),
                    a.done,
                )),
                Poll::Ready(None) => adopting = false,
                Poll::Pending => break,
            }
        }
        stream_out::poll_all(
            cx,
            &mut outs,
            |_, out, buf| encode(out, buf),
            |out, done, how| {
                let mut send = out.into_send();
                let finished = how == Ended::Written && send.finish().is_ok();
                let _ = done.send(finished.then_some(send));
            },
        );
        if adopting || !outs.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// Encodes one response; one over the frame limit becomes `too_large`.
fn encode(out: Outgoing, buf: &mut Vec<u8>) {
    if let Err(FrameTooLarge { bytes }) = codec::encode_response(&out.frame, buf) {
        let frame = ResponseFrame {
            id: out.frame.id,
            response: Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("the result is {bytes} bytes, over the frame limit; ask for fewer rows"),
            )),
            leader: out.frame.leader,
        };
        // A short error always fits.
        let _ = codec::encode_response(&frame, buf);
    }
}
