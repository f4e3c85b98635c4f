"""Where a record's credentials are sent: its origins, and the rule that binds stored secrets to them.

A record's secrets were given for the hosts its config named when they were stored. A PUT that moves
the record to another origin (scheme, host or port of any URL its credentials go to) must send every
stored secret again; kept secrets would otherwise be presented to a host their owner never chose.

One function per record type maps a config to its origin set (``ORIGINS``); ``secrets_must_be_resent``
turns the fields that were not re-sent into one 422 naming each of them.

Example:
    >>> origins_of("elasticsearch", {"url": "https://ES.example.com/"})
    frozenset({('https', 'es.example.com', 443)})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from api.errors import Unprocessable

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str, default_scheme: str = "https") -> Origin:
    """``(scheme, host, port)``: lower-case host without a trailing dot, the scheme's default port
    filled in; a URL without ``scheme://`` (a bare host, as Vertex AI's ``api_endpoint`` may be) gets
    ``default_scheme``."""
    if "://" not in url:
        url = f"{default_scheme}://{url}"
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:  # validated on the way in; an odd stored value still compares as itself
        port = None
    return scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0)


def _elasticsearch(config: dict[str, Any]) -> set[Origin]:
    return {origin(config["url"])}


def _splunk(config: dict[str, Any]) -> set[Origin]:
    return {origin(config["hec_url"])}


def _datadog(config: dict[str, Any]) -> set[Origin]:
    # Every Datadog host is a subdomain of the site; an api_url (a proxy) takes the requests instead.
    # Both count, so a change of either is a move.
    origins = {origin(config.get("site") or "datadoghq.com")}
    if config.get("api_url"):
        origins.add(origin(config["api_url"]))
    return origins


def _mlflow(config: dict[str, Any]) -> set[Origin]:
    return {origin(config["tracking_uri"])}


def _sagemaker(config: dict[str, Any]) -> set[Origin]:
    # The region picks AWS's hosts (and signs every request, an endpoint_url's included).
    origins = {origin(f"sagemaker.{config['region_name']}.amazonaws.com")}
    if config.get("endpoint_url"):
        origins.add(origin(config["endpoint_url"]))
    return origins


def _vertex_ai(config: dict[str, Any]) -> set[Origin]:
    # The default endpoint is derived from the location (blocks.gcp.vertex_api_endpoint).
    return {origin(config.get("api_endpoint") or f"{config['location']}-aiplatform.googleapis.com")}


def _webhook(config: dict[str, Any]) -> set[Origin]:
    return {origin(config["url"])}


ORIGINS: dict[str, Callable[[dict[str, Any]], set[Origin]]] = {
    "elasticsearch": _elasticsearch,
    "splunk": _splunk,
    "datadog": _datadog,
    "mlflow": _mlflow,
    "sagemaker": _sagemaker,
    "vertex_ai": _vertex_ai,
    "webhook": _webhook,
}


def origins_of(type_: str, config: dict[str, Any]) -> frozenset[Origin]:
    """Every origin a record of ``type_`` with ``config`` sends its credentials to."""
    return frozenset(ORIGINS[type_](config))


def moves_origin(type_: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a record of ``type_`` changing its config from ``before`` to ``after`` changes where
    its credentials go."""
    return origins_of(type_, after) != origins_of(type_, before)


def secrets_must_be_resent(fields: Iterable[str]) -> None:
    """Raise one 422 naming each secret field (``credentials.password``, ``headers.X-Token``) that
    was kept by omission or the mask although the record moves to a new origin."""
    missing = sorted(fields)
    if not missing:
        return
    message = "must be sent again: the record moves to a new origin, and stored secrets are not sent to one"
    raise Unprocessable(
        "; ".join(f"{name}: {message}" for name in missing),
        errors=[{"field": name, "message": message} for name in missing],
    )
