//! Frame and MessagePack codec for `proto` (see docs/PROTOCOL.md).
