"""Which failures are sent again, and how: a real client whose connection is
replaced by a scripted one, so each failure happens exactly when asked."""

from __future__ import annotations

import asyncio

import pytest

import ohm
from ohm.aio import AsyncConnection, Retry
from ohm.config import Config

CFG = Config(host="127.0.0.1", port=1, token="t", fingerprint="sha256:" + "0" * 64, ca=None,
             server_name="localhost", streams=1, connect_timeout=1.0)


class Scripted:
    """Answers each request with the next of ``script``: an exception to
    raise, or a reply map. Records what it was sent."""

    usable = True

    def __init__(self, script):
        self.script = list(script)
        self.sent = []

    async def request(self, msg):
        self.sent.append(msg)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def close(self):
        pass


def run(conn: AsyncConnection, link: Scripted, coro):
    async def main():
        async def current():
            return link
        conn._current = current
        return await coro
    return asyncio.run(main())


VALUE = {"kind": "value", "type": "BIGINT", "value": 7}
FAST = Retry(attempts=4, base_delay=0.0001, max_delay=0.001)


def test_overloaded_is_retried_with_backoff_then_given_up():
    conn = AsyncConnection(CFG, retry=FAST)
    done = {"kind": "sql", "results": [{"kind": "done", "tag": "CREATE TABLE"}]}
    link = Scripted([ohm.Overloaded("queues full"), ohm.Overloaded("queues full"), done])
    assert run(conn, link, conn.sql("CREATE TABLE t (a BIGINT)")) == [ohm.Done("CREATE TABLE")]
    assert len(link.sent) == 3
    conn = AsyncConnection(CFG, retry=FAST)
    link = Scripted([ohm.Overloaded("full")] * 4)
    with pytest.raises(ohm.Overloaded):
        run(conn, link, conn.call("f"))
    assert len(link.sent) == 4


def test_a_call_whose_outcome_is_unknown_is_sent_again_with_the_same_key():
    conn = AsyncConnection(CFG, retry=FAST)
    lost = ohm.ConnectionLost("gone", maybe_applied=True)
    maybe = ohm.errors.from_wire({"code": "unavailable",
                                  "message": "leader changed; may or may not have taken effect"})
    assert maybe.maybe_applied
    link = Scripted([lost, maybe, VALUE])
    assert run(conn, link, conn.call("vote", 1, 2, 3)) == 7
    keys = {m["key"] for m in link.sent}
    assert len(link.sent) == 3 and len(keys) == 1


def test_sql_whose_outcome_is_unknown_is_not_sent_again():
    conn = AsyncConnection(CFG, retry=FAST)
    link = Scripted([ohm.ConnectionLost("gone", maybe_applied=True), VALUE])
    with pytest.raises(ohm.ConnectionLost) as e:
        run(conn, link, conn.sql("INSERT INTO t VALUES (1)"))
    assert e.value.maybe_applied and len(link.sent) == 1
    # Nor an unkeyed call.
    conn = AsyncConnection(CFG, retry=FAST, keyed_calls=False)
    maybe = ohm.errors.from_wire({"code": "unavailable",
                                  "message": "may or may not have taken effect"})
    link = Scripted([maybe, VALUE])
    with pytest.raises(ohm.Unavailable):
        run(conn, link, conn.call("vote", 1, 2, 3))
    assert "key" not in link.sent[0]


def test_what_was_not_applied_is_sent_again_and_errors_are_not():
    conn = AsyncConnection(CFG, retry=FAST)
    stopping = ohm.errors.from_wire({"code": "unavailable",
                                     "message": "the node is stopping; not applied"})
    link = Scripted([stopping, ohm.errors.from_wire({"code": "not_leader", "message": "x"}),
                     {"kind": "sql", "results": [{"kind": "affected", "count": 1}]}])
    assert run(conn, link, conn.sql("DELETE FROM t")) == [ohm.Affected(1)]
    conn = AsyncConnection(CFG, retry=FAST)
    link = Scripted([ohm.errors.from_wire({"code": "sql", "message": "no table t"})])
    with pytest.raises(ohm.SqlError):
        run(conn, link, conn.sql("DELETE FROM t"))
    assert len(link.sent) == 1


def test_unknown_codes_are_internal_but_keep_their_code():
    e = ohm.errors.from_wire({"code": "brand_new", "message": "m", "leader": "10.0.0.1:7450"})
    assert isinstance(e, ohm.NodeInternalError) and e.code == "brand_new"
    assert e.leader == "10.0.0.1:7450"
