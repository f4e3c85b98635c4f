"""Every error the API returns is RFC 9457 ``application/problem+json``.

Exception tree (catch the base to catch them all)::

    Problem                      any status, title, detail, optional per-field errors
    ├── Unauthorized       401   missing/invalid bearer key (adds WWW-Authenticate)
    ├── InsufficientRole   403   the key's role may not call the operation (type INSUFFICIENT_ROLE)
    ├── NotFound           404   unknown id, or another organization's resource
    ├── Conflict           409   duplicate name within an organization
    ├── PayloadTooLarge    413   a request body past its limit, refused before it is read
    ├── UnsupportedMediaType 415 a body that is not declared as JSON, or is compressed
    ├── Unprocessable      422   a failed validation (or a body that is not standard JSON), naming each field
    ├── TooManyRequests    429   the API key's requests per minute are used up (adds Retry-After)
    │   └── TooManyAuthenticationFailures  the client address's refused keys per minute are used up
    │                                      (type AUTHENTICATION_FAILURES, adds Retry-After)
    ├── UpstreamError      502   a platform or sink answered with an error during a synchronous call
    ├── ServiceUnavailable 503   our own database or Prefect server cannot be reached (adds Retry-After)
    └── UpstreamTimeout    504   ... or did not answer in time

Problems have ``type`` ``about:blank`` (the status says it all) except those with a type of their
own, documented in the README and ``/openapi.json``: ``INSUFFICIENT_ROLE`` and ``AUTHENTICATION_FAILURES``.
They are identifiers (URNs), not links.

Unhandled database connection failures (SQLAlchemy ``OperationalError``/``InterfaceError``, a pool
timeout) and transport failures (``httpx.TransportError``, from the Prefect client) also leave as 503.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from flask import Flask, Response, json
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
INSUFFICIENT_ROLE = "urn:modelpulse:problem:insufficient-role"
AUTHENTICATION_FAILURES = "urn:modelpulse:problem:authentication-failures"


class Problem(Exception):
    status = 500
    title = "Internal Server Error"
    type = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.status = status or self.status
        self.title = title or self.title
        self.headers = headers or {}
        self.extensions = extensions or {}  # RFC 9457 extension members of the problem type

    def to_response(self) -> Response:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extensions)
        response = Response(json.dumps(body), status=self.status, mimetype=PROBLEM_JSON)
        response.headers.update(self.headers)
        return response


class Unauthorized(Problem):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "A valid API key is required: 'Authorization: Bearer <key>'."):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="modelpulse"'})


class InsufficientRole(Problem):
    """The key is valid, but its role may not call this operation; ``role`` and ``allowed_roles`` say
    which role it has and which would do."""

    status = 403
    title = "Forbidden"
    type = INSUFFICIENT_ROLE

    def __init__(self, role: str, allowed: tuple[str, ...], operation: str):
        needed = " or ".join(repr(r) for r in allowed)
        super().__init__(
            f"This API key's role is {role!r}; {operation} needs the role {needed}.",
            extensions={"role": role, "allowed_roles": list(allowed)},
        )


class NotFound(Problem):
    status = 404
    title = "Not Found"


class Conflict(Problem):
    status = 409
    title = "Conflict"


class PayloadTooLarge(Problem):
    status = 413
    title = "Content Too Large"

    @classmethod
    def over(cls, limit: int, length: int | None = None) -> PayloadTooLarge:
        """The body (``length`` bytes, when declared) is past ``limit`` bytes."""
        sent = f" ({length:,} bytes declared)" if length is not None else ""
        return cls(f"The request body is larger than this operation's limit of {limit:,} bytes{sent}.")


class UnsupportedMediaType(Problem):
    status = 415
    title = "Unsupported Media Type"


class Unprocessable(Problem):
    status = 422
    title = "Unprocessable Content"

    @classmethod
    def field(cls, path: str, message: str) -> Unprocessable:
        """One invalid field, e.g. ``Unprocessable.field("config.url", "must be http(s)")``."""
        return cls(f"{path}: {message}", errors=[{"field": path, "message": message}])


class TooManyRequests(Problem):
    status = 429
    title = "Too Many Requests"


class TooManyAuthenticationFailures(TooManyRequests):
    """Too many refused keys from one client address this minute: refused before any key is looked up."""

    type = AUTHENTICATION_FAILURES


class UpstreamError(Problem):
    status = 502
    title = "Bad Gateway"


class ServiceUnavailable(Problem):
    """A dependency of ours (the database, the Prefect server) is down; the client should retry."""

    status = 503
    title = "Service Unavailable"
    retry_after_seconds = 5

    def __init__(self, detail: str):
        super().__init__(detail, headers={"Retry-After": str(self.retry_after_seconds)})


class UpstreamTimeout(Problem):
    status = 504
    title = "Gateway Timeout"


def field_path(location: tuple[Any, ...]) -> str:
    """``("records", 1, "features")`` -> ``records[1].features``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def validation_problem(
    error: ValidationError, prefix: tuple[Any, ...] = (), union_tag: str | None = None
) -> Unprocessable:
    """Turn a pydantic error into a 422 naming each field.

    ``union_tag``: the discriminator value of a tagged union, which pydantic puts first in each
    location; it is dropped so the path names the body's own field (``config.url``).
    """
    errors = []
    for item in error.errors(include_url=False, include_input=False):
        location = tuple(item["loc"])
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            location += ("type",)  # every tagged union of this API is tagged by `type`
        elif union_tag is not None and location[:1] == (union_tag,):
            location = location[1:]
        location = prefix + location
        errors.append({"field": field_path(location), "message": item["msg"]})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Unprocessable(detail, errors=errors)


def init_app(app: Flask) -> None:
    """Register one handler per family so every error leaves as problem+json."""

    @app.errorhandler(Problem)
    def _problem(error: Problem) -> Response:
        return error.to_response()

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> Response:
        return validation_problem(error).to_response()

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        problem = Problem(error.description, status=error.code or 500, title=error.name)
        response = problem.to_response()
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_down(error: Exception) -> Response:
        log.warning("database unavailable: %s", type(error).__name__)
        return ServiceUnavailable("The ModelPulse database is unavailable; try again shortly.").to_response()

    @app.errorhandler(httpx.TransportError)
    def _dependency_down(error: httpx.TransportError) -> Response:
        log.warning("a service this API depends on is unreachable: %s", type(error).__name__)
        return ServiceUnavailable("The Prefect server could not be reached; try again shortly.").to_response()

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        detail = repr(error) if app.debug else "An unexpected error occurred."
        return Problem(detail).to_response()
