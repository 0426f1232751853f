//! Tests of the log: append, sync, reopen, torn tails, corruption, rotation.
