"""The official Python client of Ohm (docs/PROTOCOL.md over QUIC).

- ``ohm.connect(...)``: a synchronous client (``ohm.sync.Connection``);
- ``await ohm.aio.connect(...)``: the asyncio client;
- ``ohm.dbapi``: PEP 249 (DB-API 2.0) for SQL.

Where to connect comes from a connection string
(``ohm://TOKEN@host:port?fingerprint=sha256:...`` or ``?ca=FILE``), keyword
arguments, the environment (``OHM_ADDR``, ``OHM_TOKEN``, ``OHM_CA``,
``OHM_FINGERPRINT``, ``OHM_DATA``) or a local node's data directory
(``ohm-data/``), as the ``ohm`` command line does: ``ohm.config``.
"""

from .aio import Affected, Column, Done, Loaded, Retry, Rows, NO_RETRY
from .config import Config, resolve
from .errors import *  # noqa: F401,F403 - the exceptions are the package's API
from .errors import BY_CODE, Error
from .sync import Connection, connect
from .values import Interval

__version__ = "0.1.0"
