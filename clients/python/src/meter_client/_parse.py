"""Reading the API's JSON values: money strings, metric amounts, RFC 3339 timestamps; UUIDv7."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Optional, Union

_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def money(value: Any) -> Optional[Decimal]:
    """An exact decimal from the API's money string (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None


def amount(value: Any) -> Optional[Union[int, Decimal]]:
    """A metric amount: counts are JSON integers, money is a decimal string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return money(value)


def amounts(value: Any) -> Dict[str, Union[int, Decimal]]:
    return {k: a for k, a in ((k, amount(v)) for k, v in (value or {}).items()) if a is not None}


def percentages(value: Any) -> Dict[str, float]:
    return {k: float(v) for k, v in (value or {}).items() if v is not None}


def timestamp(value: Any) -> Optional[datetime]:
    """An aware UTC ``datetime`` from RFC 3339 (nanoseconds are cut to microseconds)."""
    if value is None:
        return None
    m = _TS.match(str(value))
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if not z:
        offset = timedelta(hours=int(oh), minutes=int(om))
        tz = timezone(offset if sign == "+" else -offset)
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tz).astimezone(timezone.utc)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uuid7() -> str:
    """A fresh UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))
