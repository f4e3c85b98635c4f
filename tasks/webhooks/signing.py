"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; each active secret contributes
one ``v1,<base64 HMAC-SHA256>`` entry to ``webhook-signature``, space-separated, so a receiver keeps
verifying while a secret rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the raw bytes behind the prefix)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<signature>`` entry for ``body`` sent as ``message_id`` at ``timestamp``.

    Example:
        >>> sign("whsec_" + base64.b64encode(b"k" * 24).decode(), "evt_1", 1700000000, b"{}")
        'v1,...'  # doctest: +SKIP
    """
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one entry per active secret, newest first."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)
