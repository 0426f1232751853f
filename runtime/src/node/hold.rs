//! Holding every partition for one coordinator transaction, by messages to
//! their executors (no lock is shared): each core lends its state once the
//! calls queued before the hold have run; the coordinator works on the
//! states, then hands each back with its share of the transaction in two
//! phases (partitions 1.., then partition 0's share, the commit; see
//! `partition::decide`) — for a read, once everything it saw is chosen —
//! and lets the partitions go on.
//!
//! ```text
//!   coordinator ──Hold──▶ executor p  ──lent state──▶ coordinator (runs the txn)
//!   coordinator ──Release(state, share)──▶ p1..pn ──chosen──▶ coordinator
//!   coordinator ──Release(state, share or abort)──▶ p0 ──chosen──▶ coordinator
//!   coordinator ──Decided, Resume──▶ p1..pn; Resume ──▶ p0
//! ```
//!
//! Calls that arrive meanwhile wait in each core — for a hold on one
//! tenant's work, only that tenant's calls: the others' run on beside its
//! shell (`partition::hold`) — so a transaction is seen by every partition
//! at one point of its tenant's order, and nothing that reads it is
//! answered before it is chosen everywhere.

use super::executor::{Input, Lent};
use super::reply::{self, ClientAddrs};
use crate::durability::{self, Entry};
use crate::partition::CallError;
use crate::partition::PartitionState;
use crate::proto::{ErrorCode, ErrorReply};
use crate::types::TenantId;
use std::ops::{Deref, DerefMut};
use std::sync::mpsc::{sync_channel, Receiver, Sender};

/// Every partition's state (or its shell for one tenant), lent to the
/// coordinator.
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

/// Asks every executor for its state and waits for all of them; for work
/// on `tenant`'s data only (None: anyone's), each lends a shell with that
/// tenant's part alone and goes on with the other tenants' calls
/// (`Input::Hold`).
pub fn hold_all<'a>(
    executors: &'a [Sender<Input>],
    addrs: &'a ClientAddrs,
    tenant: Option<TenantId>,
) -> Result<Held<'a>, ErrorReply> {
    let waits: Vec<_> = executors
        .iter()
        .map(|e| {
            let (tx, rx) = sync_channel::<Lent>(1);
            let sent = e.send(Input::Hold { tenant, lent: tx }).is_ok();
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

    /// Hands every state back and lets the partitions go on. A read
    /// (`write` None) waits until everything the coordinator saw is chosen.
    /// A write — transaction `txn`, `entries[i]` partition i's share, the
    /// states already holding them — commits in two phases (see
    /// `partition::decide`): every share but partition 0's, and once all
    /// are chosen, partition 0's, which is the commit; if a share could not
    /// be chosen, partition 0 logs an abort in its place.
    pub fn finish(mut self, write: Option<(u64, Vec<Vec<u8>>)>) -> Result<(), ErrorReply> {
        self.done = true;
        let states = std::mem::take(&mut self.states);
        let result = match write {
            None => self.read(states),
            Some((txn, entries)) => self.commit(txn, states, entries),
        };
        for exec in self.executors {
            let _ = exec.send(Input::Resume);
        }
        result
    }

    #[allow(clippy::vec_box)]
    fn read(&self, states: Vec<Box<PartitionState>>) -> Result<(), ErrorReply> {
        let waits: Vec<_> = self
            .executors
            .iter()
            .zip(states)
            .map(|(exec, state)| release(exec, state, None, false))
            .collect();
        let mut failed = None;
        for w in waits {
            if let Err(e) = self.chosen(w) {
                failed = failed.or(Some(ErrorReply::from(e)));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    #[allow(clippy::vec_box)]
    fn commit(
        &self,
        txn: u64,
        states: Vec<Box<PartitionState>>,
        entries: Vec<Vec<u8>>,
    ) -> Result<(), ErrorReply> {
        let mut states = states.into_iter();
        let mut entries = entries.into_iter();
        let (Some(state0), Some(share0)) = (states.next(), entries.next()) else {
            return Err(reply::internal(format!(
                "coordinator transaction {txn} came without partition 0's share"
            )));
        };
        // Prepare: every other partition's share, until chosen.
        let waits: Vec<_> = self.executors[1..]
            .iter()
            .zip(states.zip(entries))
            .map(|(exec, (state, share))| release(exec, state, Some(share), false))
            .collect();
        let mut failed = None;
        for w in waits {
            if let Err(e) = self.chosen(w) {
                failed = failed.or(Some(e));
            }
        }
        let p0 = &self.executors[0];
        let Some(why) = failed else {
            // Commit: partition 0's share.
            return match self.chosen(release(p0, state0, Some(share0), false)) {
                Ok(()) => {
                    self.tell(txn, true);
                    Ok(())
                }
                // Refused before it was proposed: never to commit.
                Err(Settled::NotDone(e)) => {
                    self.tell(txn, false);
                    Err(aborted(txn, &e))
                }
                // The other partitions ask partition 0 for the outcome.
                Err(Settled::Unknown(e)) => Err(e),
            };
        };
        // Abort, logged on partition 0 in place of its share (which is in
        // its state: rebuilt). Its share never proposed, the transaction
        // can never commit, whether or not the abort is chosen.
        let mut abort = Vec::new();
        let decide = Entry::Decide { txn, commit: false };
        if let Err(e) = durability::encode_entry(&decide, &mut abort) {
            return Err(reply::internal(format!("encoding an abort: {e}")));
        }
        let _ = self.chosen(release(p0, state0, Some(abort), true));
        self.tell(txn, false);
        Err(aborted(txn, why.reply()))
    }

    /// Tells every partition but 0 the outcome of `txn` (their leaders log
    /// it; one that held its share in memory keeps or drops it).
    fn tell(&self, txn: u64, commit: bool) {
        for exec in &self.executors[1..] {
            let _ = exec.send(Input::Decided { txn, commit });
        }
    }

    /// Waits for a released state's entry (or what was read) to be chosen.
    fn chosen(&self, wait: Option<Receiver<Result<(), CallError>>>) -> Result<(), Settled> {
        // That partition's executor is gone (the node is stopping).
        let Some(rx) = wait else {
            return Err(Settled::NotDone(stopping()));
        };
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.outcome_unknown() => {
                Err(Settled::Unknown(reply::call_error(&e, self.addrs)))
            }
            Ok(Err(e)) => Err(Settled::NotDone(reply::call_error(&e, self.addrs))),
            Err(_) => Err(Settled::Unknown(stopped_unknown())),
        }
    }
}

/// Why a released entry is not known to be chosen.
enum Settled {
    /// Refused before it was proposed.
    NotDone(ErrorReply),
    /// Proposed; whether it will be chosen is not known.
    Unknown(ErrorReply),
}

impl Settled {
    fn reply(&self) -> &ErrorReply {
        match self {
            Settled::NotDone(e) | Settled::Unknown(e) => e,
        }
    }
}

impl From<Settled> for ErrorReply {
    fn from(s: Settled) -> ErrorReply {
        match s {
            Settled::NotDone(e) | Settled::Unknown(e) => e,
        }
    }
}

/// Sends a state back; the receiver hears once its entry is chosen (None:
/// the executor is gone).
fn release(
    exec: &Sender<Input>,
    state: Box<PartitionState>,
    entry: Option<Vec<u8>>,
    discard: bool,
) -> Option<Receiver<Result<(), CallError>>> {
    let (done, rx) = sync_channel(1);
    let input = Input::Release {
        state,
        entry,
        discard,
        done,
    };
    exec.send(input).ok().map(|()| rx)
}

/// A transaction aborted because `why` kept a share from being chosen.
fn aborted(txn: u64, why: &ErrorReply) -> ErrorReply {
    // A full disk keeps its code: the client waits for room, not for the
    // node to come back.
    let code = match why.code {
        ErrorCode::DiskFull => ErrorCode::DiskFull,
        _ => ErrorCode::Unavailable,
    };
    ErrorReply::new(
        code,
        format!(
            "multi-partition transaction {txn} was aborted and not applied ({}); retry",
            why.message
        ),
    )
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
        discard: false,
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
