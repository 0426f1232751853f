"""A real ``ohm serve --demo`` for the tests, started once per session.

The node binary is $OHM_BINARY, else target/debug/ohm of this repository;
the example modules $OHM_WASM_DIR, else target/wasm32-unknown-unknown/wasm
(``cargo build --workspace`` and ``cargo procs`` make both).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
READY_WAIT = 120.0


@dataclass
class Node:
    addr: str
    fingerprint: str
    data: Path
    process: subprocess.Popen

    def token(self, name: str = "demo.token") -> str:
        return (self.data / name).read_text().strip()

    @property
    def cert(self) -> Path:
        return self.data / "tls" / "cert.pem"

    def dsn(self, token: str | None = None, **params: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ohm://{token or self.token()}@{self.addr}" + (f"?{q}" if q else "")


def _binary() -> Path:
    b = Path(os.environ.get("OHM_BINARY") or REPO / "target" / "debug" / "ohm")
    if not b.is_file():
        pytest.exit(f"{b} is missing: run `cargo build --workspace` first (or set OHM_BINARY)", 2)
    return b


def wasm_dir() -> Path:
    return Path(os.environ.get("OHM_WASM_DIR") or REPO / "target" / "wasm32-unknown-unknown"
                / "wasm")


def start_node(data: Path, *args: str) -> Node:
    env = dict(os.environ)
    env["OHM_WASM_DIR"] = str(wasm_dir())
    p = subprocess.Popen(
        [str(_binary()), "serve", "--data", str(data), "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE, stderr=sys.stderr, env=env, text=True)
    found: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        for line in p.stdout:
            if line.startswith("ready ") and not found:
                found.update(re.findall(r"(\w+)=(\S+)", line))
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(READY_WAIT) or "addr" not in found:
        p.kill()
        raise RuntimeError(f"ohm serve printed no ready line within {READY_WAIT} s")
    return Node(found["addr"], found["fingerprint"], data, p)


def stop_node(node: Node) -> None:
    node.process.send_signal(signal.SIGTERM)
    try:
        node.process.wait(30)
    except subprocess.TimeoutExpired:
        node.process.kill()
        node.process.wait()


@pytest.fixture(scope="session")
def node(tmp_path_factory) -> Node:
    """A demo node (tenant ``demo``, the voter, bank and kv procedures) with
    its data directory named ``ohm-data`` as a local node's would be."""
    root = tmp_path_factory.mktemp("node")
    n = start_node(root / "ohm-data", "--demo", "--partitions", "2")
    yield n
    stop_node(n)


@pytest.fixture(scope="session")
def initialized(node) -> Node:
    """The voter's contestants created (``initialize`` is idempotent)."""
    import ohm
    with ohm.connect(node.dsn(fingerprint=node.fingerprint)) as db:
        assert db.call("initialize", 6, "Edwina,Alberto,Cindy,Doug,Elsa,Frank") == 6
    return node


def wait_until(f, what: str, within: float = 30.0):
    deadline = time.monotonic() + within
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.05)
