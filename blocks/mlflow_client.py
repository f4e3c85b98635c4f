"""The MLflow client a ``blocks.mlflow.MlflowConnection`` hands out: every call in the block's credential
scope, every connection under the egress policy, MLflow's timeouts bounded (see ``blocks.mlflow``).

Imported by ``MlflowConnection.get_client()`` on first use, not with the block: importing it imports
``mlflow``.
"""

from __future__ import annotations

import functools
import inspect
import os
from contextvars import ContextVar
from typing import Any

from mlflow import MlflowClient
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
from mlflow.tracking.request_header.registry import _request_header_provider_registry
from mlflow.utils import request_utils
from pydantic import SecretStr

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
