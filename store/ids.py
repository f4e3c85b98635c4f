"""Time-ordered, URL- and block-name-safe identifiers (ULID layout, lower-case Crockford base32)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str, at: datetime | None = None) -> str:
    """Return ``<prefix>_<26 chars>``: 48 bits of milliseconds (now, or ``at``) then 80 random bits.

    Ids sort by creation time, so "order by id" is creation order and a cursor is just an id.

    Example:
        >>> new_id("int")  # doctest: +SKIP
        'int_01jdx3k8v5c8m2y7q4n6t9w0ab'
    """
    milliseconds = time.time_ns() // 1_000_000 if at is None else int(at.timestamp() * 1000)
    value = milliseconds << 80 | secrets.randbits(80)
    return f"{prefix}_{_encode(value)}"


def id_floor(moment: datetime) -> str:
    """The 26 characters that sort after every id made before ``moment`` and before every id made at or
    after it (compare with the prefix added: ``f"evt_{id_floor(t)}"``)."""
    return _encode((int(moment.timestamp() * 1000)) << 80)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def id_seconds(identifier: str) -> float:
    """When ``identifier`` (``<prefix>_<26 chars>``, see ``new_id``) was made, in seconds since the epoch.

    Example:
        >>> id_seconds(new_id("evt", datetime.fromtimestamp(1_800_000_000.5)))
        1800000000.5
    """
    value = 0
    for char in identifier.rpartition("_")[2][:10]:  # 50 bits: two always zero, then the milliseconds
        value = value << 5 | _ALPHABET.index(char)
    return value / 1000
