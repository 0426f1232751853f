//! Forwarding: in a cluster a client may send any request to any node. A
//! node that does not coordinate (lead partition 0, where the leaders of
//! every partition gather) passes the request to the node that does, over
//! their peer link (`PeerMessage::Forward`), and answers its client with
//! what comes back (`Forwarded`), naming where that node is so the client
//! can go straight there next time (docs/PROTOCOL.md, "Responses").
//!
//! Owns: the requests this node forwarded and awaits (bounded in count and
//! bytes, given up after `FORWARD_TIMEOUT` or when the link to the leader
//! goes down; not sent while it is down, the client is told to go to the
//! leader itself), and running a request another
//! node forwarded here. Must not: forward a forwarded request again (no
//! loops: the coordinating node answers `not_leader` itself if it no longer
//! leads), or block the network task that delivers peer messages.

use super::reply::ReplyFn;
use super::Node;
use crate::catalog::Principal;
use crate::net::server::Replier;
use crate::peer::PeerMessage;
use crate::proto::codec::{
    decode_request, decode_response, encode_request, encode_response, PREFIX_BYTES,
};
use crate::proto::{ErrorCode, ErrorReply, Reply, Request, RequestFrame, ResponseFrame};
use crate::types::{NodeId, TenantId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Requests this node forwarded and awaits; more are answered `overloaded`.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 1024;
/// Their request bytes.
pub const FORWARD_BYTES_IN_FLIGHT_MAX: usize = 64 << 20;
/// A forward unanswered this long is answered `unavailable` (it may or may
/// not have been applied there).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often waiting forwards are checked against `FORWARD_TIMEOUT`.
pub const FORWARD_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Queues a message for a peer; false when it could not be queued.
pub type SendPeer = Arc<dyn Fn(NodeId, PeerMessage) -> bool + Send + Sync>;
/// Whether this node's link to a peer is up.
pub type LinkUp = Arc<dyn Fn(NodeId) -> bool + Send + Sync>;

struct Waiting {
    to: NodeId,
    /// Where clients reach `to`.
    leader: Option<String>,
    bytes: usize,
    since: Instant,
    replier: Replier,
}

#[derive(Default)]
struct Table {
    waiting: HashMap<u64, Waiting>,
    bytes: usize,
}

impl Table {
    fn take(&mut self, id: u64) -> Option<Waiting> {
        let w = self.waiting.remove(&id)?;
        self.bytes -= w.bytes;
        Some(w)
    }
}

/// This node's side of forwarding, both ways.
pub struct Forwarder {
    send: SendPeer,
    link_up: LinkUp,
    next_id: AtomicU64,
    table: Mutex<Table>,
    /// The node, for running requests forwarded here (set once it exists).
    node: std::sync::OnceLock<Weak<Node>>,
}

/// Sends the answer to a forwarded request back to the node that passed
/// it on; dropped unanswered (a queue dropped as the node stops), it still
/// answers, so that node's client hears at once.
struct AnswerBack {
    send: SendPeer,
    to: NodeId,
    id: u64,
    sent: bool,
}

impl AnswerBack {
    fn answer(&mut self, response: Result<Reply, ErrorReply>) {
        self.sent = true;
        let id = self.id;
        let mut framed = Vec::new();
        let frame = ResponseFrame {
            id,
            response,
            leader: None,
        };
        if let Err(e) = encode_response(&frame, &mut framed) {
            framed.clear();
            let too_large = ResponseFrame {
                id,
                response: Err(ErrorReply::new(
                    ErrorCode::TooLarge,
                    format!("the result: {e}; ask for fewer rows"),
                )),
                leader: None,
            };
            // A short error always fits.
            let _ = encode_response(&too_large, &mut framed);
        }
        let response = framed.split_off(PREFIX_BYTES);
        // A full link drops it: the forwarding node times it out.
        let _ = (self.send)(self.to, PeerMessage::Forwarded { id, response });
    }
}

impl Drop for AnswerBack {
    fn drop(&mut self) {
        if !self.sent {
            self.answer(Err(ErrorReply::new(
                ErrorCode::Internal,
                "the node that leads dropped this request without answering it",
            )));
        }
    }
}

/// Whether a request is passed to the coordinating node (`status` is
/// answered where it is asked; `auth` never reaches dispatch).
pub fn forwarded_kind(request: &Request) -> bool {
    !matches!(
        request,
        Request::Status | Request::Auth { .. } | Request::Certificate
    )
}

impl Forwarder {
    pub fn new(send: SendPeer, link_up: LinkUp) -> Forwarder {
        // Ids go on from the clock's nanoseconds, so those of a restarted
        // process are above any its previous run gave (one forward takes
        // far longer than a nanosecond): an answer the leader still owes
        // the old process never matches a new request.
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Forwarder {
            send,
            link_up,
            next_id: AtomicU64::new(first),
            table: Mutex::default(),
            node: std::sync::OnceLock::new(),
        }
    }

    /// From now on requests forwarded here run on `node`.
    pub fn connect(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }

    /// Passes `request` from `who` to node `to` (reached by clients at
    /// `leader`); `replier` gets its answer, or why there is none.
    pub fn forward(
        &self,
        to: NodeId,
        leader: Option<String>,
        who: &Principal,
        request: Request,
        replier: Replier,
    ) {
        if !(self.link_up)(to) {
            // The client may still reach it: nothing was done, go there.
            let message = format!(
                "this node cannot reach node {}, which leads, to pass the request on; \
                 nothing was done: send it there",
                to.0
            );
            return replier.send(Err(ErrorReply::not_leader(message, leader)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut framed = Vec::new();
        if let Err(e) = encode_request(&RequestFrame { id, request }, &mut framed) {
            // Only a request within a few bytes of the limit (its id grows).
            let e = ErrorReply::new(ErrorCode::TooLarge, format!("forwarding it: {e}"));
            return replier.send(Err(e));
        }
        let body = framed.split_off(PREFIX_BYTES);
        let bytes = body.len();
        {
            let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
            if t.waiting.len() >= FORWARDS_IN_FLIGHT_MAX
                || t.bytes + bytes > FORWARD_BYTES_IN_FLIGHT_MAX
            {
                drop(t);
                return replier.send(Err(ErrorReply::new(
                    ErrorCode::Overloaded,
                    format!(
                        "this node is passing too many requests to node {}, which leads; \
                         nothing was done: retry shortly, or send to {}",
                        to.0,
                        leader.as_deref().unwrap_or("the leader")
                    ),
                )));
            }
            t.bytes += bytes;
            t.waiting.insert(
                id,
                Waiting {
                    to,
                    leader,
                    bytes,
                    since: Instant::now(),
                    replier,
                },
            );
        }
        let msg = PeerMessage::Forward {
            id,
            tenant: who.tenant,
            principal: who.name.clone(),
            token_sha256: who.token_sha256,
            request: body,
        };
        if !(self.send)(to, msg) {
            let w = self
                .table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(id);
            if let Some(w) = w {
                w.replier.send(Err(ErrorReply::new(
                    ErrorCode::Overloaded,
                    format!(
                        "the link to node {}, which leads, is full or down; nothing was done: \
                         retry shortly",
                        to.0
                    ),
                )));
            }
        }
    }

    /// Node `from` answered forward `id` with a response body.
    pub fn answered(&self, from: NodeId, id: u64, response: &[u8]) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // Only the node it went to answers it (ids are this node's own).
        if t.waiting.get(&id).is_none_or(|w| w.to != from) {
            return;
        }
        let Some(w) = t.take(id) else { return };
        drop(t);
        let response = decode_response(response)
            .map(|f| f.response)
            .unwrap_or_else(|e| {
                Err(ErrorReply::new(
                    ErrorCode::Internal,
                    format!(
                        "node {}'s answer could not be read ({e}); the request may or may not \
                     have taken effect",
                        from.0
                    ),
                ))
            });
        w.replier.send_from_leader(response, w.leader);
    }

    /// Answers every forward older than `FORWARD_TIMEOUT`, or sent to a
    /// node this node's link to is down now (the path between the two is
    /// broken: its answer is not to be waited for).
    pub fn expire(&self, now: Instant) {
        let late: Vec<(Waiting, bool)> = {
            let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<(u64, bool)> = t
                .waiting
                .iter()
                .filter_map(|(id, w)| {
                    let down = !(self.link_up)(w.to);
                    let late = now.duration_since(w.since) >= FORWARD_TIMEOUT;
                    (down || late).then_some((*id, down))
                })
                .collect();
            ids.into_iter()
                .filter_map(|(id, down)| Some((t.take(id)?, down)))
                .collect()
        };
        for (w, down) in late {
            let to = w.to;
            let why = if down {
                format!("the link to node {} went down", to.0)
            } else {
                format!("no answer came within {}s", FORWARD_TIMEOUT.as_secs())
            };
            w.replier.send(Err(ErrorReply::new(
                ErrorCode::Unavailable,
                format!(
                    "passed to node {}, which led, and {why}: it may or may not have taken \
                     effect",
                    to.0
                ),
            )));
        }
    }

    /// Node `from` forwarded request `id` from one of its clients: run it
    /// here as that client and send the answer back.
    pub fn run_forwarded(
        &self,
        from: NodeId,
        id: u64,
        tenant: TenantId,
        principal: String,
        token_sha256: [u8; 32],
        request: &[u8],
    ) {
        let mut back = AnswerBack {
            send: self.send.clone(),
            to: from,
            id,
            sent: false,
        };
        let reply: ReplyFn = Box::new(move |response| back.answer(response));
        let Some(node) = self.node.get().and_then(Weak::upgrade) else {
            return reply(Err(super::service::stopping()));
        };
        let request = match decode_request(request) {
            Ok(f) => f.request,
            Err(e) => {
                let e = ErrorReply::new(ErrorCode::BadRequest, format!("forwarded request: {e}"));
                return reply(Err(e));
            }
        };
        let who = {
            let cat = node.catalog.read().unwrap_or_else(|p| p.into_inner());
            run_as(&cat, tenant, &principal, &token_sha256)
        };
        let who = match who {
            Ok(who) => who,
            Err(e) => return reply(Err(e)),
        };
        // Not cancelled when the client leaves the other node: that node
        // answers it `unavailable` when the link or the stream goes.
        node.dispatch_here(&who, request, None, reply);
    }
}

/// The principal a forwarded request runs as: the one its token names
/// here, which must be the one the sender named. The role is this node's
/// to know (it applies partition 0's records first).
fn run_as(
    cat: &crate::catalog::Catalog,
    tenant: TenantId,
    principal: &str,
    token_sha256: &[u8; 32],
) -> Result<Principal, ErrorReply> {
    match cat.principal_by_token(token_sha256) {
        Some(who) if who.tenant == tenant && who.name == principal => Ok(who),
        Some(_) => Err(ErrorReply::new(
            ErrorCode::AuthFailed,
            format!(
                "the node that leads has principal {principal:?}'s token under another name \
                 (nothing was done)"
            ),
        )),
        // Revoked here, and under that name there is another principal
        // now (made again after the revocation): never run as that one.
        None if cat.principal(tenant, principal).is_some() => Err(ErrorReply::new(
            ErrorCode::AuthFailed,
            format!(
                "principal {principal:?} of tenant {} was revoked (the name has another token \
                 now); nothing was done",
                tenant.0
            ),
        )),
        // Only a node that has not applied the tenant's or principal's
        // record yet (a new leader), or one that revoked it, lacks it:
        // the sender refuses the token once it applies a revocation.
        None => Err(ErrorReply::new(
            ErrorCode::Unavailable,
            format!(
                "principal {principal:?} of tenant {} is not known on the node that leads (made \
                 a moment ago, or revoked); nothing was done: retry",
                tenant.0
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::server::test_replier;
    use std::sync::atomic::AtomicBool;

    const LEADER: NodeId = NodeId(2);
    const LEADER_AT: &str = "10.0.0.2:7450";

    /// What a forwarder under test sent, to whom.
    type Sent = Arc<Mutex<Vec<(NodeId, PeerMessage)>>>;

    /// A forwarder whose sent messages are kept, with a switch for its
    /// link to the leader.
    fn forwarder() -> (Forwarder, Sent, Arc<AtomicBool>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let up = Arc::new(AtomicBool::new(true));
        let (s, u) = (sent.clone(), up.clone());
        let f = Forwarder::new(
            Arc::new(move |to, msg| {
                s.lock().unwrap().push((to, msg));
                true
            }),
            Arc::new(move |_| u.load(Ordering::Relaxed)),
        );
        (f, sent, up)
    }

    fn who() -> Principal {
        Principal {
            tenant: TenantId(3),
            tenant_name: "acme".into(),
            name: "owner".into(),
            role: crate::catalog::Role::Owner,
            token_sha256: [3; 32],
        }
    }

    /// A request passed on runs as the principal its token names on the
    /// node that leads: before, it ran as whoever had the name there, so
    /// a reader revoked and made again as a deployer under the same name
    /// had its old connections' requests run as the deployer.
    #[test]
    fn a_forwarded_request_runs_as_its_tokens_principal_and_never_another_of_its_name() {
        use crate::catalog::{Catalog, Role};
        let mut cat = Catalog::default();
        let (t, _) = cat.create_tenant("acme", "owner", false).unwrap();
        let (made, _) = cat.new_principal(t, "app", Role::Reader).unwrap();
        cat.apply(&made).unwrap();
        let old = made.entry.as_ref().unwrap().token_sha256;
        let who = run_as(&cat, t, "app", &old).unwrap();
        assert_eq!(who.role, Role::Reader);
        // Revoked, and made again under its name as a deployer.
        cat.apply(&cat.revoke_principal(t, "app").unwrap()).unwrap();
        let (again, _) = cat.new_principal(t, "app", Role::Deployer).unwrap();
        cat.apply(&again).unwrap();
        let e = run_as(&cat, t, "app", &old).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailed, "{e:?}");
        assert!(e.message.contains("was revoked"), "{}", e.message);
        // A token the node does not know (yet): retry, nothing done.
        let e = run_as(&cat, t, "ghost", &[9; 32]).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
        // The right token under another name is not taken either.
        let new = again.entry.as_ref().unwrap().token_sha256;
        let e = run_as(&cat, t, "owner", &new).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailed, "{e:?}");
        assert_eq!(run_as(&cat, t, "app", &new).unwrap().role, Role::Deployer);
    }

    fn response_body(id: u64, response: Result<Reply, ErrorReply>) -> Vec<u8> {
        let mut out = Vec::new();
        let frame = ResponseFrame {
            id,
            response,
            leader: None,
        };
        encode_response(&frame, &mut out).unwrap();
        out.split_off(PREFIX_BYTES)
    }

    #[test]
    fn a_request_goes_to_the_leader_as_its_client_and_the_answer_names_the_leader() {
        let (f, sent, _) = forwarder();
        let (replier, mut answer) = test_replier(41);
        let sql = Request::Sql {
            sql: "SELECT $1".into(),
            params: vec![crate::types::Value::Int(1)],
            timeout_ms: None,
        };
        f.forward(LEADER, Some(LEADER_AT.into()), &who(), sql.clone(), replier);
        let (to, msg) = sent.lock().unwrap().pop().unwrap();
        assert_eq!(to, LEADER);
        let PeerMessage::Forward {
            id,
            tenant,
            principal,
            token_sha256,
            request,
        } = msg
        else {
            panic!("{msg:?}")
        };
        assert_eq!(
            (tenant, principal.as_str(), token_sha256),
            (TenantId(3), "owner", [3; 32])
        );
        assert_eq!(decode_request(&request).unwrap().request, sql);
        assert!(answer.take().is_none(), "not answered before the leader");
        // Only the node it went to may answer it.
        let body = response_body(id, Ok(Reply::Value(crate::types::Value::Int(1))));
        f.answered(NodeId(3), id, &body);
        assert!(
            answer.take().is_none(),
            "another node's answer is not taken"
        );
        f.answered(LEADER, id, &body);
        let got = answer.take().unwrap();
        assert_eq!(got.id, 41, "the client's own request id");
        assert_eq!(got.response, Ok(Reply::Value(crate::types::Value::Int(1))));
        assert_eq!(got.leader.as_deref(), Some(LEADER_AT));
        assert_eq!(f.table.lock().unwrap().bytes, 0, "nothing left waiting");
    }

    #[test]
    fn a_leader_out_of_reach_gets_nothing_and_the_client_is_sent_there() {
        let (f, sent, up) = forwarder();
        up.store(false, Ordering::Relaxed);
        let (replier, mut answer) = test_replier(1);
        f.forward(
            LEADER,
            Some(LEADER_AT.into()),
            &who(),
            Request::Catalog,
            replier,
        );
        assert!(sent.lock().unwrap().is_empty());
        let e = answer.take().unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotLeader, "{e:?}");
        assert_eq!(e.leader.as_deref(), Some(LEADER_AT));
    }

    #[test]
    fn forwards_waiting_are_answered_when_the_link_drops_or_time_runs_out() {
        let (f, _, up) = forwarder();
        let (r1, mut a1) = test_replier(1);
        f.forward(LEADER, None, &who(), Request::Catalog, r1);
        f.expire(Instant::now());
        assert!(a1.take().is_none(), "in time, link up: still waiting");
        f.expire(Instant::now() + FORWARD_TIMEOUT);
        let e = a1.take().unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("may or may not"), "{e:?}");
        let (r2, mut a2) = test_replier(2);
        f.forward(LEADER, None, &who(), Request::Catalog, r2);
        up.store(false, Ordering::Relaxed);
        f.expire(Instant::now());
        let e = a2.take().unwrap().response.unwrap_err();
        assert!(e.message.contains("link to node 2 went down"), "{e:?}");
    }

    #[test]
    fn bytes_in_flight_are_bounded() {
        let (f, sent, _) = forwarder();
        let big = || Request::Sql {
            sql: "x".repeat(FORWARD_BYTES_IN_FLIGHT_MAX / 2),
            params: Vec::new(),
            timeout_ms: None,
        };
        let (r1, mut a1) = test_replier(1);
        f.forward(LEADER, None, &who(), big(), r1);
        let (r2, mut a2) = test_replier(2);
        f.forward(LEADER, None, &who(), big(), r2);
        assert!(a1.take().is_none(), "the first fits");
        let e = a2.take().unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded, "{e:?}");
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_forwarded_request_is_answered_even_when_the_leader_cannot_run_it() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = sent.clone();
        let leader = Forwarder::new(
            Arc::new(move |to, msg| {
                s.lock().unwrap().push((to, msg));
                true
            }),
            Arc::new(|_| true),
        );
        // No node behind it (as while it stops): the request is dropped.
        let mut req = Vec::new();
        encode_request(
            &RequestFrame {
                id: 5,
                request: Request::Catalog,
            },
            &mut req,
        )
        .unwrap();
        leader.run_forwarded(
            NodeId(1),
            5,
            TenantId(3),
            "owner".into(),
            [3; 32],
            &req[PREFIX_BYTES..],
        );
        let (to, msg) = sent.lock().unwrap().pop().expect("an answer went back");
        assert_eq!(to, NodeId(1));
        let PeerMessage::Forwarded { id, response } = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(id, 5);
        let e = decode_response(&response).unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
        // A reply dropped on the way (a queue dropped as the node stops)
        // still sends an answer back.
        let s = sent.clone();
        let back = AnswerBack {
            send: Arc::new(move |to, msg| {
                s.lock().unwrap().push((to, msg));
                true
            }),
            to: NodeId(1),
            id: 6,
            sent: false,
        };
        let reply: ReplyFn = Box::new(move |r| {
            let mut back = back;
            back.answer(r)
        });
        drop(reply);
        let (_, msg) = sent.lock().unwrap().pop().expect("an answer went back");
        let PeerMessage::Forwarded { id: 6, response } = msg else {
            panic!("{msg:?}")
        };
        let e = decode_response(&response).unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal, "{e:?}");
    }

    #[test]
    fn forwards_in_flight_are_bounded() {
        let (f, _, _) = forwarder();
        let mut answers = Vec::new();
        for i in 0..FORWARDS_IN_FLIGHT_MAX as u64 {
            let (r, a) = test_replier(i);
            f.forward(LEADER, None, &who(), Request::Catalog, r);
            answers.push(a);
        }
        assert!(answers.iter_mut().all(|a| a.take().is_none()));
        let (r, mut a) = test_replier(0);
        f.forward(LEADER, None, &who(), Request::Catalog, r);
        let e = a.take().unwrap().response.unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded, "{e:?}");
    }
}
