//! Ohm: a distributed, in-memory SQL database whose stored procedures are
//! sandboxed WebAssembly. See ARCHITECTURE.md for the picture; this crate is
//! the node library and the `ohm` binary.

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod consensus;
pub mod driver;
pub mod durability;
pub mod lincheck;
pub mod loader;
pub mod migrate;
pub mod net;
pub mod node;
pub mod partition;
pub mod peer;
pub mod proto;
pub mod rng;
pub mod sim;
pub mod slt;
pub mod sql;
pub mod storage;
pub mod torture;
pub mod txn;
pub mod types;
pub mod wasm;
