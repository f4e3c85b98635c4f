"""No cookie carried from one outbound call to the next on a session that tenants share.

MLflow keeps one requests session per process for every tracking server the API and the flows call.
A cookie jar on it would hand what one tenant's server set (a session, a load balancer's stickiness,
anything an attacker-run server on a shared host chooses) to the next tenant's request to that
origin, and a server could grow the jar without bound. Nothing ModelPulse calls authenticates by
cookie: MLflow takes a header. (The webhook sender has no jar to guard: it sends through bare
connection pools, ``tasks.webhooks.sender``.)

``KeepNoCookies`` refuses to keep or send any cookie; ``refuse_cookies(session)`` sets it on a requests
session (``guard_requests_session`` does, for every session it guards).
"""

from __future__ import annotations

from http.cookiejar import Cookie, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the blocks with requests sessions need requests loaded
    import requests


class KeepNoCookies(DefaultCookiePolicy):
    """A cookie policy that accepts no cookie and returns none."""

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


def refuse_cookies(session: requests.Session) -> requests.Session:
    """Make ``session`` keep no cookie from its answers (and so send none back)."""
    session.cookies.set_policy(KeepNoCookies())
    return session
