"""How sinks turn records into bytes: orjson, the one serializer of the export path.

Record fields may hold values only orjson can write: ``orjson.Fragment`` (a JSON column passed
through as the text the database already holds, never parsed) and aware datetimes. So a sink
encodes with `dumps` (or `dumps_lines`), never with ``json.dumps``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (RFC 3339 ``Z`` times, fragments inlined)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def loads(data: bytes | str) -> Any:
    """Parse a sink's JSON answer."""
    return orjson.loads(data)
