//! Lending one tenant's part of a partition, so its calls run on another
//! thread while the partition's own thread runs the other tenants' calls:
//! a tenant whose calls are long then delays only itself.
//!
//! The part is the tenant's whole share here (engine, procedures, kept
//! answers); nothing of it is shared, so calls on it run beside the
//! others'. Each call's write-set comes back as a payload and is proposed
//! then, in the order its calls ran; writes of different tenants touch
//! different tables, so their order in the log changes nothing.
//!
//! ```text
//!   lend_part(t) ──▶ Lease (part, gen) ──run(call)──▶ Ran ──lent_ran──▶ proposed, answered
//!   part_home(lease) ◀── the holder, when idle or `wants_parts_home`
//! ```
//!
//! A lease belongs to one generation of the state: whenever the state is
//! replaced (rebuilt from the log, a leader's snapshot installed) or this
//! replica stops leading, the generation moves on, and what a lease of an
//! older one ran is answered as not applied (its payload was never
//! proposed) and its part dropped. A snapshot waits until every part is
//! home, a hold until the parts it needs are (`hold_for`); a part that
//! comes home before what it ran is proposed waits outside the state.

use super::core::PartitionCore;
use super::error::CallError;
use super::exec::{run_on_part, CallSpec, Executed, Placement};
use super::replies::CallResult;
use super::state::TenantPart;
use crate::catalog::Quota;
use crate::types::{TenantId, Value};
use crate::wasm::{ProcOutput, TxnContext};
use std::sync::Arc;

/// A tenant's part, lent out with what running its calls needs.
pub struct Lease {
    tenant: TenantId,
    part: TenantPart,
    gen: u64,
    at: Placement,
    quota: Quota,
    scratch: Vec<u8>,
}

/// A call to run on a lent part; `txn` comes from the core
/// (`lent_txn`) when the call is handed to the lease's holder.
pub struct LentCall {
    pub procedure: String,
    pub args: Vec<Value>,
    pub key: Option<String>,
    /// Its time limit, if less than the tenant's (`call_timeout_ms`).
    pub timeout_ms: Option<u64>,
    pub txn: TxnContext,
}

/// What a call on a lent part did, for `lent_ran`.
pub struct Ran {
    tenant: TenantId,
    gen: u64,
    result: CallResult,
    /// Its write-set as a record payload; None when it wrote nothing.
    payload: Option<Arc<[u8]>>,
}

impl Ran {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Whether the call succeeded (a failed one changed nothing).
    pub fn succeeded(&self) -> bool {
        self.result.is_ok()
    }
}

impl Lease {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The generation of the state it was lent from (see
    /// `PartitionCore::part_generation`).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Runs `call` on the part: as `run_call` does on a whole state, or
    /// answered as the first time when its key was kept.
    pub fn run(&mut self, call: &LentCall) -> Ran {
        let kept = call
            .key
            .as_ref()
            .and_then(|k| self.part.kept.get(k).map(|a| (k, a)));
        if let Some((key, answer)) = kept {
            let result = kept_result(answer, &call.procedure, key);
            return self.ran(result, None);
        }
        let spec = CallSpec {
            tenant: self.tenant,
            procedure: &call.procedure,
            args: &call.args,
            key: call.key.as_deref(),
            timeout_ms: call.timeout_ms,
            // Not lent while the disk is full (`lend_part`); a lease lent
            // before is refused when it ran (`set_disk_full`).
            refuse_writes: None,
        };
        let Executed { result, payload } = run_on_part(
            &mut self.part,
            self.at,
            &self.quota,
            spec,
            call.txn,
            &mut self.scratch,
        );
        self.ran(result, payload)
    }

    fn ran(&self, result: CallResult, payload: Option<Arc<[u8]>>) -> Ran {
        Ran {
            tenant: self.tenant,
            gen: self.gen,
            result,
            payload,
        }
    }
}

/// A kept answer as the call's result.
fn kept_result(answer: Option<&ProcOutput>, procedure: &str, key: &str) -> CallResult {
    answer.cloned().ok_or_else(|| CallError::AnswerNotKept {
        procedure: procedure.to_string(),
        key: key.to_string(),
    })
}

impl<T> PartitionCore<T> {
    /// Lends `tenant`'s part, if the core could run a call of it now (it
    /// leads, nothing holds it or waits in it) and the part is not out
    /// already. (A shell that keeps a part out for long lends none while a
    /// snapshot is due: it waits for them.) Until it comes back (`part_home`), the
    /// tenant's calls go to the lease, not to `call`.
    pub fn lend_part(&mut self, tenant: TenantId) -> Option<Box<Lease>> {
        // While the disk is full calls run here, where a write is refused.
        if !self.runs_now() || self.disk_full.is_some() {
            return None;
        }
        if self.is_away(tenant) {
            return None;
        }
        let state = self.state.as_deref_mut()?;
        let part = state.take_part(tenant);
        Some(Box::new(Lease {
            tenant,
            part,
            gen: self.part_gen,
            at: Placement {
                here: self.cfg.partition,
                partitions: self.cfg.partitions,
            },
            quota: self.cfg.quota,
            scratch: std::mem::take(&mut self.scratch),
        }))
    }

    /// The transaction context of a call about to run on a lent part
    /// (taken in the order calls are handed out, as `call`'s are).
    pub fn lent_txn(&mut self) -> TxnContext {
        self.next_txn()
    }

    /// A call ran on a lent part: its write-set is proposed (at once, or
    /// once the partition is not lent to a holder and may propose), and
    /// `token` is answered once that — or, for a read, what it saw — is
    /// chosen. From a lease of an older generation it is answered as not
    /// applied.
    pub fn lent_ran(&mut self, token: T, ran: Ran) {
        if let Some(e) = self.refusal() {
            return self.out.replies.push((token, Err(e)));
        }
        if ran.gen != self.part_gen || !self.leading {
            let e = self.stale_error();
            return self.out.replies.push((token, Err(e)));
        }
        self.ran_waiting.push_back((token, ran));
        self.propose_ran();
    }

    /// Why a call that ran on a stale lease is not applied.
    pub(super) fn stale_error(&self) -> CallError {
        if !self.leading {
            let leader = self.paxos.leader();
            return CallError::NotLeader { leader };
        }
        if let Some(e) = self.disk_full_error() {
            return e;
        }
        CallError::Overloaded(
            "the partition's state was rebuilt from its log while this call ran; it was not \
             applied"
                .into(),
        )
    }

    /// Proposes what lent parts ran, in order, while the core may (then
    /// parts that came home meanwhile go back in the state).
    pub(super) fn propose_ran(&mut self) {
        while !self.ran_waiting.is_empty() && self.may_propose_ran() {
            let Some((token, ran)) = self.ran_waiting.pop_front() else {
                break;
            };
            let (dep, wrote) = match ran.payload {
                Some(payload) => match self.paxos.propose(payload) {
                    Ok(slot) => {
                        self.applied = slot;
                        (slot, true)
                    }
                    Err(e) => {
                        let what = format!("proposing a lent call's checked record failed: {e}");
                        return self.stop_refusing(token, what);
                    }
                },
                None => (self.applied, false),
            };
            self.waiting.push(token, ran.result, dep, wrote);
        }
        if !self.homecoming.is_empty() {
            self.parts_came_home();
        }
    }

    /// Whether a lent part's record may be proposed now: as a call's may
    /// run, except that a hold need not be free (the holder's tenant is
    /// not away), only not asked (it goes first, unless it waits for a
    /// part, which waits for these) or lent whole (the state is out; a
    /// shell's share is proposed past the bounds, `propose_reserved`).
    fn may_propose_ran(&self) -> bool {
        // An asked hold goes first (it may wait for exactly this room),
        // unless it waits for a part that waits for these records.
        let asked = matches!(self.hold, super::hold::Hold::Asked { .. });
        (!asked || self.hold_waits_for_parts())
            && self.leading
            && !self.needs_rebuild
            && self.fatal.is_none()
            && self.paxos.can_propose()
            && self.awaiting().is_none()
            && self.state.is_some()
    }

    /// A lent part comes back (kept until the state does, if that is lent
    /// to a holder). One of an older generation is dropped.
    pub fn part_home(&mut self, mut lease: Box<Lease>) {
        if self.scratch.capacity() < lease.scratch.capacity() {
            std::mem::swap(&mut self.scratch, &mut lease.scratch);
        }
        let waits = |t: TenantId| self.ran_waiting.iter().any(|(_, r)| r.tenant == t);
        if lease.gen == self.part_gen && !waits(lease.tenant) && self.state.is_some() {
            if let Some(state) = self.state.as_deref_mut() {
                let Lease { tenant, part, .. } = *lease;
                let put = state.put_part(tenant, part);
                debug_assert!(put, "a lease of this generation whose tenant is not away");
            }
        } else if lease.gen == self.part_gen {
            self.homecoming.push(lease);
            self.parts_came_home();
        }
        // Only a hold or a snapshot can have waited for it.
        let snapshot_waits = self.snapshot_due() || self.building.is_some();
        if !matches!(self.hold, super::hold::Hold::Free) || snapshot_waits {
            self.after_consensus();
        }
    }

    /// Puts the parts that came home back in the state, if it is here —
    /// each once what it ran is proposed (until then the state would hold
    /// writes its log does not).
    pub(super) fn parts_came_home(&mut self) {
        if self.homecoming.is_empty() {
            return;
        }
        let Some(state) = self.state.as_deref_mut() else {
            return;
        };
        let gen = self.part_gen;
        let waiting = &self.ran_waiting;
        self.homecoming.retain(|l| l.gen == gen);
        let (back, wait): (Vec<_>, Vec<_>) = self
            .homecoming
            .drain(..)
            .partition(|l| waiting.iter().all(|(_, r)| r.tenant != l.tenant));
        self.homecoming = wait;
        for lease in back {
            let Lease { tenant, part, .. } = *lease;
            let put = state.put_part(tenant, part);
            debug_assert!(put, "a lease of this generation whose tenant is not away");
        }
    }

    /// Whether `tenant`'s part is lent out (or back but not in the state
    /// yet), or a holder works on it (`hold_for` it, until `resume`): its
    /// calls must wait, not go to `call`.
    pub fn is_away(&self, tenant: TenantId) -> bool {
        self.hold.held_tenant() == Some(tenant)
            || self.state.as_deref().is_some_and(|s| s.is_away(tenant))
    }

    /// The tenants `is_away` says so of.
    pub fn away_tenants(&self) -> impl Iterator<Item = TenantId> + '_ {
        let state = self.state.as_deref();
        // A shell's tenant is away from the state too: named once.
        let held = self
            .hold
            .held_tenant()
            .filter(move |t| !state.is_some_and(|s| s.is_away(*t)));
        state.into_iter().flat_map(|s| s.away()).chain(held)
    }

    /// Whether lent parts should come home: a snapshot is due or waits for
    /// one, a hold waits for them, or they are stale (no longer leading, or
    /// the state is to be rebuilt).
    pub fn wants_parts_home(&self) -> bool {
        let away = self.state.as_deref().map_or(0, |s| s.away_count());
        away > 0
            && (self.snapshot_due()
                || self.snapshot_waits_for_part()
                || self.hold_waits_for_parts()
                || !self.leading
                || self.needs_rebuild
                || self.fatal.is_some())
    }

    /// The generation of the state's parts: a lease of another one is
    /// stale (what it runs is not applied), and should come home.
    pub fn part_generation(&self) -> u64 {
        self.part_gen
    }

    /// The state, if it reflects exactly the records up to `applied`:
    /// every part is home, and nothing a lent part ran waits to be
    /// proposed.
    pub fn exact_state(&self) -> Option<&super::state::PartitionState> {
        let state = self.state.as_deref()?;
        (state.away_count() == 0 && self.ran_waiting.is_empty()).then_some(state)
    }

    /// How many parts are out.
    pub fn parts_away(&self) -> usize {
        self.state.as_deref().map_or(0, |s| s.away_count())
    }

    /// The state was replaced, or leadership lost: leases out are stale,
    /// and what they ran and is not proposed yet is answered as not
    /// applied.
    pub(super) fn new_part_generation(&mut self) {
        self.part_gen += 1;
        self.homecoming.clear();
        if self.ran_waiting.is_empty() {
            return;
        }
        let refused = self.stale_error();
        let out = &mut self.out.replies;
        out.extend(
            self.ran_waiting
                .drain(..)
                .map(|(token, _)| (token, Err(refused.clone()))),
        );
    }
}
