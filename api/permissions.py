"""Which key roles may call which operation: the one table, decided from the method and the route.

- ``admin``: every operation (what every key could do before roles).
- ``viewer``: reads only (``GET``, and ``HEAD``/``OPTIONS`` on the same routes); nothing that writes,
  triggers, tests or redelivers.
- ``publisher``: sends data only: ``POST .../events`` and ``POST .../inference-logs``.

``api/auth.py`` enforces it for every key-authenticated request (a 403 ``InsufficientRole`` after the
organization check, so another organization's paths stay 404), and ``api/openapi.py`` documents it
from the same function, so the two cannot disagree.

Example:
    ```python
    roles_allowed("POST", "/organizations/<organization_id>/events")  # ("admin", "publisher")
    ```
"""

from __future__ import annotations

import re

from api.errors import InsufficientRole
from store.key_roles import KEY_ROLES

_PATH_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLISHING = frozenset(
    {
        ("POST", "/organizations/<organization_id>/events"),
        ("POST", "/organizations/<organization_id>/inference-logs"),
    }
)


def roles_allowed(method: str, rule: str) -> tuple[str, ...]:
    """The roles that may call ``method`` on the route ``rule`` (Flask's rule string), most powerful first."""
    method = method.upper()
    allowed = {"admin"}
    if method in READ_METHODS:
        allowed.add("viewer")
    if (method, rule) in PUBLISHING:
        allowed.add("publisher")
    return tuple(role for role in KEY_ROLES if role in allowed)


def require_role(role: str, method: str, rule: str) -> None:
    """Raise ``InsufficientRole`` (403) unless a key of ``role`` may call ``method`` on ``rule``."""
    allowed = roles_allowed(method, rule)
    if role not in allowed:
        # The route's template, not the request's path: the answer repeats nothing the client sent.
        template = _PATH_PARAM.sub(r"{\1}", rule)
        raise InsufficientRole(role, allowed, f"{method.upper()} {template}")
