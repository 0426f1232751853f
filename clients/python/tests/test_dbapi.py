"""PEP 249 against a real node."""

from __future__ import annotations

import decimal

import pytest

import ohm
import ohm.dbapi as dbapi


def test_module_globals():
    assert dbapi.apilevel == "2.0" and dbapi.paramstyle == "qmark"
    assert dbapi.threadsafety == 2
    assert issubclass(dbapi.IntegrityError, dbapi.DatabaseError)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    assert issubclass(ohm.Overloaded, dbapi.OperationalError)
    assert issubclass(ohm.SqlError, dbapi.DatabaseError)


def test_execute_fetch_and_describe(initialized):
    node = initialized
    conn = dbapi.connect(node.dsn(fingerprint=node.fingerprint))
    cur = conn.cursor()
    cur.execute("CREATE TABLE prices (id BIGINT PRIMARY KEY, name VARCHAR(20), "
                "price DECIMAL(10,2))")
    assert cur.description is None and cur.rowcount == -1
    cur.executemany("INSERT INTO prices VALUES (?, ?, ?)",
                    [(i, f"item {i}", decimal.Decimal(i) / 4) for i in range(1, 6)])
    assert cur.rowcount == 5
    cur.execute("UPDATE prices SET price = price * 2 WHERE id > ?", (3,))
    assert cur.rowcount == 2
    cur.execute("SELECT id, name, price FROM prices WHERE id >= ? ORDER BY id", [2])
    d = cur.description
    assert [x[0] for x in d] == ["id", "name", "price"]
    assert d[0][1] == dbapi.NUMBER and d[1][1] == dbapi.STRING and d[2][1] == dbapi.NUMBER
    assert d[1][3] == 20 and (d[2][4], d[2][5]) == (10, 2)
    assert cur.rowcount == 4
    assert cur.fetchone() == (2, "item 2", decimal.Decimal("0.50"))
    cur.arraysize = 2
    assert cur.fetchmany() == [(3, "item 3", decimal.Decimal("0.75")),
                               (4, "item 4", decimal.Decimal("2.00"))]
    assert cur.fetchall() == [(5, "item 5", decimal.Decimal("2.50"))]
    assert cur.fetchone() is None
    # Several statements: nextset moves through their results.
    cur.execute("SELECT COUNT(*) FROM prices; DELETE FROM prices WHERE id = 1; SELECT 7")
    assert cur.fetchall() == [(5,)]
    assert cur.nextset() is True and cur.rowcount == 1
    assert cur.nextset() is True and cur.fetchall() == [(7,)]
    assert cur.nextset() is None
    # A procedure through callproc.
    cur.callproc("results")
    assert len(cur.fetchall()) == 6
    conn.commit()
    conn.rollback()  # nothing pending: every statement committed as it ran
    cur.executemany("CREATE TABLE IF NOT EXISTS prices2 (id BIGINT PRIMARY KEY)", [()])
    assert cur.rowcount == -1
    with pytest.raises(dbapi.DatabaseError):
        cur.execute("SELECT nope FROM prices")
    with pytest.raises(dbapi.ProgrammingError):
        cur.execute("SELECT ?", {"a": 1})
    conn.close()
    with pytest.raises(dbapi.InterfaceError):
        conn.cursor()


def test_type_objects_compare_with_type_codes():
    assert dbapi.DATETIME == "TIMESTAMPTZ" and dbapi.BINARY == "VARBINARY(16)"
    assert dbapi.STRING != "BIGINT" and dbapi.NUMBER == "DECIMAL(10,2)"
    assert dbapi.NUMBER != "BOOLEAN"
