"""The synchronous client: the asyncio client run on an event loop in a
thread of its own, so plain code (and several threads at once) can use it.

    import ohm
    with ohm.connect() as db:              # a local node's ohm-data/, or a DSN
        db.call("vote", 2125551234, 3, 2)
        print(db.call("results").rows)

``submit_call`` and ``submit_sql`` return a ``concurrent.futures.Future``
without waiting, so one thread can keep many requests in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Iterable, Sequence

from . import aio
from .config import resolve
from .errors import InterfaceError


class _Loop:
    """An event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ohm-client",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: float | None = None) -> Any:
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Connection:
    """A synchronous client of one node; safe to share between threads."""

    def __init__(self, conn: aio.AsyncConnection, loop: _Loop):
        self._conn = conn
        self._loop = loop
        self._closed = False

    def _run(self, coro) -> Any:
        if self._closed:
            coro.close()
            raise InterfaceError("the connection is closed")
        return self._loop.run(coro)

    @property
    def session(self) -> dict:
        return self._conn.session

    @property
    def config(self):
        return self._conn.config

    def call(self, procedure: str, *args: Any, key: str | None = None,
             timeout_ms: int | None = None) -> Any:
        return self._run(self._conn.call(procedure, *args, key=key, timeout_ms=timeout_ms))

    def submit_call(self, procedure: str, *args: Any, key: str | None = None,
                    timeout_ms: int | None = None) -> concurrent.futures.Future:
        """``call`` without waiting: the answer (or error) is the future's."""
        if self._closed:
            raise InterfaceError("the connection is closed")
        return self._loop.submit(self._conn.call(procedure, *args, key=key,
                                                 timeout_ms=timeout_ms))

    def sql(self, sql: str, params: Sequence[Any] | None = None, *,
            timeout_ms: int | None = None) -> list:
        return self._run(self._conn.sql(sql, params, timeout_ms=timeout_ms))

    def submit_sql(self, sql: str, params: Sequence[Any] | None = None, *,
                   timeout_ms: int | None = None) -> concurrent.futures.Future:
        if self._closed:
            raise InterfaceError("the connection is closed")
        return self._loop.submit(self._conn.sql(sql, params, timeout_ms=timeout_ms))

    def query(self, sql: str, params: Sequence[Any] | None = None, *,
              timeout_ms: int | None = None) -> aio.Rows:
        return self._run(self._conn.query(sql, params, timeout_ms=timeout_ms))

    def load(self, table: str, rows: Iterable[Sequence[Any]], **kwargs: Any) -> aio.Loaded:
        return self._run(self._conn.load(table, rows, **kwargs))

    def deploy(self, name: str, wasm) -> dict:
        return self._run(self._conn.deploy(name, wasm))

    def drop(self, name: str) -> dict:
        return self._run(self._conn.drop(name))

    def catalog(self) -> dict:
        return self._run(self._conn.catalog())

    def status(self) -> dict:
        return self._run(self._conn.status())

    def request(self, op: str, **fields: Any) -> dict:
        return self._run(self._conn.request(op, **fields))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._conn.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(dsn: str | None = None, *, retry: aio.Retry = aio.Retry(), keyed_calls: bool = True,
            **kwargs: Any) -> Connection:
    """Connects and authenticates; settings as ``ohm.config.resolve``."""
    cfg = resolve(dsn, **kwargs)
    loop = _Loop()
    conn = aio.AsyncConnection(cfg, retry=retry, keyed_calls=keyed_calls)
    try:
        loop.run(conn._current())
    except BaseException:
        loop.run(conn.close())
        loop.stop()
        raise
    return Connection(conn, loop)
