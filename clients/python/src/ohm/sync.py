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
import contextlib
import threading
import weakref
from typing import Any, Iterable, Sequence

from . import aio
from .config import resolve
from .errors import InterfaceError


#: How long closing waits for cancelled requests to wind down.
STOP_WAIT_S = 5.0


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
        """Cancels what still runs (its futures end with CancelledError),
        then stops the loop and its thread."""
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(STOP_WAIT_S)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
        self.loop.close()


class Connection:
    """A synchronous client of one node; safe to share between threads."""

    def __init__(self, conn: aio.AsyncConnection, loop: _Loop):
        self._conn = conn
        self._loop = loop
        self._closed = False
        # Requests submitted and not yet answered: ``submit_*`` waits past
        # this many, so a loop of submits cannot grow without bound.
        self._slots = threading.BoundedSemaphore(aio.IN_FLIGHT_MAX)
        # A connection dropped without close() still closes (its thread,
        # its QUIC connection and its place in the tenant's quota).
        self._finalizer = weakref.finalize(self, _shutdown, conn, loop)

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

    def _submit(self, coro) -> concurrent.futures.Future:
        if self._closed:
            coro.close()
            raise InterfaceError("the connection is closed")
        self._slots.acquire()
        fut = self._loop.submit(coro)
        fut.add_done_callback(lambda _: self._slots.release())
        return fut

    def submit_call(self, procedure: str, *args: Any, key: str | None = None,
                    timeout_ms: int | None = None) -> concurrent.futures.Future:
        """``call`` without waiting: the answer (or error) is the future's.
        Waits while ``aio.IN_FLIGHT_MAX`` submitted requests are unanswered."""
        return self._submit(self._conn.call(procedure, *args, key=key, timeout_ms=timeout_ms))

    def sql(self, sql: str, params: Sequence[Any] | None = None, *,
            timeout_ms: int | None = None) -> list:
        return self._run(self._conn.sql(sql, params, timeout_ms=timeout_ms))

    def submit_sql(self, sql: str, params: Sequence[Any] | None = None, *,
                   timeout_ms: int | None = None) -> concurrent.futures.Future:
        return self._submit(self._conn.sql(sql, params, timeout_ms=timeout_ms))

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
        """Closes the connection; requests still unanswered end with
        ``concurrent.futures.CancelledError``."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shutdown(conn: aio.AsyncConnection, loop: _Loop) -> None:
    with contextlib.suppress(Exception):
        loop.run(conn.close(), STOP_WAIT_S)
    loop.stop()


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
