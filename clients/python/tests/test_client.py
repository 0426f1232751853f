"""The clients against a real node: calls, SQL with parameters, values both
ways, certificates, typed errors, pipelining, loads, deploys, tenants."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from pathlib import Path

import pytest

import ohm
import ohm.aio
from conftest import wasm_dir
from ohm import Interval


def test_vote_results_and_a_parameterized_query(initialized):
    node = initialized
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        assert db.session["tenant"] == "demo"
        before = sum(r[2] for r in db.call("results").rows)
        assert db.call("vote", 2125550001, 3, 2) == 0  # accepted
        assert db.call("vote", 2125550001, 999, 2) == 1  # no such contestant
        results = db.call("results")
        assert [c.name for c in results.columns][:3] == ["contestant_name", "contestant_number",
                                                        "total_votes"]
        assert sum(r[2] for r in results.rows) == before + 1
        rows = db.query("SELECT phone_number, contestant_number FROM votes "
                        "WHERE phone_number = $1", [2125550001])
        assert rows.rows == [[2125550001, 3]]
        assert rows.columns[0].type == "BIGINT"


def test_values_round_trip_through_a_table(node):
    ts = dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    aware = dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        db.sql("CREATE TABLE typed (id BIGINT PRIMARY KEY, d DECIMAL(12,3), t TIMESTAMP, "
               "tz TIMESTAMPTZ, day DATE, tm TIME, iv INTERVAL, u UUID, b VARBINARY, "
               "ok BOOLEAN, f DOUBLE, s TEXT)")
        inserted = db.sql("INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                          "$11, $12)",
                          [1, decimal.Decimal("-12345.678"), ts, aware, dt.date(1969, 7, 20),
                           dt.time(23, 59, 58, 5), Interval(14, 3, 4_000_001), u, b"\x00\xff",
                           True, 2.5, "naïve ☃"])
        assert inserted == [ohm.Affected(1)]
        db.sql("INSERT INTO typed (id) VALUES (2)")
        rows = db.query("SELECT * FROM typed ORDER BY id")
    assert [c.type for c in rows.columns] == [
        "BIGINT", "DECIMAL(12,3)", "TIMESTAMP", "TIMESTAMPTZ", "DATE", "TIME", "INTERVAL",
        "UUID", "VARBINARY", "BOOLEAN", "DOUBLE", "TEXT"]
    assert rows.rows[0] == [
        1, decimal.Decimal("-12345.678"), ts, dt.datetime(2024, 1, 2, 3, 4, 5,
                                                          tzinfo=dt.timezone.utc),
        dt.date(1969, 7, 20), dt.time(23, 59, 58, 5), Interval(14, 3, 4_000_001), u,
        b"\x00\xff", True, 2.5, "naïve ☃"]
    assert isinstance(rows.rows[0][1], decimal.Decimal)
    assert rows.rows[1] == [2] + [None] * 11
    assert rows.dicts()[0]["s"] == "naïve ☃"


def test_a_procedure_call_converts_arguments_by_its_parameters(node):
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        assert db.call("put", "py-key", b"\x01\x02") >= 1  # the key's version
        assert db.call("get", "py-key") == b"\x01\x02"
        assert db.call("get", "py-missing") is None


def test_pinning_checks_the_fingerprint(node):
    token = node.token()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ohm.CertificateError) as e:
        ohm.connect(node.dsn(fingerprint=wrong))
    assert wrong in str(e.value) and node.fingerprint in str(e.value)
    # Colons and upper case, as openssl prints a fingerprint, are accepted.
    hexed = node.fingerprint[7:].upper()
    spaced = "SHA256:" + ":".join(hexed[i:i + 2] for i in range(0, 64, 2))
    with ohm.connect(addr=node.addr, token=token, fingerprint=spaced) as db:
        assert db.status()["kind"] == "status"


def test_a_ca_file_is_checked_with_the_server_name(node):
    with ohm.connect(node.dsn(ca=str(node.cert))) as db:
        assert db.catalog()["tenant"] == "demo"
    with pytest.raises(ohm.CertificateError) as e:
        ohm.connect(node.dsn(ca=str(node.cert), server_name="db.example.com"))
    # aioquic's reason, passed on: the name is not in the certificate.
    assert "doesn't match" in str(e.value), str(e.value)
    # Another certificate as the CA: the node's is not trusted.
    other = Path(__file__).parent / "other-ca.pem"
    with pytest.raises(ohm.CertificateError):
        ohm.connect(node.dsn(ca=str(other)))


def test_errors_are_typed_by_their_code(node):
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        with pytest.raises(ohm.UnknownProcedure) as e:
            db.call("no_such_procedure")
        assert e.value.code == "unknown_procedure" and "no_such_procedure" in e.value.message
        with pytest.raises(ohm.SqlError) as e:
            db.sql("SELEC 1")
        assert isinstance(e.value, ohm.DatabaseError)
        with pytest.raises(ohm.BadArguments):
            db.call("vote", "not a number", 1, 2)
        with pytest.raises(ohm.DataError):
            db.call("vote", 2**64, 1, 2)
        with pytest.raises(ohm.Forbidden):
            db.request("create_tenant", name="evil")
        # The connection still serves.
        assert db.query("SELECT 1 + 1").rows == [[2]]
    with pytest.raises(ohm.AuthFailed):
        ohm.connect(node.dsn(token="ohm_" + "0" * 64, fingerprint=node.fingerprint))


def test_the_asyncio_client_pipelines_many_calls(initialized):
    node = initialized

    async def main() -> None:
        async with await ohm.aio.connect(node.dsn(fingerprint=node.fingerprint, streams="8")) as db:
            phones = range(2125560000, 2125562000)
            codes = await asyncio.gather(*(db.call("vote", p, 1 + p % 6, 2) for p in phones))
            assert codes == [0] * 2000
            rows = await db.query("SELECT COUNT(*) FROM votes WHERE phone_number BETWEEN $1 AND $2",
                                  [2125560000, 2125561999])
            assert rows.rows == [[2000]]

    asyncio.run(main())


def test_a_keyed_call_sent_again_is_applied_once(initialized):
    node = initialized
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        key = "py-test-once"
        assert db.call("vote", 2125570001, 2, 2, key=key) == 0
        assert db.call("vote", 2125570001, 2, 2, key=key) == 0  # the first answer
        n = db.query("SELECT COUNT(*) FROM votes WHERE phone_number = $1", [2125570001])
        assert n.rows == [[1]]


def test_the_sync_client_keeps_many_calls_in_flight(initialized):
    node = initialized
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        futures = [db.submit_call("vote", 2125580000 + i, 4, 2) for i in range(500)]
        assert [f.result() for f in futures] == [0] * 500


def test_load_deploy_drop_and_tenants(node):
    admin_token = node.token("admin.token")
    with ohm.connect(node.dsn(token=admin_token, fingerprint=node.fingerprint)) as admin:
        made = admin.request("create_tenant", name="pyclient")
        assert made["kind"] == "tenant_created"
        assert admin.status()["partitions"]
    kv = wasm_dir() / "ohm_kv.wasm"
    with ohm.connect(node.dsn(token=made["token"], fingerprint=node.fingerprint)) as db:
        assert db.session["tenant"] == "pyclient" and db.session["role"] == "owner"
        db.sql("CREATE TABLE kv (k VARCHAR(256) PRIMARY KEY, v VARBINARY(1048576) NOT NULL, "
               "version BIGINT NOT NULL); PARTITION TABLE kv ON COLUMN k")
        deployed = db.deploy("kv", kv)
        assert "put" in deployed["procedures"] and deployed["replaced"] is False
        assert db.call("put", "a", b"1") == 1
        cat = db.catalog()
        assert [t["name"] for t in cat["tables"]] == ["kv"]
        assert {"get", "put", "cas", "delete"} <= {p["name"] for p in cat["procedures"]}
        chunk = [["b", b"2", 1], ["c", b"3", 1], ["a", b"dup", 1]]
        loaded = db.load("kv", chunk, max_errors=1, key="py-load-1")
        assert loaded.loaded == 2 and len(loaded.rejected) == 1
        assert loaded.rejected[0]["row"] == 3
        again = db.load("kv", chunk, max_errors=1, key="py-load-1")
        assert again.again is True and again.loaded == 2
        assert db.query("SELECT COUNT(*) FROM kv").rows == [[3]]
        dropped = db.drop("kv")
        assert dropped["existed"] is True
        with pytest.raises(ohm.UnknownProcedure):
            db.call("put", "a", b"1")


def test_the_token_is_never_shown(node):
    token = node.token()
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        assert token not in repr(db.config)
    # An address typed where the token goes: the error does not echo it.
    with pytest.raises(ohm.ConfigError) as e:
        ohm.connect(f"ohm://{token}:7450x?fingerprint={node.fingerprint}")
    assert token not in str(e.value)


def test_a_stream_the_node_closes_fails_only_its_request(node):
    """A malformed request makes the node answer bad_request and finish that
    stream; the requests behind it on the stream were not read, so they are
    sent again on another stream, and every one is answered."""

    async def main() -> None:
        async with await ohm.aio.connect(node.dsn(fingerprint=node.fingerprint,
                                                  streams="1")) as db:
            link = await db._current()
            bad = asyncio.ensure_future(link.request({"op": "no_such_op"}))
            good = [asyncio.ensure_future(db.query("SELECT $1", [i])) for i in range(200)]
            with pytest.raises(ohm.BadRequest):
                await bad
            rows = await asyncio.gather(*good)
            assert [r.rows for r in rows] == [[[i]] for i in range(200)]

    asyncio.run(main())


def test_closing_ends_every_request_still_in_flight(initialized):
    node = initialized
    db = ohm.connect(node.dsn(fingerprint=node.fingerprint))
    futures = [db.submit_call("vote", 2125590000 + i, 5, 2) for i in range(2000)]
    db.close()
    import concurrent.futures
    done, pending = concurrent.futures.wait(futures, timeout=30)
    assert not pending, f"{len(pending)} requests were left waiting"
    for f in done:
        assert f.cancelled() or f.exception() is None or isinstance(f.exception(), ohm.Error)


def test_decimal_parameters_compare_through_a_cast(node):
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        db.sql("CREATE TABLE priced (id BIGINT PRIMARY KEY, price DECIMAL(10,2))")
        db.sql("INSERT INTO priced VALUES ($1, $2)", [1, decimal.Decimal("9.99")])
        rows = db.query("SELECT id FROM priced WHERE price = CAST($1 AS DECIMAL(10,2))",
                        [decimal.Decimal("9.99")])
        assert rows.rows == [[1]]


def test_a_time_of_24_00_is_refused_not_rounded(node):
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        with pytest.raises(ohm.DataError, match="24:00:00"):
            db.query("SELECT CAST('24:00:00' AS TIME)")
