"""Values both ways between Python and the protocol (docs/PROTOCOL.md,
"Values").

To the node: ``None``, ``bool``, ``int``, ``float``, ``str`` and ``bytes`` as
themselves; ``Decimal`` as its plain text; ``datetime``, ``date`` and
``time`` as text the node reads as PostgreSQL does (an aware ``datetime`` is
converted to UTC first), which both a procedure's parameters and SQL
accept; ``timedelta`` and ``Interval`` as ``[months, days, microseconds]``;
``UUID`` as its canonical text.

From the node, by the SQL type the answer names: DECIMAL to ``Decimal``,
TIMESTAMP to a naive ``datetime`` (UTC), TIMESTAMPTZ to an aware one
(UTC), DATE to ``date``, TIME to ``time``, INTERVAL to ``Interval``, UUID to
``UUID``, VARBINARY to ``bytes``; the rest as MessagePack gave them. A value
whose type is unknown (an expression the node could not type) is left as
MessagePack gave it.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import DataError

EPOCH = _dt.datetime(1970, 1, 1)
EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
EPOCH_DATE = _dt.date(1970, 1, 1)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class Interval:
    """An SQL INTERVAL: months, days and microseconds, kept apart as the node
    keeps them (a month is not a fixed number of days)."""

    months: int = 0
    days: int = 0
    microseconds: int = 0

    def to_timedelta(self) -> _dt.timedelta:
        """The interval as a ``timedelta``; one with months has none."""
        if self.months:
            raise DataError(f"{self} has months, which a timedelta cannot hold")
        return _dt.timedelta(days=self.days, microseconds=self.microseconds)

    @classmethod
    def from_timedelta(cls, td: _dt.timedelta) -> "Interval":
        return cls(0, td.days, td.seconds * 1_000_000 + td.microseconds)

    def __str__(self) -> str:
        return f"{self.months} mons {self.days} days {self.microseconds} us"


def _naive_utc(v: _dt.datetime) -> _dt.datetime:
    if v.tzinfo is not None and v.utcoffset() is not None:
        return v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return v


def encode(v: Any, where: str = "value") -> Any:
    """One Python value as the node takes it; ``where`` names it in errors."""
    if v is None or isinstance(v, (bool, str, float)):
        return v
    if isinstance(v, int):
        if not I64_MIN <= v <= I64_MAX:
            raise DataError(f"{where}: {v} is outside the signed 64-bit range")
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            raise DataError(f"{where}: {v} is not a finite decimal")
        return format(v, "f")
    if isinstance(v, _dt.datetime):
        return _naive_utc(v).isoformat(sep=" ")
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, _dt.time):
        if v.tzinfo is not None:
            raise DataError(f"{where}: {v} has a time zone; TIME has none")
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        v = Interval.from_timedelta(v)
    if isinstance(v, Interval):
        if not (I32_MIN <= v.months <= I32_MAX and I32_MIN <= v.days <= I32_MAX):
            raise DataError(f"{where}: {v}: months and days must fit in 32 bits")
        return [v.months, v.days, v.microseconds]
    if isinstance(v, uuid.UUID):
        return str(v)
    raise DataError(f"{where}: {type(v).__name__} {v!r} has no SQL type "
                    "(use None, bool, int, float, str, bytes, Decimal, datetime, date, time, "
                    "timedelta, Interval or UUID)")


def encode_all(values: Any, what: str) -> list[Any]:
    return [encode(v, f"{what} {i + 1}") for i, v in enumerate(values)]


def base_type(sql_type: str | None) -> str | None:
    """``DECIMAL(10,2)`` -> ``DECIMAL``; None stays None."""
    if sql_type is None:
        return None
    return sql_type.split("(", 1)[0].strip().upper()


def decode(v: Any, sql_type: str | None) -> Any:
    """A value from the node, by the SQL type its answer names."""
    if v is None:
        return None
    t = base_type(sql_type)
    try:
        if t in ("DECIMAL", "NUMERIC"):
            return decimal.Decimal(v)
        if t == "TIMESTAMP":
            return EPOCH + _dt.timedelta(microseconds=v)
        if t == "TIMESTAMPTZ":
            return EPOCH_UTC + _dt.timedelta(microseconds=v)
        if t == "DATE":
            return EPOCH_DATE + _dt.timedelta(days=v)
        if t == "TIME":
            us = int(v)
            if us == MICROS_PER_DAY:
                raise DataError("TIME 24:00:00 has no datetime.time; select it as text "
                                "(CAST(col AS TEXT)) to read it")
            s, us = divmod(us, 1_000_000)
            return _dt.time(s // 3600, s // 60 % 60, s % 60, us)
        if t == "INTERVAL":
            months, days, micros = v
            return Interval(months, days, micros)
        if t == "UUID":
            return uuid.UUID(bytes=v) if isinstance(v, bytes) else uuid.UUID(v)
    except (TypeError, ValueError, ArithmeticError, OverflowError) as e:
        # A date past year 9999, say: the node holds it, Python cannot.
        raise DataError(f"a {sql_type} value Python cannot hold: {v!r} ({e})") from e
    return v
