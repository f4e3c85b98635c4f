"""MLflow tracking server block: URI plus optional basic auth or bearer token.

Credentials and MLflow: the MLflow client reads its credentials from process-wide environment
variables (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``), which would leak one integration's
credentials into every other integration served by the same process (and into every subprocess it
starts). Instead, ``get_client()`` returns an ``MlflowClient`` whose every method runs inside a
*credential scope*: a ``ContextVar`` holding this block's ``Authorization`` header value, read by a
request-header provider registered once with MLflow. The header therefore exists only for the
duration of the call, only in the calling thread/context, never in ``os.environ`` and never in a log
line (the value stays a ``SecretStr`` until the provider renders it for the request).

Timeouts: MLflow's defaults (120 s per request, 7 retries with exponential backoff) would keep an
API request hanging for minutes on an unreachable server. Unless the operator set them, this module
defaults them to 10 s and 1 retry (``MLFLOW_HTTP_REQUEST_TIMEOUT``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``); our tasks add their own retries on top.
"""

from __future__ import annotations

import base64
import functools
import inspect
import os
from contextvars import ContextVar
from typing import Any

from mlflow import MlflowClient
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
from mlflow.tracking.request_header.registry import _request_header_provider_registry
from mlflow.utils import request_utils
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.cache import cached_client
from blocks.egress.urllib3_pools import guard_requests_session

for _name, _default in (
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
):
    os.environ.setdefault(_name, _default)


def _guarded_sessions(make_session: Any) -> Any:
    @functools.wraps(make_session)
    def make(*args: Any, **kwargs: Any) -> Any:
        return guard_requests_session(make_session(*args, **kwargs))

    make.guarded = True
    return make


# Every MLflow request goes through a requests session MLflow builds and caches (per retry policy and
# process); guarding each one it hands out puts every tracking-server connection under the egress policy.
if not getattr(request_utils._cached_get_request_session, "guarded", False):
    request_utils._cached_get_request_session = _guarded_sessions(request_utils._cached_get_request_session)

_authorization: ContextVar[SecretStr | None] = ContextVar("modelpulse_mlflow_authorization", default=None)


class ScopedAuthorizationHeaderProvider(RequestHeaderProvider):
    """Adds the ``Authorization`` header of the credential scope the current call runs in."""

    def in_context(self) -> bool:
        return _authorization.get() is not None

    def request_headers(self) -> dict[str, str]:
        value = _authorization.get()
        return {"Authorization": value.get_secret_value()} if value is not None else {}


_request_header_provider_registry.register(ScopedAuthorizationHeaderProvider)


class CredentialScopedMlflowClient(MlflowClient):
    """An ``MlflowClient`` whose every call carries one block's credentials (see the module doc)."""

    def __init__(self, tracking_uri: str, authorization: SecretStr | None) -> None:
        self._authorization = authorization
        super().__init__(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _in_credential_scope(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: CredentialScopedMlflowClient, *args: Any, **kwargs: Any) -> Any:
        token = _authorization.set(self._authorization)
        try:
            return method(self, *args, **kwargs)
        finally:
            _authorization.reset(token)

    return call


for _name, _member in vars(MlflowClient).items():
    if inspect.isfunction(_member) and not _name.startswith("__"):
        setattr(CredentialScopedMlflowClient, _name, _in_credential_scope(_member))


class MlflowConnection(Block):
    """Where and how to reach an MLflow tracking server.

    Example:
        ```python
        from blocks.mlflow import MlflowConnection
        client = MlflowConnection.load("modelpulse-integration-int-01...").get_client()
        client.search_registered_models()
        ```
    """

    _block_type_name = "ModelPulse MLflow Connection"
    _block_type_slug = "modelpulse-mlflow-connection"
    _description = "MLflow tracking server URI and optional credentials."

    tracking_uri: str = Field(title="Tracking URI", description="e.g. http://mlflow-server:5000")
    username: str | None = Field(default=None, title="Username")
    password: SecretStr | None = Field(default=None, title="Password")
    token: SecretStr | None = Field(default=None, title="Token")
    webhook_secret: SecretStr | None = Field(
        default=None,
        title="Webhook secret",
        description="Signs the deliveries of the MLflow webhook ModelPulse registered (generated, never shown).",
    )

    @classmethod
    def from_settings(cls, config: dict[str, Any], credentials: dict[str, Any]) -> MlflowConnection:
        return cls(
            tracking_uri=config["tracking_uri"],
            username=credentials.get("username"),
            password=credentials.get("password"),
            token=credentials.get("token"),
            webhook_secret=credentials.get("webhook_secret"),
        )

    def credentials(self) -> dict[str, Any]:
        """The secrets the API takes and masks (the generated webhook secret is not one of them)."""
        return {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "token": self.token.get_secret_value() if self.token else None,
        }

    def authorization(self) -> SecretStr | None:
        """The ``Authorization`` header value: basic auth if a username is set, else the bearer token."""
        if self.username and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return SecretStr(f"Basic {base64.b64encode(pair).decode()}")
        if self.token is not None:
            return SecretStr(f"Bearer {self.token.get_secret_value()}")
        return None

    def get_client(self) -> MlflowClient:
        """An ``MlflowClient`` for this server whose calls carry this block's credentials only."""
        return cached_client(
            self, {}, lambda _options: CredentialScopedMlflowClient(self.tracking_uri, self.authorization())
        )
