//! Writing many streams of one connection from one task.
//!
//! A task per stream, each woken for its own frames, makes the connection
//! send a packet per stream write: a write wakes the connection's driver,
//! and the runtime runs the woken driver before the next stream's task.
//! One task that polls every stream of its connection (`StreamOut::poll`
//! for each, then returns) writes what became ready together in one turn,
//! and the driver sends it in as few packets as fit. A stream whose flow
//! control is full waits alone: the task writes what each stream takes
//! and comes back to it when it has room. (What is queued for it still
//! holds whatever its owner counts it against, e.g. the node's in-flight
//! requests per connection.)
//!
//! Used by the node (answers, `server`) and the client (requests,
//! `driver`). Must not: wait on one stream while another could be
//! written, or finish a stream (its owner decides).

use quinn::SendStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// How one stream's writing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every sender is gone and everything they sent is written (the
    /// stream is not finished: that is the owner's call).
    Written,
    /// The stream refused a write (stopped by the peer, or the
    /// connection is lost).
    Failed,
}

/// One stream's frames on their way out: items from a queue, encoded
/// into a buffer ahead of the stream's flow control (up to about
/// `batch_bytes`), and written as far as the stream takes them.
pub struct StreamOut<T> {
    send: SendStream,
    queue: mpsc::Receiver<T>,
    /// Encoded frames; `buf[written..]` is not yet taken by the stream.
    buf: Vec<u8>,
    written: usize,
    /// Every sender is gone.
    ended: bool,
    batch_bytes: usize,
}

impl<T> StreamOut<T> {
    /// Writes what `queue` holds into `send`, encoding up to about
    /// `batch_bytes` at a time (the buffer keeps at most twice that
    /// between batches).
    pub fn new(send: SendStream, queue: mpsc::Receiver<T>, batch_bytes: usize) -> StreamOut<T> {
        StreamOut {
            send,
            queue,
            buf: Vec::new(),
            written: 0,
            ended: false,
            batch_bytes,
        }
    }

    /// Moves queued items into the stream, `encode`d, as far as its flow
    /// control takes them. Pending with the task to be woken when there
    /// is more to write or room to write it.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut encode: impl FnMut(T, &mut Vec<u8>),
    ) -> Poll<Ended> {
        loop {
            if self.written == self.buf.len() {
                self.written = 0;
                self.buf.clear();
                if self.buf.capacity() > 2 * self.batch_bytes {
                    self.buf = Vec::new();
                }
                // `poll_recv` until one item is written (it registers the
                // waker only when it finds none, and spends a unit of the
                // task's coop budget each time), then `try_recv`, which
                // spends none: a long queue on one stream must not use up
                // the budget the other streams' turns need. An item may
                // encode to nothing (the client answers a request over the
                // frame limit itself), hence the loop: returning Pending
                // without a waker would leave the queue unread for good.
                // Bounded by the queue's room and the coop budget.
                while !self.ended && self.buf.is_empty() {
                    match self.queue.poll_recv(cx) {
                        Poll::Ready(Some(item)) => encode(item, &mut self.buf),
                        Poll::Ready(None) => self.ended = true,
                        Poll::Pending => break,
                    }
                }
                while !self.buf.is_empty() && self.buf.len() < self.batch_bytes {
                    match self.queue.try_recv() {
                        Ok(item) => encode(item, &mut self.buf),
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            self.ended = true;
                            break;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                    }
                }
                if self.buf.is_empty() {
                    return if self.ended {
                        Poll::Ready(Ended::Written)
                    } else {
                        Poll::Pending
                    };
                }
            }
            match Pin::new(&mut self.send).poll_write(cx, &self.buf[self.written..]) {
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(_)) => return Poll::Ready(Ended::Failed),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The stream, for its owner to finish (or drop).
    pub fn into_send(self) -> SendStream {
        self.send
    }
}

/// Polls every stream of `outs` once (see the module doc), removing and
/// handing to `ended` each one that ended.
pub fn poll_all<T, S>(
    cx: &mut Context<'_>,
    outs: &mut Vec<(StreamOut<T>, S)>,
    mut encode: impl FnMut(&S, T, &mut Vec<u8>),
    mut ended: impl FnMut(StreamOut<T>, S, Ended),
) {
    let mut i = 0;
    while i < outs.len() {
        let (out, with) = &mut outs[i];
        match out.poll(cx, |item, buf| encode(with, item, buf)) {
            Poll::Pending => i += 1,
            Poll::Ready(how) => {
                let (out, with) = outs.swap_remove(i);
                ended(out, with, how);
            }
        }
    }
}
