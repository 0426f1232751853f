//! Holding every partition for one coordinator transaction, by messages to
//! their executors (no lock is shared): each core lends its state once the
//! calls queued before the hold have run; the coordinator works on the
//! states, then hands each back with its share of the transaction, waits
//! until every share (or, for a read, everything it saw) is chosen, and
//! lets the partitions go on.
//!
//! ```text
//!   coordinator ──Hold──▶ executor p  ──lent state──▶ coordinator (runs the txn)
//!   coordinator ──Release(state, entry)──▶ p ──chosen──▶ coordinator ──Resume──▶ p
//! ```
//!
//! Calls that arrive meanwhile wait in each core, so a transaction is seen
//! by every partition at one point of its order, and nothing that reads
//! it is answered before it is chosen everywhere.

use super::executor::{Input, Lent};
use super::reply::{self, ClientAddrs};
use crate::partition::PartitionState;
use crate::proto::{ErrorCode, ErrorReply};
use std::ops::{Deref, DerefMut};
use std::sync::mpsc::{sync_channel, Sender};

/// Every partition's state, lent to the coordinator.
pub struct Held<'a> {
    executors: &'a [Sender<Input>],
    addrs: &'a ClientAddrs,
    // The boxes the cores lent travel back as they came.
    #[allow(clippy::vec_box)]
    states: Vec<Box<PartitionState>>,
    /// Handed back (by `finish`); else `Drop` hands them back unchanged.
    done: bool,
}

impl Deref for Held<'_> {
    type Target = [Box<PartitionState>];
    fn deref(&self) -> &Self::Target {
        &self.states
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.states
    }
}

/// Asks every executor for its state and waits for all of them.
pub fn hold_all<'a>(
    executors: &'a [Sender<Input>],
    addrs: &'a ClientAddrs,
) -> Result<Held<'a>, ErrorReply> {
    let waits: Vec<_> = executors
        .iter()
        .map(|e| {
            let (tx, rx) = sync_channel::<Lent>(1);
            let sent = e.send(Input::Hold(tx)).is_ok();
            (sent, rx)
        })
        .collect();
    let mut held = Held {
        executors,
        addrs,
        states: Vec::with_capacity(executors.len()),
        done: false,
    };
    let mut failed = None;
    for (i, (sent, rx)) in waits.into_iter().enumerate() {
        let got = if sent { rx.recv().ok() } else { None };
        match got {
            Some(Ok(state)) if failed.is_none() => held.states.push(state),
            Some(Ok(state)) => release_unchanged(&executors[i], state),
            Some(Err(e)) => failed = failed.or(Some(refused_hold(&e, addrs))),
            None => failed = failed.or(Some(stopping())),
        }
    }
    match failed {
        None => Ok(held),
        // Drop hands back those already lent.
        Some(e) => Err(e),
    }
}

impl Held<'_> {
    /// The states may disagree with their logs (a broken invariant): keep
    /// them from ever serving again. The partitions stay held until the
    /// node stops.
    pub fn abandon(mut self) {
        self.done = true;
        self.states.clear();
    }

    /// Hands every state back with its partition's entry (`entries[i]`;
    /// none for a read), waits until each is chosen — for a read, until
    /// everything the coordinator saw is — then lets the partitions go on.
    pub fn finish(mut self, entries: Option<Vec<Vec<u8>>>) -> Result<(), ErrorReply> {
        self.done = true;
        let states = std::mem::take(&mut self.states);
        let mut entries = entries.map(|e| e.into_iter());
        let mut waits = Vec::with_capacity(states.len());
        // A share some partition never logged means recovery skips the
        // whole transaction on every partition (see durability's rule for
        // multi-partition records): not applied. Short of that, a share
        // whose fate is unknown makes the whole outcome unknown.
        let mut not_logged = None;
        let mut unknown = None;
        for (exec, state) in self.executors.iter().zip(states) {
            let entry = entries.as_mut().and_then(|e| e.next());
            let (done, rx) = sync_channel(1);
            match exec.send(Input::Release { state, entry, done }) {
                Ok(()) => waits.push(rx),
                // That partition's executor is gone (the node is stopping).
                Err(_) => not_logged = not_logged.or(Some(stopping())),
            }
        }
        for rx in waits {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.outcome_unknown() => {
                    unknown = unknown.or(Some(reply::call_error(&e, self.addrs)));
                }
                // In a cluster other partitions may already have chosen
                // their shares: never "nothing was done" (`not_leader`,
                // which clients resend).
                Ok(Err(crate::partition::CallError::NotLeader { .. })) => {
                    unknown = unknown.or(Some(ErrorReply::new(
                        ErrorCode::Unavailable,
                        "a partition's leadership changed while the transaction was being \
                         committed; it may or may not have taken effect",
                    )));
                }
                Ok(Err(e)) => not_logged = not_logged.or(Some(reply::call_error(&e, self.addrs))),
                Err(_) => unknown = unknown.or(Some(stopped_unknown())),
            }
        }
        for exec in self.executors {
            let _ = exec.send(Input::Resume);
        }
        match not_logged.or(unknown) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Held<'_> {
    /// An abandoned transaction (an error before `finish`): the states go
    /// back as they are (the transaction undid its changes) and the
    /// partitions go on.
    fn drop(&mut self) {
        // A panic mid-transaction may have left the states half changed:
        // keep them (the partitions stay held until the node stops; their
        // logs are intact).
        if self.done || std::thread::panicking() {
            return;
        }
        for (exec, state) in self.executors.iter().zip(self.states.drain(..)) {
            release_unchanged(exec, state);
        }
    }
}

fn release_unchanged(exec: &Sender<Input>, state: Box<PartitionState>) {
    let (done, _) = sync_channel(1);
    let _ = exec.send(Input::Release {
        state,
        entry: None,
        done,
    });
    let _ = exec.send(Input::Resume);
}

use super::service::stopping;

/// A partition went away after taking its share: whether it was logged
/// is not known here.
/// A partition would not lend its state. Not leading it here means the
/// transaction must run on the node that leads every partition.
fn refused_hold(e: &crate::partition::CallError, addrs: &ClientAddrs) -> ErrorReply {
    let mut r = reply::call_error(e, addrs);
    if r.code == ErrorCode::NotLeader {
        r.message = match &r.leader {
            Some(a) => format!(
                "multi-partition work (and DDL, deploys, ad-hoc SQL) runs on the node that leads \
                 every partition; a partition here is led from {a}: retry there (nothing was done)"
            ),
            None => "multi-partition work runs on the node that leads every partition, and a \
                     partition's leader is being elected: retry shortly (nothing was done)"
                .into(),
        };
    }
    r
}

fn stopped_unknown() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unavailable,
        "a partition stopped before its share of this transaction was known to be durable; \
         it may or may not have taken effect",
    )
}
