//! One frame on a QUIC stream: a 4-byte big-endian body length, then the
//! body. Frames are read `READ_AHEAD_BYTES` at a time (`FrameReader`);
//! a longer body grows the buffer only as bytes arrive, so a peer that
//! declares 40 MiB and sends nothing costs nothing; a declared length over
//! the reader's bound (`FRAME_BYTES_MAX` for clients) is refused before any
//! body byte is read.

use crate::proto::codec::PREFIX_BYTES;
use quinn::{ReadError, RecvStream};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {bytes} bytes is over the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("reading the stream: {0}")]
    Read(#[from] ReadError),
}

/// Bytes a `FrameReader` reads ahead of the frame it is on. Frames that
/// arrived together (a client's writer coalesces them) then cost one read
/// of the stream between them, not two each (a prefix and a body): each
/// read of a quinn stream takes the connection's lock and may wake its
/// driver to grant more credit.
pub const READ_AHEAD_BYTES: usize = 8 << 10;

/// Reads frames off one stream, `READ_AHEAD_BYTES` at a time. A body
/// longer than that is read straight into the caller's buffer, as it
/// arrives (see the module's note on 40 MiB declared and not sent).
/// Cancel-safe between reads: dropping a pending call loses no byte.
pub struct FrameReader {
    recv: RecvStream,
    /// `ahead[start..end]` is read and not yet handed out; empty (not
    /// allocated) until the first read.
    ahead: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    pub fn new(recv: RecvStream) -> FrameReader {
        FrameReader {
            recv,
            ahead: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The stream, to stop it.
    pub fn stream(&mut self) -> &mut RecvStream {
        &mut self.recv
    }

    fn buffered(&self) -> &[u8] {
        &self.ahead[self.start..self.end]
    }

    /// Whether the next frame is here whole, so reading it waits for
    /// nothing.
    pub fn has_frame(&self) -> bool {
        let b = self.buffered();
        b.len() >= PREFIX_BYTES && {
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            b.len() - PREFIX_BYTES >= len
        }
    }

    /// Reads until at least `want` (at most `READ_AHEAD_BYTES`) bytes are
    /// buffered; false when the stream finished before.
    async fn fill(&mut self, want: usize) -> Result<bool, ReadError> {
        debug_assert!(want <= READ_AHEAD_BYTES);
        if self.end - self.start >= want {
            return Ok(true);
        }
        if self.ahead.is_empty() {
            self.ahead = vec![0; READ_AHEAD_BYTES];
        }
        // What is left is shorter than `want`: moving it to the front is
        // cheap, and makes room for a whole read.
        self.ahead.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < want {
            match self.recv.read(&mut self.ahead[self.end..]).await? {
                Some(n) => self.end += n,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Hands out up to `bytes` of what is buffered.
    fn take(&mut self, bytes: usize) -> &[u8] {
        let n = bytes.min(self.end - self.start);
        let taken = &self.ahead[self.start..self.start + n];
        self.start += n;
        taken
    }

    /// A frame's length prefix: None when the peer finished the stream
    /// cleanly between frames; a length over `max` is refused.
    pub async fn length(&mut self, max: usize) -> Result<Option<usize>, FrameError> {
        if !self.fill(PREFIX_BYTES).await? {
            return match self.end - self.start {
                0 => Ok(None),
                _ => Err(FrameError::Truncated),
            };
        }
        let p = self.take(PREFIX_BYTES);
        let bytes = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        if bytes > max {
            return Err(FrameError::TooLarge { bytes, max });
        }
        Ok(Some(bytes))
    }

    /// A body of `bytes` (as `length` gave) into `buf`, replacing its
    /// contents.
    pub async fn body(&mut self, buf: &mut Vec<u8>, bytes: usize) -> Result<(), FrameError> {
        buf.clear();
        buf.extend_from_slice(self.take(bytes));
        let rest = bytes - buf.len();
        if rest == 0 {
            return Ok(());
        }
        if rest <= READ_AHEAD_BYTES {
            if !self.fill(rest).await? {
                return Err(FrameError::Truncated);
            }
            buf.extend_from_slice(self.take(rest));
            return Ok(());
        }
        while buf.len() < bytes {
            match self.recv.read_chunk(bytes - buf.len(), true).await? {
                Some(chunk) => buf.extend_from_slice(&chunk.bytes),
                None => return Err(FrameError::Truncated),
            }
        }
        Ok(())
    }

    /// Reads `bytes` of a frame's body and keeps none of them.
    pub async fn skip(&mut self, bytes: usize) -> Result<(), FrameError> {
        let mut rest = bytes - self.take(bytes).len();
        while rest > 0 {
            match self.recv.read_chunk(rest, true).await? {
                Some(chunk) => rest -= chunk.bytes.len(),
                None => return Err(FrameError::Truncated),
            }
        }
        Ok(())
    }

    /// One frame body of at most `max` bytes into `buf`. `Ok(false)`: the
    /// peer finished the stream cleanly between frames.
    pub async fn frame_within(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Result<bool, FrameError> {
        match self.length(max).await? {
            Some(bytes) => self.body(buf, bytes).await.map(|()| true),
            None => Ok(false),
        }
    }
}
