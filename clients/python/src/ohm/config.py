"""Where to connect, how to trust the node, and which token to present.

Resolved as the ``ohm`` command line does (docs/OPERATIONS.md): each setting
from the keyword arguments, else the connection string, else the
environment (``OHM_ADDR``, ``OHM_TOKEN``, ``OHM_CA``, ``OHM_FINGERPRINT``,
``OHM_DATA``), else the files a local node leaves in its data directory
(``tls/cert.pem`` to trust, ``demo.token``; default directory ``ohm-data``).

The connection string::

    ohm://TOKEN@HOST:PORT?fingerprint=sha256:HEX
    ohm://TOKEN@HOST:PORT?ca=/path/to/ca.pem&server_name=db.example.com
    ohm://HOST:PORT?data=/var/lib/ohm        (token and trust from the files)

Query parameters: ``fingerprint``, ``ca``, ``server_name`` (the name checked
in the certificate with ``ca``; default ``localhost``), ``data``,
``token_file`` (the file under the data directory to read a token from;
default ``demo.token``), ``streams`` (QUIC streams to spread requests over,
default 4), ``timeout`` (seconds to wait for a connection, default 10).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

DEFAULT_PORT = 7450
DEFAULT_ADDR = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_DATA = "ohm-data"
DEFAULT_TOKEN_FILE = "demo.token"
DEFAULT_SERVER_NAME = "localhost"
DEFAULT_STREAMS = 4
#: The node accepts 64 concurrent streams per connection.
STREAMS_MAX = 64
DEFAULT_CONNECT_TIMEOUT = 10.0
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_PARAMS = {"fingerprint", "ca", "server_name", "data", "token_file", "streams", "timeout"}


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    #: Never shown by ``repr``.
    token: str = field(repr=False)
    #: ``sha256:`` and 64 lowercase hex digits, or None.
    fingerprint: str | None = None
    #: A PEM file of CA certificates (or the node's own certificate), or None.
    ca: str | None = None
    server_name: str = DEFAULT_SERVER_NAME
    streams: int = DEFAULT_STREAMS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def addr(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def normalize_fingerprint(fp: str) -> str:
    """``sha256:`` and 64 lowercase hex digits (colons and case are allowed
    in the input, as ``ohm serve`` prints it or as openssl does)."""
    raw = fp.strip()
    if raw.lower().startswith("sha256:"):
        raw = raw[7:]
    hexed = raw.replace(":", "").lower()
    out = f"sha256:{hexed}"
    if not _FINGERPRINT.match(out):
        raise ConfigError(f"fingerprint {fp!r} is not `sha256:` and 64 hex digits")
    return out


def split_addr(addr: str, where: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host (port 7450)."""
    try:
        parsed = urllib.parse.urlsplit("//" + addr)
        host, port = parsed.hostname, parsed.port
    except ValueError as e:
        raise ConfigError(f"{where}: {addr!r} is not host:port ({e})") from None
    if not host:
        raise ConfigError(f"{where}: {addr!r} names no host")
    return host, port if port is not None else DEFAULT_PORT


def resolve(dsn: str | None = None, *, addr: str | None = None, token: str | None = None,
            fingerprint: str | None = None, ca: str | os.PathLike | None = None,
            server_name: str | None = None, data: str | os.PathLike | None = None,
            token_file: str | None = None, streams: int | None = None,
            connect_timeout: float | None = None,
            env: Mapping[str, str] | None = None) -> Config:
    """Every setting from arguments, then ``dsn``, then the environment, then
    the data directory's files. Errors say what is missing and the ways to
    give it."""
    env = os.environ if env is None else env
    url: dict[str, str] = {}
    url_addr = url_token = None
    if dsn:
        parts = urllib.parse.urlsplit(dsn)
        if parts.scheme != "ohm":
            raise ConfigError(f"connection string {_redact(dsn)!r}: the scheme must be ohm://")
        for k, vs in urllib.parse.parse_qs(parts.query, keep_blank_values=True,
                                           strict_parsing=False).items():
            if k not in _PARAMS:
                raise ConfigError(f"connection string: unknown parameter {k!r} "
                                  f"(known: {', '.join(sorted(_PARAMS))})")
            if len(vs) != 1:
                raise ConfigError(f"connection string: {k!r} is given {len(vs)} times")
            url[k] = vs[0]
        netloc = parts.netloc.rsplit("@", 1)
        if len(netloc) == 2:
            url_token = urllib.parse.unquote(netloc[0]) or None
        if netloc[-1]:
            url_addr = netloc[-1]
    given = addr or url_addr or env.get("OHM_ADDR") or DEFAULT_ADDR
    where = ("address" if addr else "connection string" if url_addr
             else "OHM_ADDR" if env.get("OHM_ADDR") else "address")
    try:
        host, port = split_addr(given, where)
    except ConfigError as e:
        # An address mistyped into the token's place must not be shown.
        raise ConfigError(_redact_secret(e.message, url_token, env.get("OHM_TOKEN"), token)) from None

    data_dir = Path(data or url.get("data") or env.get("OHM_DATA") or DEFAULT_DATA)
    fp = fingerprint or url.get("fingerprint")
    ca_file = ca or url.get("ca")
    if not fp and not ca_file:
        fp = env.get("OHM_FINGERPRINT") or None
        if not fp:
            ca_file = env.get("OHM_CA") or None
    if fp and ca_file:
        raise ConfigError("give either a fingerprint or a CA file, not both")
    if fp:
        fp = normalize_fingerprint(fp)
    elif ca_file:
        if not Path(ca_file).is_file():
            raise ConfigError(f"ca {os.fspath(ca_file)}: no such file")
        ca_file = os.fspath(ca_file)
    else:
        cert = data_dir / "tls" / "cert.pem"
        if not cert.is_file():
            raise ConfigError(
                "no certificate to trust: give fingerprint=sha256:HEX or ca=FILE (in the "
                "connection string or as arguments), set OHM_FINGERPRINT or OHM_CA, or run "
                f"from the directory holding {data_dir}/ of a local node (looked for {cert})")
        ca_file = os.fspath(cert)

    tok = token or url_token or env.get("OHM_TOKEN")
    if not tok:
        name = token_file or url.get("token_file") or DEFAULT_TOKEN_FILE
        path = data_dir / name
        try:
            tok = path.read_text().strip()
        except OSError:
            raise ConfigError(
                "no token: put it in the connection string (ohm://TOKEN@host:port), pass "
                f"token=, set OHM_TOKEN, or run from the directory holding {data_dir}/ of a "
                f"node started with --demo (looked for {path})") from None
        if not tok:
            raise ConfigError(f"{path} is empty")
    tok = tok.strip()

    n = streams if streams is not None else _int(url.get("streams"), "streams", DEFAULT_STREAMS)
    if not 1 <= n <= STREAMS_MAX:
        raise ConfigError(f"streams must be 1 to {STREAMS_MAX} (the node's limit), not {n}")
    t = (connect_timeout if connect_timeout is not None
         else _float(url.get("timeout"), "timeout", DEFAULT_CONNECT_TIMEOUT))
    if not t > 0:
        raise ConfigError(f"timeout must be more than 0 seconds, not {t}")
    return Config(host=host, port=port, token=tok, fingerprint=fp,
                  ca=ca_file if not fp else None,
                  server_name=server_name or url.get("server_name") or DEFAULT_SERVER_NAME,
                  streams=n, connect_timeout=t)


def _int(v: str | None, name: str, default: int) -> int:
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise ConfigError(f"connection string: {name}={v!r} is not an integer") from None


def _float(v: str | None, name: str, default: float) -> float:
    if v is None:
        return default
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"connection string: {name}={v!r} is not a number") from None


def _redact_secret(text: str, *secrets: str | None) -> str:
    """``text`` without the tokens given (those long enough to be one; a
    node's are 68 characters) or any that looks like a node's."""
    for s in secrets:
        if s and len(s) >= 8:
            text = text.replace(s, "***")
    return re.sub(r"ohm_[0-9a-f]{64}", "ohm_***", text)


def _redact(dsn: str) -> str:
    """The connection string without its token, for error messages."""
    return re.sub(r"//[^@/]*@", "//***@", dsn)
