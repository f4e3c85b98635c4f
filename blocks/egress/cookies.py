"""No cookie carried from one outbound call to the next on a client that tenants share.

The webhook sender keeps one HTTP client per receiver origin for all organizations, and MLflow keeps
one requests session per process for every tracking server the API and the flows call. A cookie
jar on such a client would hand what one tenant's receiver set (a session, a load balancer's
stickiness, anything an attacker-run receiver on a shared host chooses) to the next tenant's request
to that origin, and a receiver could grow the jar without bound. Nothing ModelPulse calls
authenticates by cookie: webhooks are signed, MLflow takes a header.

``KeepNoCookies`` refuses to keep or send any cookie; ``cookieless_jar()`` is a jar with it, for httpx
(``httpx.AsyncClient(cookies=cookieless_jar())``); ``refuse_cookies(session)`` sets it on a requests
session.
"""

from __future__ import annotations

from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the blocks with requests sessions need requests loaded
    import requests


class KeepNoCookies(DefaultCookiePolicy):
    """A cookie policy that accepts no cookie and returns none."""

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


def cookieless_jar() -> CookieJar:
    """An empty cookie jar that stays empty."""
    return CookieJar(policy=KeepNoCookies())


def refuse_cookies(session: requests.Session) -> requests.Session:
    """Make ``session`` keep no cookie from its answers (and so send none back)."""
    session.cookies.set_policy(KeepNoCookies())
    return session
