"""PEP 249 (DB-API 2.0) over the synchronous client, for SQL.

    import ohm.dbapi
    conn = ohm.dbapi.connect()             # or connect("ohm://TOKEN@host:port?...")
    cur = conn.cursor()
    cur.execute("SELECT contestant_number, COUNT(*) FROM votes GROUP BY 1 ORDER BY 1")
    print(cur.description, cur.fetchall())

Each statement commits on its own (Ohm's ad-hoc SQL autocommits):
``commit()`` and ``rollback()`` have nothing to do (nothing is ever
pending; statements that must commit together belong in a procedure). ``paramstyle`` is ``qmark`` (``?``); ``$1``, ``$2``...
work too and are better for a partitioned table's partition column (a
``$n`` there runs on one partition; a ``?`` asks every partition).
``execute`` may run several statements separated by ``;``: ``nextset()``
moves to the next one's result. ``callproc`` calls a stored procedure.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from typing import Any, Sequence

from . import aio
from .errors import (DatabaseError, DataError, Error, IntegrityError, InterfaceError,
                     InternalError, NotSupportedError, OperationalError, ProgrammingError,
                     Warning)
from .sync import Connection as _SyncConnection
from .sync import connect as _sync_connect
from .values import base_type

apilevel = "2.0"
#: Threads may share the module and connections (not cursors).
threadsafety = 2
paramstyle = "qmark"

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks",
    "Binary", "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID",
]

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> _dt.date:
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    return Timestamp(*_time.localtime(ticks)[:6])


class _TypeObject:
    """Compares equal to each type code (``cursor.description[i][1]``) of
    its group, as PEP 249 asks."""

    def __init__(self, *codes: str):
        self.codes = frozenset(codes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and base_type(other) in self.codes

    def __hash__(self) -> int:
        return hash(self.codes)

    def __repr__(self) -> str:
        return f"TypeObject({', '.join(sorted(self.codes))})"


STRING = _TypeObject("TEXT", "VARCHAR", "UUID")
BINARY = _TypeObject("VARBINARY")
NUMBER = _TypeObject("SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "NUMERIC")
DATETIME = _TypeObject("TIMESTAMP", "TIMESTAMPTZ", "DATE", "TIME", "INTERVAL")
ROWID = _TypeObject()


def _describe(col: aio.Column) -> tuple:
    """(name, type_code, display_size, internal_size, precision, scale, null_ok):
    the type code is the SQL type the node names; precision and scale are
    a DECIMAL's, a VARCHAR's length is its internal size."""
    t = col.type
    precision = scale = internal = None
    if t and "(" in t and t.endswith(")"):
        inside = [x.strip() for x in t[t.index("(") + 1:-1].split(",")]
        try:
            nums = [int(x) for x in inside]
        except ValueError:
            nums = []
        if base_type(t) in ("DECIMAL", "NUMERIC") and len(nums) == 2:
            precision, scale = nums
        elif len(nums) == 1:
            internal = nums[0]
    return (col.name, t, None, internal, precision, scale, None)


class Cursor:
    def __init__(self, conn: "Connection"):
        self.connection = conn
        self.arraysize = 1
        self._results: list = []
        self._rows: list[tuple] | None = None
        self._pos = 0
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self.lastrowid = None
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self.connection._check()

    def _show(self, result) -> None:
        self._pos = 0
        if isinstance(result, aio.Rows):
            self.description = [_describe(c) for c in result.columns]
            self._rows = [tuple(r) for r in result.rows]
            self.rowcount = len(self._rows)
        else:
            self.description = None
            self._rows = None
            self.rowcount = result.count if isinstance(result, aio.Affected) else -1

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> "Cursor":
        self._check()
        if parameters is not None and isinstance(parameters, dict):
            raise ProgrammingError("parameters are positional (paramstyle qmark, or $1, $2...): "
                                   "pass a sequence, not a mapping")
        results = self.connection._conn.sql(operation, list(parameters or []))
        self._results = results[1:]
        if results:
            self._show(results[0])
        else:
            self.description, self._rows, self.rowcount = None, None, -1
        return self

    def executemany(self, operation: str, seq_of_parameters) -> "Cursor":
        """Runs the statement once per parameter sequence, in order;
        ``rowcount`` is the sum of the rows each affected."""
        self._check()
        total = None
        for params in seq_of_parameters:
            self.execute(operation, params)
            if self.rowcount >= 0 and self._rows is None:
                total = (total or 0) + self.rowcount
        self.description, self._rows = None, None
        self.rowcount = -1 if total is None else total
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Calls a stored procedure: its rows are the cursor's result (a
        procedure that returns one value gives one row of one column)."""
        self._check()
        out = self.connection._conn.call(procname, *parameters)
        self._results = []
        if isinstance(out, aio.Rows):
            self._show(out)
        else:
            self._show(aio.Rows([aio.Column(procname, None)], [[out]]))
        return parameters

    def nextset(self) -> bool | None:
        self._check()
        if not self._results:
            return None
        self._show(self._results.pop(0))
        return True

    def _need_rows(self) -> list[tuple]:
        self._check()
        if self._rows is None:
            raise ProgrammingError("the last statement returned no rows to fetch")
        return self._rows

    def fetchone(self) -> tuple | None:
        rows = self._need_rows()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        rows = self._need_rows()
        n = self.arraysize if size is None else size
        out = rows[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def fetchall(self) -> list[tuple]:
        rows = self._need_rows()
        out = rows[self._pos:]
        self._pos = len(rows)
        return out

    def __iter__(self):
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass

    def close(self) -> None:
        self._closed = True
        self._rows = None
        self._results = []

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Connection:
    # PEP 249's optional extension: the exceptions on the connection.
    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, conn: _SyncConnection):
        self._conn = conn
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the connection is closed")

    @property
    def client(self) -> _SyncConnection:
        """The synchronous client underneath, for procedures and loads."""
        return self._conn

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

    def commit(self) -> None:
        """Every statement committed when it ran: nothing to do."""
        self._check()

    def rollback(self) -> None:
        """Every statement committed when it ran: nothing is pending, so
        nothing to roll back (pools call this on every return)."""
        self._check()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(dsn: str | None = None, **kwargs: Any) -> Connection:
    """A DB-API connection; arguments as ``ohm.connect``."""
    return Connection(_sync_connect(dsn, **kwargs))
