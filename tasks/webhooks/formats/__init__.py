"""How an event is rendered for each kind of receiver: one module per webhook ``format``.

Each module has the same small interface (see ``base``): ``render(event, destination) -> Rendered``
and ``classify(status, body) -> Verdict``, with ``NAME`` and ``SIGNED``. Adding a destination is one
new module here and its name in ``FORMATS``.
"""

from __future__ import annotations

from types import ModuleType

from tasks.webhooks.formats import pagerduty, slack, standard, teams
from tasks.webhooks.formats.base import Destination, Outcome, Rendered, Verdict

FORMATS: dict[str, ModuleType] = {module.NAME: module for module in (standard, slack, teams, pagerduty)}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
# Formats whose URL carries the credential (Slack, Teams): stored in the secrets block, shown masked.
SECRET_URL_FORMATS = frozenset({"slack", "teams"})
DEFAULT_URLS = {"pagerduty": pagerduty.EVENTS_URL}


def get_format(name: str) -> ModuleType:
    """The module of a format; an unknown name (a row written by a newer version) renders as ``standard``."""
    return FORMATS.get(name, standard)


__all__ = [
    "DEFAULT_URLS",
    "FORMATS",
    "FORMAT_NAMES",
    "SECRET_URL_FORMATS",
    "Destination",
    "Outcome",
    "Rendered",
    "Verdict",
    "get_format",
]
