//! One frame on a QUIC stream: a 4-byte big-endian body length, then the
//! body. Frames are read up to `READ_AHEAD_BYTES` at a time
//! (`FrameReader`); the buffers grow only as bytes arrive, so a peer that
//! declares 40 MiB and sends nothing costs nothing; a declared length over
//! the reader's bound (`FRAME_BYTES_MAX` for clients) is refused before any
//! body byte is read.

use crate::proto::codec::PREFIX_BYTES;
use quinn::RecvStream;
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {bytes} bytes is over the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("reading the stream: {0}")]
    Read(#[from] std::io::Error),
}

/// Bytes a `FrameReader` reads ahead of the frame it is on, at most.
/// Frames that arrived together (a client's writer coalesces them) then
/// cost one read of the stream between them, not two each (a prefix and a
/// body): each read of a quinn stream takes the connection's lock and may
/// wake its driver to grant more credit.
pub const READ_AHEAD_BYTES: usize = 8 << 10;
/// The read-ahead buffer's first size; it doubles (up to
/// `READ_AHEAD_BYTES`) each time a read fills it, so a stream costs about
/// twice what its peer sent at once, not `READ_AHEAD_BYTES` for one byte.
const READ_AHEAD_FIRST_BYTES: usize = 512;

/// Reads frames off one stream (a quinn `RecvStream`; any byte source in
/// tests), with up to `READ_AHEAD_BYTES` read ahead. A body longer than
/// that is read straight into the caller's buffer as it arrives.
/// `length` is cancel-safe; a `body` or `skip` dropped part way loses its
/// frame, so whoever drops one must stop reading the stream.
pub struct FrameReader<R = RecvStream> {
    recv: R,
    /// `ahead[start..end]` is read and not yet handed out.
    ahead: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `recv`'s frames (nothing is read or allocated yet).
    pub fn new(recv: R) -> FrameReader<R> {
        FrameReader {
            recv,
            ahead: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The stream, to stop it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.recv
    }

    fn buffered(&self) -> &[u8] {
        &self.ahead[self.start..self.end]
    }

    /// Whether the next frame is here whole, so reading it waits for
    /// nothing.
    pub fn has_frame(&self) -> bool {
        let b = self.buffered();
        b.len() >= PREFIX_BYTES && b.len() - PREFIX_BYTES >= body_len(b)
    }

    /// Reads until at least `want` (at most `READ_AHEAD_BYTES`) bytes are
    /// buffered; false when the stream finished before.
    async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        debug_assert!(want <= READ_AHEAD_BYTES);
        if self.end - self.start >= want {
            return Ok(true);
        }
        // What is left is shorter than `want`: moving it to the front is
        // cheap, and makes room for a whole read.
        self.ahead.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < want {
            if self.end == self.ahead.len() {
                let grown = (2 * self.ahead.len()).clamp(READ_AHEAD_FIRST_BYTES, READ_AHEAD_BYTES);
                self.ahead.resize(grown, 0);
            }
            match self.recv.read(&mut self.ahead[self.end..]).await? {
                0 => return Ok(false),
                n => self.end += n,
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
        let bytes = body_len(self.take(PREFIX_BYTES));
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
        // Straight into `buf`, grown by at most `READ_AHEAD_BYTES` ahead
        // of what arrived.
        while buf.len() < bytes {
            let at = buf.len();
            buf.resize(at + (bytes - at).min(READ_AHEAD_BYTES), 0);
            // On an error the caller drops the frame, and `buf` with it.
            let n = self.recv.read(&mut buf[at..]).await?;
            buf.truncate(at + n);
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok(())
    }

    /// Reads `bytes` of a frame's body and keeps none of them.
    pub async fn skip(&mut self, bytes: usize) -> Result<(), FrameError> {
        let rest = (bytes - self.take(bytes).len()) as u64;
        let mut body = (&mut self.recv).take(rest);
        if tokio::io::copy(&mut body, &mut tokio::io::sink()).await? < rest {
            return Err(FrameError::Truncated);
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

/// The body length a frame's prefix (its first `PREFIX_BYTES`) says.
fn body_len(prefix: &[u8]) -> usize {
    u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// `bytes` handed out at most `step` at a time, with a wait (Pending,
    /// woken at once) before every other read.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
        waited: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.waited = !self.waited;
            if self.waited {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = self
                .step
                .min(self.bytes.len() - self.at)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn framed(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bodies {
            out.extend((b.len() as u32).to_be_bytes());
            out.extend(b);
        }
        out
    }

    /// Everything `reader` reads before the end, and how it ended.
    async fn read_all(bytes: Vec<u8>, step: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let mut reader = FrameReader::new(Trickle {
            bytes,
            at: 0,
            step,
            waited: false,
        });
        let mut frames = Vec::new();
        let mut buf = Vec::new();
        loop {
            match reader.frame_within(&mut buf, 4 * READ_AHEAD_BYTES).await {
                Ok(true) => frames.push(buf.clone()),
                Ok(false) => return (frames, Ok(())),
                Err(e) => return (frames, Err(e)),
            }
        }
    }

    /// Bodies of every length around the read-ahead's edges, read with
    /// reads of every size that matters: each frame comes out whole and in
    /// order, whichever way the reads cut the prefixes and bodies.
    #[tokio::test]
    async fn frames_cut_by_reads_of_any_size_come_out_whole() {
        const AHEAD: usize = READ_AHEAD_BYTES;
        let mut lens = vec![0, 1, 2, 3, 4, 5, 17, 511, 512, 513];
        lens.extend([AHEAD - 5, AHEAD - 4, AHEAD - 1, AHEAD, AHEAD + 1, AHEAD + 4]);
        lens.extend([2 * AHEAD, 3 * AHEAD + 7, 0, 9]);
        let bodies: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let bytes = framed(&bodies);
        let mut steps: Vec<usize> = (1..=9).collect();
        steps.extend([511, 512, 513, AHEAD - 1, AHEAD, AHEAD + 3, 5 * AHEAD]);
        for step in steps {
            let (frames, end) = read_all(bytes.clone(), step).await;
            assert!(end.is_ok(), "step {step}: {end:?}");
            assert_eq!(frames.len(), bodies.len(), "step {step}");
            for (i, (got, want)) in frames.iter().zip(&bodies).enumerate() {
                assert!(
                    got == want,
                    "step {step}: frame {i} of {} bytes",
                    want.len()
                );
            }
        }
    }

    /// A stream that ends inside a prefix or a body is truncated; one that
    /// ends between frames is not; a length over the bound is refused.
    #[tokio::test]
    async fn an_end_inside_a_frame_is_truncated() {
        let whole = framed(&[vec![7; 10], vec![8; 3 * READ_AHEAD_BYTES]]);
        let first = PREFIX_BYTES + 10;
        for (cut, frames, truncated) in [
            (0, 0, false),
            (2, 0, true),
            (PREFIX_BYTES + 3, 0, true),
            (first, 1, false),
            (first + 1, 1, true),
            (first + PREFIX_BYTES + READ_AHEAD_BYTES, 1, true),
            (whole.len() - 1, 1, true),
            (whole.len(), 2, false),
        ] {
            for step in [1, 3, READ_AHEAD_BYTES, 4 * READ_AHEAD_BYTES] {
                let (got, end) = read_all(whole[..cut].to_vec(), step).await;
                assert_eq!(got.len(), frames, "cut {cut}, step {step}");
                match end {
                    Err(FrameError::Truncated) => assert!(truncated, "cut {cut}, step {step}"),
                    Ok(()) => assert!(!truncated, "cut {cut}, step {step}"),
                    Err(e) => panic!("cut {cut}, step {step}: {e}"),
                }
            }
        }
        let over = framed(&[vec![0; 4 * READ_AHEAD_BYTES + 1]]);
        let (got, end) = read_all(over, 100).await;
        assert!(got.is_empty());
        assert!(
            matches!(end, Err(FrameError::TooLarge { bytes, .. }) if bytes == 4 * READ_AHEAD_BYTES + 1),
            "{end:?}"
        );
    }

    /// The read-ahead buffer grows with what arrived, not to its bound at
    /// the first byte.
    #[tokio::test]
    async fn one_byte_costs_the_first_size_not_the_bound() {
        let mut reader = FrameReader::new(Trickle {
            bytes: vec![0],
            at: 0,
            step: 1,
            waited: false,
        });
        let end = reader.length(READ_AHEAD_BYTES).await;
        assert!(matches!(end, Err(FrameError::Truncated)), "{end:?}");
        assert_eq!(reader.ahead.len(), READ_AHEAD_FIRST_BYTES);
        let mut big = FrameReader::new(Trickle {
            bytes: framed(&[vec![1; 3 * READ_AHEAD_BYTES]]),
            at: 0,
            step: usize::MAX,
            waited: false,
        });
        let mut buf = Vec::new();
        assert!(big.frame_within(&mut buf, usize::MAX).await.unwrap());
        assert_eq!(buf.len(), 3 * READ_AHEAD_BYTES);
        assert!(big.ahead.len() <= READ_AHEAD_BYTES);
    }
}
