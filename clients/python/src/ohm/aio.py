"""The asyncio client: one QUIC connection to a node, requests spread over
several streams and pipelined (docs/PROTOCOL.md).

    import ohm.aio
    async with await ohm.aio.connect("ohm://TOKEN@127.0.0.1:7450?fingerprint=sha256:...") as db:
        await db.call("vote", 2125551234, 3, 2)
        rows = await db.query("SELECT * FROM votes WHERE phone_number = $1", [2125551234])

Retries (``Retry``): ``overloaded``, ``not_leader`` and an ``unavailable``
that says nothing was applied are sent again with exponential backoff, up to
``Retry.attempts`` times. After an unknown outcome (the connection lost, or
``unavailable`` saying it "may or may not have taken effect") only a call
with an idempotency key is sent again, with the same key, on a new
connection: the node applies it at most once. Every call gets a fresh key
unless ``keyed_calls=False``; ad-hoc SQL, deploys and the rest are never
sent again after an unknown outcome (the error says so:
``maybe_applied``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import random
import secrets
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import msgpack
from aioquic.asyncio import QuicConnectionProtocol
from aioquic.asyncio import connect as quic_connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import errors, values
from .config import Config, resolve
from .errors import (CertificateError, ConnectionLost, Error, InterfaceError, ProtocolError,
                     TooLarge)

ALPN = "ohm/1"
#: A frame's body is at most 40 MiB (the node's limit).
FRAME_BYTES_MAX = 40 * 1024 * 1024
#: Requests this client has unanswered on one connection before a new one
#: waits (the node reads up to 4,096 per connection, then stops reading).
IN_FLIGHT_MAX = 4096
#: QUIC windows the node also uses: 8 MiB a stream, 48 MiB a connection.
STREAM_WINDOW = 8 * 1024 * 1024
CONNECTION_WINDOW = 48 * 1024 * 1024
#: The node's idle timeout is 30 s; a PING every 10 s keeps a quiet
#: connection open.
IDLE_TIMEOUT = 30.0
PING_EVERY = 10.0
#: Idempotency keys are 1 to 128 bytes; ours are "py-" + 16 random hex
#: digits + "-" + a counter.
KEY_BYTES_MAX = 128


@dataclass(frozen=True)
class Retry:
    """How requests the node refused for now are sent again."""

    #: Sends of one request in all (1: never again).
    attempts: int = 8
    #: The first wait, doubled each time (with jitter) up to ``max_delay``.
    base_delay: float = 0.005
    max_delay: float = 1.0

    def delay(self, attempt: int) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** attempt))
        return d / 2 + random.random() * d / 2


NO_RETRY = Retry(attempts=1)


@dataclass
class Column:
    name: str
    #: The SQL type the node names (``BIGINT``, ``DECIMAL(10,2)``), or None.
    type: str | None


@dataclass
class Rows:
    """A query's or a procedure's rows, values converted (``ohm.values``)."""

    columns: list[Column]
    rows: list[list[Any]]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, r)) for r in self.rows]


@dataclass
class Affected:
    """An INSERT's, UPDATE's or DELETE's count of rows."""

    count: int


@dataclass
class Done:
    """A statement that returns no rows and counts none (DDL): its tag."""

    tag: str


@dataclass
class Loaded:
    loaded: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    again: bool = False


def _field(r: Any, name: str, kind: type | tuple) -> Any:
    """``r[name]``, of type ``kind``, or a ProtocolError naming what is wrong."""
    v = r.get(name) if isinstance(r, dict) else None
    if not isinstance(v, kind):
        raise ProtocolError(f"the node's reply has no {name!r} of the expected type: {r!r:.200}")
    return v


def _rows(r: dict) -> Rows:
    cols = [Column(_field(c, "name", str), c.get("type")) for c in _field(r, "columns", list)]
    types = [c.type for c in cols]
    out = []
    for row in _field(r, "rows", list):
        if not isinstance(row, list) or len(row) != len(cols):
            raise ProtocolError(f"a row of {len(cols)} columns expected, got {row!r:.200}")
        out.append([values.decode(v, t) for v, t in zip(row, types)])
    return Rows(cols, out)


def _result(r: dict) -> Rows | Affected | Done:
    kind = r.get("kind") if isinstance(r, dict) else None
    if kind == "rows":
        return _rows(r)
    if kind == "affected":
        return Affected(_field(r, "count", int))
    if kind == "done":
        return Done(_field(r, "tag", str))
    raise ProtocolError(f"unknown SQL result kind {kind!r}")


class _Protocol(QuicConnectionProtocol):
    """Keeps why the connection ended, for error messages."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        super().quic_event_received(event)


def _recording(made: list) -> Any:
    """A protocol factory that keeps what it made: a handshake that fails
    inside aioquic's connect() leaves only the protocol to say why."""
    def create(*args: Any, **kwargs: Any) -> _Protocol:
        p = _Protocol(*args, **kwargs)
        made.append(p)
        return p
    return create


def _why(protocol: _Protocol | None) -> str:
    t = protocol.terminated if protocol else None
    if t is None:
        return "the connection closed"
    reason = t.reason_phrase or "no reason given"
    return f"the connection closed (code {t.error_code:#x}: {reason})"


def _quic_config(cfg: Config, *, pin_pem: bytes | None, server_name: str,
                 verify: bool) -> QuicConfiguration:
    q = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], idle_timeout=IDLE_TIMEOUT,
                          max_data=CONNECTION_WINDOW, max_stream_data=STREAM_WINDOW,
                          server_name=server_name)
    if not verify:
        q.verify_mode = ssl.CERT_NONE
    else:
        q.verify_mode = ssl.CERT_REQUIRED
        if pin_pem is not None:
            q.cadata = pin_pem
        else:
            q.load_verify_locations(cafile=cfg.ca)
    return q


def _frame(msg: dict) -> bytes:
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > FRAME_BYTES_MAX:
        raise TooLarge(f"a request of {len(body)} bytes is over the 40 MiB frame limit "
                       "(send less: fewer rows a load chunk, a smaller module)")
    return struct.pack(">I", len(body)) + body


class _Stream:
    def __init__(self, link: "_Link", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.link = link
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future] = {}
        self.open = True
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        why = "the node finished the stream"
        # Whether the requests left unanswered may have been read: not when
        # the node finished the stream cleanly (it answers everything it
        # read first: docs/PROTOCOL.md, "What closes what").
        maybe = True
        try:
            while True:
                head = await self.reader.readexactly(4)
                (n,) = struct.unpack(">I", head)
                if n > FRAME_BYTES_MAX:
                    why = f"the node sent a frame of {n} bytes, over the 40 MiB limit"
                    break
                body = await self.reader.readexactly(n)
                try:
                    msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
                except Exception as e:  # msgpack raises several types
                    why = f"the node sent a frame that is not MessagePack ({e})"
                    break
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), int):
                    why = f"the node sent a response without an id: {msg!r:.200}"
                    break
                fut = self.pending.pop(msg["id"], None)
                if fut is None and msg["id"] == 0 and len(self.pending) == 1:
                    # The node could not read that request's id: it is the one.
                    fut = self.pending.pop(next(iter(self.pending)))
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except asyncio.IncompleteReadError as e:
            protocol = self.link.protocol
            if not e.partial and protocol is not None and protocol.terminated is None:
                maybe = False
            else:
                why = _why(protocol)
        except ConnectionError:
            why = _why(self.link.protocol)
        except asyncio.CancelledError:
            why = "the client closed the connection"
        finally:
            self.open = False
            for fut in self.pending.values():
                if fut.done():
                    continue
                if maybe:
                    fut.set_exception(ConnectionLost(
                        f"{why} before the answer came: the request may or may not "
                        "have taken effect", maybe_applied=True))
                else:
                    fut.set_exception(ConnectionLost(
                        f"{why} before reading this request: it was not applied",
                        maybe_applied=False))
            self.pending.clear()

    def send(self, msg: dict, frame: bytes) -> asyncio.Future:
        try:
            self.writer.write(frame)
        except Exception as e:  # aioquic raises RuntimeError on a reset stream
            self.open = False
            raise ConnectionLost(f"the stream closed before the request was sent ({e}); "
                                 "it was not applied", maybe_applied=False) from None
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg["id"]] = fut
        return fut


class _Link:
    """One QUIC connection, authenticated, and its streams."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.exit = contextlib.AsyncExitStack()
        self.protocol: _Protocol | None = None
        self.streams: list[_Stream] = []
        self.ids = itertools.count(1)
        self.slots = asyncio.Semaphore(IN_FLIGHT_MAX)
        self.session: dict = {}
        self.pinger: asyncio.Task | None = None
        self.closed = False

    async def open(self) -> None:
        cfg = self.cfg
        pin_pem, server_name = None, cfg.server_name
        if cfg.fingerprint:
            pin_pem, server_name = await _fetch_pinned(cfg)
        q = _quic_config(cfg, pin_pem=pin_pem, server_name=server_name, verify=True)
        made: list[_Protocol] = []
        try:
            self.protocol = await asyncio.wait_for(
                self.exit.enter_async_context(
                    quic_connect(cfg.host, cfg.port, configuration=q,
                                 create_protocol=_recording(made))),
                cfg.connect_timeout)
        except asyncio.TimeoutError:
            await self.exit.aclose()
            raise InterfaceError(f"no answer from {cfg.addr} within {cfg.connect_timeout} s "
                                 "(is the node running, and is that its address?)") from None
        except ConnectionError:
            await self.exit.aclose()
            raise _handshake_error(cfg, made[0] if made else None,
                                   pin=bool(cfg.fingerprint)) from None
        except OSError as e:
            await self.exit.aclose()
            raise InterfaceError(f"connecting to {cfg.addr}: {e}") from None
        try:
            reply = await asyncio.wait_for(self.request({"op": "auth", "token": cfg.token}),
                                           cfg.connect_timeout)
        except asyncio.TimeoutError:
            raise InterfaceError(f"{cfg.addr} did not answer auth within "
                                 f"{cfg.connect_timeout} s") from None
        self.session = reply
        self.pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(PING_EVERY)
                await self.protocol.ping()

    @property
    def usable(self) -> bool:
        return (not self.closed and self.protocol is not None
                and self.protocol.terminated is None)

    async def request(self, msg: dict) -> Any:
        """Sends one request; the reply's ``ok`` map, or raises its error."""
        async with self.slots:
            if self.closed or self.protocol is None or self.protocol.terminated is not None:
                raise ConnectionLost(f"{_why(self.protocol)}; the request was not sent")
            frame_msg = {"id": next(self.ids), **msg}
            frame = _frame(frame_msg)
            live = [s for s in self.streams if s.open]
            stream = min(live, key=lambda s: len(s.pending), default=None)
            if stream is None or (stream.pending and len(live) < self.cfg.streams):
                # A new stream; aioquic gives it an id only once data is
                # written on it, so it is written at once (no await between).
                reader, writer = await self.protocol.create_stream()
                stream = _Stream(self, reader, writer)
                self.streams = live + [stream]
            fut = stream.send(frame_msg, frame)
            try:
                answer = await fut
            finally:
                stream.pending.pop(frame_msg["id"], None)
        if "ok" in answer:
            ok = answer["ok"]
            if not isinstance(ok, dict):
                raise ProtocolError(f"a reply that is not a map: {ok!r:.200}")
            return ok
        raise errors.from_wire(answer.get("error"))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pinger:
            self.pinger.cancel()
        for s in self.streams:
            with contextlib.suppress(Exception):
                s.writer.write_eof()
        await self.exit.aclose()
        for s in self.streams:
            s.task.cancel()
            with contextlib.suppress(BaseException):
                await s.task


def _handshake_error(cfg: Config, protocol: _Protocol | None, *, pin: bool) -> Error:
    how = ("its certificate was fetched and checked against the pinned fingerprint, then "
           "the handshake trusting only it failed" if pin
           else f"trusting CA file {cfg.ca} for the name {cfg.server_name!r}")
    return CertificateError(
        f"the TLS handshake with {cfg.addr} failed ({how}): {_why(protocol)}. Check the "
        "address, the CA file or fingerprint, and server_name; a node answers ALPN ohm/1 only")


async def _fetch_pinned(cfg: Config) -> tuple[bytes, str]:
    """Pinning through aioquic's public API, which cannot show the
    handshake's certificate: ask the node for its chain (``certificate``,
    answered before auth) over a connection that trusts nothing and sends
    nothing secret, check the end-entity certificate's SHA-256 against the
    pin, and return it as the only certificate the real connection trusts,
    with a name from it to check. A machine in the middle gains nothing: the
    second handshake succeeds only with the pinned certificate's key."""
    q = _quic_config(cfg, pin_pem=None, server_name=cfg.server_name, verify=False)
    exit = contextlib.AsyncExitStack()
    try:
        try:
            protocol = await asyncio.wait_for(
                exit.enter_async_context(quic_connect(cfg.host, cfg.port, configuration=q,
                                                      create_protocol=_Protocol)),
                cfg.connect_timeout)
        except asyncio.TimeoutError:
            raise InterfaceError(f"no answer from {cfg.addr} within {cfg.connect_timeout} s "
                                 "(is the node running, and is that its address?)") from None
        except ConnectionError:
            raise InterfaceError(f"the QUIC handshake with {cfg.addr} failed: it may not be an "
                                 "Ohm node (ALPN ohm/1)") from None
        except OSError as e:
            raise InterfaceError(f"connecting to {cfg.addr}: {e}") from None
        link = _Link(cfg)
        link.protocol = protocol
        try:
            reply = await asyncio.wait_for(link.request({"op": "certificate"}),
                                           cfg.connect_timeout)
        except asyncio.TimeoutError:
            raise InterfaceError(f"{cfg.addr} did not answer `certificate` within "
                                 f"{cfg.connect_timeout} s") from None
        except errors.BadRequest:
            raise CertificateError(
                f"{cfg.addr} does not answer `certificate` (a node older than this client): "
                "pin with ca= and the node's tls/cert.pem instead of a fingerprint") from None
        finally:
            for stream in link.streams:
                stream.task.cancel()
    finally:
        await exit.aclose()
    chain = reply.get("chain")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], bytes):
        raise ProtocolError(f"a certificate reply without a chain: {reply!r:.200}")
    got = "sha256:" + hashlib.sha256(chain[0]).hexdigest()
    if got != cfg.fingerprint:
        raise CertificateError(f"the node at {cfg.addr} presents certificate {got}, not the "
                               f"pinned {cfg.fingerprint}: refusing to connect")
    cert = x509.load_der_x509_certificate(chain[0])
    if cert.issuer != cert.subject:
        raise CertificateError(
            f"the pinned certificate of {cfg.addr} is issued by a CA ({cert.issuer.rfc4514_string()}"
            "): pin only a node's self-signed certificate, or trust the CA with ca=FILE")
    return cert.public_bytes(Encoding.PEM), _name_in(cert, cfg)


def _name_in(cert: x509.Certificate, cfg: Config) -> str:
    """A name the certificate holds, to check it by (a pin ignores names,
    so any of them): the configured server name if it is there, else the
    first DNS name, else the first address."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError(f"the pinned certificate of {cfg.addr} names no host "
                               "(no subjectAltName); trust it with ca=FILE instead") from None
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    if cfg.server_name in dns or cfg.server_name in ips:
        return cfg.server_name
    if dns:
        return dns[0]
    if ips:
        return ips[0]
    raise CertificateError(f"the pinned certificate of {cfg.addr} names no host or address; "
                           "trust it with ca=FILE instead")


class AsyncConnection:
    """A client of one node. Safe to use from many tasks at once: requests
    are pipelined over the connection's streams. Reconnects on the next
    request after the connection is lost."""

    def __init__(self, cfg: Config, *, retry: Retry = Retry(), keyed_calls: bool = True):
        self.config = cfg
        self.retry = retry
        self.keyed_calls = keyed_calls
        self._link: _Link | None = None
        self._connecting: asyncio.Lock | None = None
        self._key_prefix = f"py-{secrets.token_hex(8)}-"
        self._keys = itertools.count(1)
        self._closed = False

    # -- connection ---------------------------------------------------------

    async def _current(self) -> _Link:
        if self._closed:
            raise InterfaceError("the connection is closed")
        if self._link is not None and self._link.usable:
            return self._link
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._link is not None and self._link.usable:
                return self._link
            if self._link is not None:
                await self._link.close()
                self._link = None
            link = _Link(self.config)
            try:
                await link.open()
            except BaseException:
                await link.close()
                raise
            if self._closed:  # closed while this connected
                await link.close()
                raise InterfaceError("the connection is closed")
            self._link = link
            return link

    @property
    def session(self) -> dict:
        """The ``authenticated`` reply: tenant, principal, role, admin."""
        return self._link.session if self._link else {}

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            await self._link.close()
            self._link = None

    async def __aenter__(self) -> "AsyncConnection":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------

    async def _send(self, msg: dict, *, resend_unknown: bool) -> dict:
        """One request, sent again as ``Retry`` and ``resend_unknown`` allow."""
        attempt = 0
        while True:
            try:
                link = await self._current()
                return await link.request(msg)
            except Error as e:
                attempt += 1
                if attempt >= self.retry.attempts or not _retryable(e, resend_unknown):
                    raise
                await asyncio.sleep(self.retry.delay(attempt - 1))

    async def call(self, procedure: str, *args: Any, key: str | None = None,
                   timeout_ms: int | None = None) -> Any:
        """Calls a procedure: its value, or its ``Rows``. With a key (given,
        or made because ``keyed_calls``), a call whose outcome is unknown is
        sent again with that key and applied at most once."""
        msg: dict[str, Any] = {"op": "call", "procedure": procedure,
                               "args": values.encode_all(args, "argument")}
        if key is None and self.keyed_calls:
            key = f"{self._key_prefix}{next(self._keys)}"
        if key is not None:
            if not 1 <= len(key.encode()) <= KEY_BYTES_MAX:
                raise InterfaceError(f"an idempotency key is 1 to {KEY_BYTES_MAX} bytes")
            msg["key"] = key
        if timeout_ms is not None:
            msg["timeout_ms"] = timeout_ms
        r = await self._send(msg, resend_unknown=key is not None)
        if r.get("kind") == "value":
            return values.decode(r.get("value"), r.get("type"))
        if r.get("kind") == "rows":
            return _rows(r)
        raise ProtocolError(f"a call answered with {r.get('kind')!r}")

    async def sql(self, sql: str, params: Sequence[Any] | None = None, *,
                  timeout_ms: int | None = None) -> list[Rows | Affected | Done]:
        """Runs statements separated by ``;``, each autocommitted: one result
        each. ``params`` are the values of ``$1``, ``$2``... or of the ``?``
        (a single statement only). Not sent again after an unknown outcome."""
        msg: dict[str, Any] = {"op": "sql", "sql": sql}
        if params:
            msg["params"] = values.encode_all(params, "parameter")
        if timeout_ms is not None:
            msg["timeout_ms"] = timeout_ms
        r = await self._send(msg, resend_unknown=False)
        return [_result(x) for x in _field(r, "results", list)]

    async def query(self, sql: str, params: Sequence[Any] | None = None, *,
                    timeout_ms: int | None = None) -> Rows:
        """One query's rows."""
        results = await self.sql(sql, params, timeout_ms=timeout_ms)
        if len(results) != 1 or not isinstance(results[0], Rows):
            raise InterfaceError(f"query() runs one statement that returns rows; got {results!r:.200}")
        return results[0]

    async def load(self, table: str, rows: Iterable[Sequence[Any]], *,
                   columns: Sequence[str] | None = None, key: str | None = None,
                   max_errors: int = 0) -> Loaded:
        """Inserts one chunk of rows as one transaction (docs/PROTOCOL.md,
        "Bulk load"). With ``key``, a chunk whose answer was lost is sent
        again and applied once."""
        msg: dict[str, Any] = {
            "op": "load", "table": table,
            "rows": [values.encode_all(r, f"row {i + 1}, column") for i, r in enumerate(rows)],
        }
        if columns:
            msg["columns"] = list(columns)
        if key is not None:
            msg["key"] = key
        if max_errors:
            msg["max_errors"] = max_errors
        r = await self._send(msg, resend_unknown=key is not None)
        return Loaded(_field(r, "loaded", int), r.get("rejected", []), r.get("again", False))

    async def deploy(self, name: str, wasm: bytes | os.PathLike | str) -> dict:
        """Deploys (or replaces) a module: bytes, or a path to a .wasm file."""
        if not isinstance(wasm, (bytes, bytearray)):
            with open(wasm, "rb") as f:
                wasm = f.read()
        return await self._send({"op": "deploy", "name": name, "wasm": bytes(wasm)},
                                resend_unknown=False)

    async def drop(self, name: str) -> dict:
        return await self._send({"op": "drop", "name": name}, resend_unknown=False)

    async def catalog(self) -> dict:
        return await self._send({"op": "catalog"}, resend_unknown=True)

    async def status(self) -> dict:
        return await self._send({"op": "status"}, resend_unknown=True)

    async def request(self, op: str, **fields: Any) -> dict:
        """Any other request (``create_tenant``, ``tenant_quota``,
        ``token_create``...): the reply map as the node sent it."""
        return await self._send({"op": op, **fields}, resend_unknown=False)


def _retryable(e: Error, resend_unknown: bool) -> bool:
    if isinstance(e, (errors.Overloaded, errors.NotLeader)):
        return True
    if isinstance(e, errors.Unavailable):
        return resend_unknown or not e.maybe_applied
    if isinstance(e, ConnectionLost):
        return resend_unknown or not e.maybe_applied
    return False


async def connect(dsn: str | None = None, *, retry: Retry = Retry(), keyed_calls: bool = True,
                  **kwargs: Any) -> AsyncConnection:
    """Connects and authenticates (``ohm.config.resolve`` says where from)."""
    conn = AsyncConnection(resolve(dsn, **kwargs), retry=retry, keyed_calls=keyed_calls)
    await conn._current()
    return conn
