//! Tests of snapshots: restore, compaction.
