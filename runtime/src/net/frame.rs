//! One frame on a QUIC stream: a 4-byte big-endian body length, then the
//! body. Reading grows the buffer only as bytes arrive, so a peer that
//! declares 40 MiB and sends nothing costs nothing; a declared length over
//! `FRAME_BYTES_MAX` is refused before any body byte is read.

use crate::proto::codec::PREFIX_BYTES;
use crate::proto::FRAME_BYTES_MAX;
use quinn::{ReadError, ReadExactError, RecvStream};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {bytes} bytes is over the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("reading the stream: {0}")]
    Read(#[from] ReadError),
}

/// Reads one frame body into `buf` (replacing its contents). `Ok(false)`:
/// the peer finished the stream cleanly between frames.
pub async fn read_frame(recv: &mut RecvStream, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    read_frame_within(recv, buf, FRAME_BYTES_MAX).await
}

/// `read_frame` with another bound (peer links carry bigger frames).
pub async fn read_frame_within(
    recv: &mut RecvStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<bool, FrameError> {
    match read_length(recv, max).await? {
        Some(bytes) => read_body(recv, buf, bytes).await.map(|()| true),
        None => Ok(false),
    }
}

/// Reads a frame's length prefix: None when the peer finished the stream
/// cleanly between frames; a length over `max` is refused.
pub async fn read_length(recv: &mut RecvStream, max: usize) -> Result<Option<usize>, FrameError> {
    let mut prefix = [0u8; PREFIX_BYTES];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let bytes = u32::from_be_bytes(prefix) as usize;
    if bytes > max {
        return Err(FrameError::TooLarge { bytes, max });
    }
    Ok(Some(bytes))
}

/// Reads a body of `bytes` (as `read_length` gave) into `buf`, replacing
/// its contents.
pub async fn read_body(
    recv: &mut RecvStream,
    buf: &mut Vec<u8>,
    bytes: usize,
) -> Result<(), FrameError> {
    buf.clear();
    while buf.len() < bytes {
        match recv.read_chunk(bytes - buf.len(), true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None => return Err(FrameError::Truncated),
        }
    }
    Ok(())
}
