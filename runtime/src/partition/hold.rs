//! The coordinator's hold on a partition: the state lent (after the calls
//! queued before the hold have run), handed back with this partition's
//! share of the coordinator's transaction, and the holder told once that
//! share — or, for a read, everything it saw — is chosen. Calls that arrive
//! meanwhile wait until `resume`.
//!
//! A holder that works on one tenant's data gets a shell with that
//! tenant's part only (`PartitionState::shell_for`): the other tenants'
//! calls go on running here while the holder works, and for a read until
//! `resume`; only that tenant's wait throughout. (A write's share on a
//! partition other than 0 holds every call from its release until its
//! outcome is known, as before: see `decide`.) The share is proposed in the
//! room the hold was lent with (`Paxos::propose_reserved`).
//!
//! ```text
//!   Free ─hold─▶ Asked ─(calls before it ran, room to propose)─▶ Lent
//!   Lent ─release(state, entry)─▶ Back ─(chosen, read allowed)─▶ Done ─resume─▶ Free
//! ```

use super::core::PartitionCore;
use super::error::CallError;
use super::state::PartitionState;
use crate::durability;
use crate::types::{Slot, TenantId};
use std::sync::Arc;

/// Where a hold is.
pub(super) enum Hold<T> {
    Free,
    /// Asked for when `before` calls were queued: lent once they ran, the
    /// parts it needs are home, and the leader has room to propose the
    /// holder's entry.
    Asked {
        token: T,
        before: usize,
        /// The one tenant the holder works on (None: it needs them all):
        /// other tenants' parts may stay lent out (see `lease`).
        tenant: Option<TenantId>,
    },
    /// The state is out: all of it, or (`tenant` Some) a shell with that
    /// tenant's part, lent from the parts' generation `gen`.
    Lent {
        tenant: Option<TenantId>,
        gen: u64,
    },
    /// The state is back; `dep` (the holder's entry, or the last slot it
    /// saw) must be chosen before `token` hears, and for a read (no entry)
    /// leadership must have held at `read_us`, when the state came back.
    Back {
        token: T,
        dep: Slot,
        read_us: Option<u64>,
        tenant: Option<TenantId>,
    },
    /// Told; calls (of `tenant`, when Some) wait for `resume`.
    Done {
        tenant: Option<TenantId>,
    },
}

impl<T> Hold<T> {
    /// The one tenant whose calls wait while the rest run: the holder's,
    /// from the moment its shell is lent until `resume`.
    pub(super) fn held_tenant(&self) -> Option<TenantId> {
        match self {
            Hold::Lent { tenant, .. } | Hold::Back { tenant, .. } | Hold::Done { tenant } => {
                *tenant
            }
            Hold::Free | Hold::Asked { .. } => None,
        }
    }

    /// Whether calls of tenants other than the holder's run meanwhile: no
    /// hold, or one on a single tenant's shell.
    pub(super) fn lets_others_run(&self) -> bool {
        matches!(self, Hold::Free) || self.held_tenant().is_some()
    }
}

impl<T> PartitionCore<T> {
    /// The coordinator asks for the whole state: lent (in `Ready::lent`)
    /// after the calls that came before and once every lent part is home;
    /// calls after it wait until `resume`.
    pub fn hold(&mut self, token: T) {
        self.hold_for(token, None)
    }

    /// As `hold`, for a holder that works on `tenant` only (None: on
    /// them all): it gets a shell with that tenant's part alone
    /// (`PartitionState::shell_for`), and the other tenants' calls and
    /// parts lent out go on meanwhile.
    pub fn hold_for(&mut self, token: T, tenant: Option<TenantId>) {
        if let Some(e) = self.refusal() {
            return self.out.replies.push((token, Err(e)));
        }
        // Waiting for an outcome: not lent until it is known (partition 0
        // may have to decide it, which it does only while not held).
        if let Some(e) = self.in_doubt().filter(|_| self.leading) {
            return self.out.replies.push((token, Err(e)));
        }
        // Handing leadership over: the entry the holder hands back could not
        // be proposed.
        let moving = self.paxos.transferring_to();
        if !self.leading || !matches!(self.hold, Hold::Free) || moving.is_some() {
            let leader = moving.or(self.paxos.leader());
            let e = CallError::NotLeader { leader };
            return self.out.replies.push((token, Err(e)));
        }
        let before = self.queued.len();
        self.hold = Hold::Asked {
            token,
            before,
            tenant,
        };
        self.run_queued();
    }

    /// The state comes back, with this partition's share of the holder's
    /// transaction (an encoded entry, already applied to the state), if
    /// any. `token` hears (`held_chosen`) once it, or whatever the holder
    /// saw, is chosen. `discard`: the entry is not what the state holds
    /// (an abort, logged in place of a share already applied to it): the
    /// state is rebuilt from the log.
    pub fn release(
        &mut self,
        token: T,
        state: Box<PartitionState>,
        entry: Option<Vec<u8>>,
        discard: bool,
    ) {
        if let Some(e) = self.refusal() {
            return self.out.replies.push((token, Err(e)));
        }
        let Hold::Lent { tenant, gen } = self.hold else {
            panic!("release without a lent state");
        };
        if let Some(t) = tenant {
            return self.release_shell(token, *state, entry, discard, (t, gen));
        }
        // The disk is full: the holder's entry cannot be logged, and the
        // state holds it: refused, and the state rebuilt from the log.
        if let Some(e) = self
            .disk_full_error()
            .filter(|_| entry.is_some() && self.leading)
        {
            if self.state.is_none() {
                self.state = Some(state);
                self.needs_rebuild = true;
            }
            self.hold = Hold::Done { tenant: None };
            self.homecoming.clear();
            self.out.replies.push((token, Err(e)));
            return self.after_consensus();
        }
        // Leadership was lost while the state was out (or a leader's
        // snapshot replaced it): what comes back may hold what will never
        // be chosen. Unless a new state is here already, it is kept only to
        // be rebuilt from what is chosen (the shell rebuilds a present
        // state that needs it; a dropped one was never rebuilt, and the
        // replica applied nothing again).
        if !self.leading || self.state.is_some() {
            self.hold = Hold::Done { tenant: None };
            if self.state.is_none() {
                self.state = Some(state);
                self.needs_rebuild = true;
            }
            self.homecoming.clear();
            let leader = self.paxos.leader();
            self.out
                .replies
                .push((token, Err(CallError::NotLeader { leader })));
            return self.after_consensus();
        }
        self.state = Some(state);
        self.parts_came_home();
        self.propose_released(token, entry, discard, None);
    }

    /// `release` of a shell (`hold_for` a tenant): its part and what it
    /// changed go back in the state, which served the other tenants
    /// meanwhile. If the state was replaced or leadership lost since, the
    /// shell is stale: dropped, and its holder refused.
    fn release_shell(
        &mut self,
        token: T,
        shell: PartitionState,
        entry: Option<Vec<u8>>,
        discard: bool,
        (t, gen): (TenantId, u64),
    ) {
        let tenant = Some(t);
        let fresh = self.leading && gen == self.part_gen;
        // On a full disk, an entry to log is refused (the shell's part,
        // which holds it, is dropped like a stale one).
        let refused = entry.is_some() && self.disk_full.is_some();
        let Some(home) = self.state.as_deref_mut().filter(|_| fresh && !refused) else {
            // Leadership was lost or the state replaced since (either moves
            // the generation on): what the shell holds may never be
            // chosen. A state still missing the part is rebuilt.
            self.hold = Hold::Done { tenant };
            if self.state.as_deref().is_some_and(|s| s.is_away(t)) {
                self.needs_rebuild = true;
            }
            let e = self.stale_error();
            self.out.replies.push((token, Err(e)));
            return self.after_consensus();
        };
        home.merge_shell(shell);
        self.propose_released(token, entry, discard, tenant);
    }

    /// The state (with what the holder did) is back while leading: the
    /// holder's entry, if any, is proposed in the room it was lent with,
    /// and the holder waits for it — or, for a read, for what it saw — to
    /// be chosen.
    fn propose_released(
        &mut self,
        token: T,
        entry: Option<Vec<u8>>,
        discard: bool,
        tenant: Option<TenantId>,
    ) {
        // Partition 0's share is the commit (see `decide`): remembered as
        // applying it from the log would.
        let share = entry.as_deref().and_then(durability::multi_txn);
        if let (Some(txn), 0, false, Some(state)) = (
            share,
            self.cfg.partition.0,
            discard,
            self.state.as_deref_mut(),
        ) {
            state.committed.insert(txn);
        }
        let (dep, read_us) = match entry {
            Some(payload) => match self.paxos.propose_reserved(Arc::from(payload)) {
                Ok(slot) => {
                    self.applied = slot;
                    (slot, None)
                }
                Err(e) => {
                    // Lent only with room to propose, and still leading:
                    // a broken invariant.
                    let what = format!("proposing a held transaction's entry failed: {e}");
                    return self.stop_refusing(token, what);
                }
            },
            None => (self.applied, Some(self.now.mono_us)),
        };
        self.hold = Hold::Back {
            token,
            dep,
            read_us,
            tenant,
        };
        if discard {
            self.needs_rebuild = true;
        }
        self.after_consensus();
    }

    /// The holder is done: waiting calls run.
    pub fn resume(&mut self) {
        self.hold = Hold::Free;
        self.run_queued();
    }

    /// Runs the calls that may run: all of them when nobody holds the
    /// partition, those queued before the hold when one is asked; then
    /// lends the state if that is its turn.
    pub(super) fn run_queued(&mut self) {
        loop {
            let held = self.hold.held_tenant();
            let may = match &self.hold {
                Hold::Free => true,
                Hold::Asked { before, .. } => *before > 0,
                // The holder's tenant's calls wait (in order, and so does
                // what queued behind them).
                _ => held.is_some() && self.queued.front().is_some_and(|q| Some(q.tenant) != held),
            };
            if !may || !self.can_run() {
                break;
            }
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            if let Hold::Asked { before, .. } = &mut self.hold {
                *before -= 1;
            }
            self.run(q);
        }
        self.lend();
    }

    /// Lends the state if a hold is asked, every call before it ran, the
    /// parts the holder needs are home, and the leader has room to propose
    /// what it hands back.
    fn lend(&mut self) {
        let Hold::Asked {
            before: 0, tenant, ..
        } = self.hold
        else {
            return;
        };
        if !self.can_run() || self.hold_waits_for_parts() {
            return;
        }
        let lent = Hold::Lent {
            tenant,
            gen: self.part_gen,
        };
        let state = match (tenant, self.state.as_deref_mut()) {
            (Some(t), Some(home)) => Some(Box::new(home.shell_for(t))),
            _ => self.state.take(),
        };
        if let (Hold::Asked { token, .. }, Some(mut state)) =
            (std::mem::replace(&mut self.hold, lent), state)
        {
            if self.cfg.partition.0 == 0 {
                state.txn_floor = super::decide::txn_floor(self.paxos.promised());
            }
            self.out.lent = Some((token, state));
        }
    }

    /// Whether an asked hold waits for lent parts: it needs every part and
    /// some are out, or it needs its tenant's and that is out.
    pub(super) fn hold_waits_for_parts(&self) -> bool {
        let Hold::Asked { tenant, .. } = &self.hold else {
            return false;
        };
        let Some(state) = self.state.as_deref() else {
            return false;
        };
        match tenant {
            None => state.away_count() > 0,
            Some(t) => state.is_away(*t),
        }
    }

    /// Tells the holder once what it handed back (or saw) is chosen.
    pub(super) fn check_hold(&mut self) {
        let Hold::Back { dep, read_us, .. } = &self.hold else {
            return;
        };
        let chosen = *dep <= self.paxos.chosen();
        let led = read_us.is_none_or(|t| self.paxos.read_allowed(t));
        if !(chosen && led) {
            return;
        }
        let tenant = self.hold.held_tenant();
        if let Hold::Back { token, .. } = std::mem::replace(&mut self.hold, Hold::Done { tenant }) {
            self.out.held_chosen = Some(token);
        }
    }
}
