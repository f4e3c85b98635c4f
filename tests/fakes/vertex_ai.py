"""A wire-level fake of the Vertex AI v1 REST surface the GAPIC clients use, plus an OAuth token endpoint.

It speaks what ``google.cloud.aiplatform_v1`` sends over its REST transport and what google-auth
sends to a service account's ``token_uri``:

- ``POST /token``: a JWT-bearer grant; the assertion's RS256 signature is checked against the public
  keys the test registered, so a key the fake does not know is rejected like Google does
  (``invalid_grant``); a good one gets a bearer token.
- ``GET  /v1/projects/{p}/locations/{l}/models`` (``filter=display_name="..."``, paging)
- ``GET  /v1/projects/{p}/locations/{l}/models/{id}[@{version}]``
- ``GET  /v1/projects/{p}/locations/{l}/models/{id}:listVersions``
- ``POST /v1/projects/{p}/locations/{l}/models:upload`` -> a long-running operation, polled with
  ``GET /ui/projects/{p}/locations/{l}/operations/{op}`` (also served under ``/v1``)
- ``GET  /v1/projects/{p}/locations/{l}/endpoints``

Every API call needs a token the fake issued. Requests are recorded; faults (an error status or a
delay for the next N calls) can be injected.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.servers import SHUTDOWN_POLL_SECONDS

UPLOAD_RESPONSE_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def new_service_account(token_uri: str, project_id: str = "demo-project") -> tuple[dict[str, Any], str]:
    """A throwaway service-account key JSON (fresh RSA key) and its public key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": f"modelpulse@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbits(64)),
        "token_uri": token_uri,
    }
    return info, public_pem


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


@dataclass
class Fault:
    status: int | None = None
    message: str = "injected fault"
    delay: float = 0.0
    remaining: int = 1


@dataclass
class FakeVertexAi:
    """State of the fake: models (each a list of versions), endpoints, operations, issued tokens."""

    public_keys: list[str] = field(default_factory=list)
    polls_before_done: int = 1
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # model id -> versions
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))

    # -- test controls ---------------------------------------------------------------------

    def inject(self, status: int | None = None, message: str = "injected fault", delay: float = 0.0, times: int = 1):
        """Fail (``status``) and/or slow down (``delay`` seconds) the next ``times`` API calls."""
        self.faults.append(Fault(status, message, delay, times))

    def add_model(self, parent: str, display_name: str, artifact_uri: str = "gs://bucket/model") -> dict[str, Any]:
        """A model with one version, as if uploaded earlier."""
        model_id = str(next(self._ids))
        self.models[model_id] = []
        return self._add_version(parent, model_id, {"displayName": display_name, "artifactUri": artifact_uri})

    def add_version(self, parent: str, model_id: str, artifact_uri: str = "gs://bucket/model-v2") -> dict[str, Any]:
        latest = self.models[model_id][-1]
        return self._add_version(parent, model_id, {"displayName": latest["displayName"], "artifactUri": artifact_uri})

    def add_endpoint(
        self, parent: str, display_name: str, deployed: list[tuple[dict[str, Any], int]]
    ) -> dict[str, Any]:
        """An endpoint serving ``(model version, traffic %)`` pairs."""
        endpoint_id = str(next(self._ids))
        endpoint = {"name": f"{parent}/endpoints/{endpoint_id}", "displayName": display_name, "createTime": _now()}
        self.endpoints.append(endpoint)
        self.deploy(endpoint, deployed)
        return endpoint

    def deploy(self, endpoint: dict[str, Any], deployed: list[tuple[dict[str, Any], int]]) -> None:
        """Replace what the endpoint serves (and its traffic split)."""
        models, split = [], {}
        for version, traffic in deployed:
            deployed_id = str(next(self._ids))
            models.append(
                {
                    "id": deployed_id,
                    "model": version["name"],
                    "modelVersionId": version["versionId"],
                    "displayName": version["displayName"],
                }
            )
            split[deployed_id] = traffic
        endpoint.update(deployedModels=models, trafficSplit=split, updateTime=_now())

    def _add_version(self, parent: str, model_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        versions = self.models[model_id]
        for version in versions:
            version["versionAliases"] = [a for a in version.get("versionAliases", []) if a != "default"]
        now = _now()
        version = {
            **spec,
            "name": f"{parent}/models/{model_id}",
            "versionId": str(len(versions) + 1),
            "versionAliases": ["default"],
            "createTime": versions[0]["createTime"] if versions else now,
            "updateTime": now,
            "versionCreateTime": now,
            "versionUpdateTime": now,
            "labels": spec.get("labels", {}),
        }
        versions.append(version)
        return version

    def _with_deployments(self, version: dict[str, Any]) -> dict[str, Any]:
        refs = [
            {"endpoint": endpoint["name"], "deployedModelId": deployed["id"]}
            for endpoint in self.endpoints
            for deployed in endpoint.get("deployedModels", [])
            if deployed["model"] == version["name"] and deployed["modelVersionId"] == version["versionId"]
        ]
        return {**version, "deployedModels": refs} if refs else dict(version)

    def default_version(self, model_id: str) -> dict[str, Any]:
        versions = self.models[model_id]
        return next((v for v in versions if "default" in v["versionAliases"]), versions[-1])

    # -- protocol ------------------------------------------------------------------------------

    def issue_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        assertion = (form.get("assertion") or [""])[0]
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            signed = f"{header_b64}.{claims_b64}".encode()
            signature = _b64decode(signature_b64)
        except ValueError:
            return 400, {"error": "invalid_request", "error_description": "Malformed JWT assertion."}
        for pem in self.public_keys:
            public_key = serialization.load_pem_public_key(pem.encode())
            try:
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
            except InvalidSignature:
                continue
            token = "ya29.fake-" + secrets.token_urlsafe(16)
            self.tokens.add(token)
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, dict[str, Any]]:
        path = unquote(path)
        match = re.fullmatch(r"/(?:v1|ui)/(projects/[^/]+/locations/[^/]+)/(.*)", path)
        if not match:
            return _error(404, f"Unknown path {path}", "NOT_FOUND")
        parent, rest = match.groups()
        if method == "GET" and rest == "models":
            return self._list_models(parent, query)
        if method == "POST" and rest == "models:upload":
            return self._upload(parent, body)
        if method == "GET" and rest == "endpoints":
            return 200, {"endpoints": [dict(e) for e in self.endpoints if e["name"].startswith(parent + "/")]}
        if method == "GET" and (op := re.fullmatch(r"operations/([^/:]+)", rest)):
            return self._poll(parent, op.group(1))
        if method == "GET" and (found := re.fullmatch(r"models/([^/:@]+)(?:@([^/:]+))?(:listVersions)?", rest)):
            model_id, version_id, list_versions = found.groups()
            if model_id not in self.models:
                return _error(404, f"Model {parent}/models/{model_id} not found.", "NOT_FOUND")
            if list_versions:
                return 200, {"models": [self._with_deployments(v) for v in self.models[model_id]]}
            versions = self.models[model_id]
            version = (
                next((v for v in versions if v["versionId"] == version_id), None)
                if version_id
                else self.default_version(model_id)
            )
            if version is None:
                return _error(404, f"Model version {version_id} not found.", "NOT_FOUND")
            return 200, self._with_deployments(version)
        return _error(404, f"Unknown path {path}", "NOT_FOUND")

    def _list_models(self, parent: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        wanted = None
        if query.get("filter"):
            found = re.fullmatch(r'\s*display_name\s*=\s*"(.*)"\s*', query["filter"][0])
            if not found:
                return _error(400, f"Unsupported filter: {query['filter'][0]}", "INVALID_ARGUMENT")
            wanted = found.group(1)
        models = [
            self._with_deployments(self.default_version(model_id))
            for model_id, versions in self.models.items()
            if versions[0]["name"].startswith(parent + "/")
            and (wanted is None or versions[-1]["displayName"] == wanted)
        ]
        size = int((query.get("pageSize") or ["100"])[0]) or 100
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        page = {"models": models[start : start + size]}
        if start + size < len(models):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def _upload(self, parent: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spec = body.get("model") or {}
        if not spec.get("displayName"):
            return _error(400, "model.display_name is required.", "INVALID_ARGUMENT")
        if body.get("parentModel"):
            model_id = body["parentModel"].rsplit("/", 1)[-1]
            if model_id not in self.models:
                return _error(404, f"Parent model {body['parentModel']} not found.", "NOT_FOUND")
        else:
            model_id = str(next(self._ids))
            self.models[model_id] = []
        operation_id = str(next(self._ids))
        self.operations[operation_id] = {"parent": parent, "model_id": model_id, "spec": spec, "polls": 0}
        return 200, {"name": f"{parent}/operations/{operation_id}", "done": False}

    def _poll(self, parent: str, operation_id: str) -> tuple[int, dict[str, Any]]:
        operation = self.operations.get(operation_id)
        if operation is None:
            return _error(404, f"Operation {operation_id} not found.", "NOT_FOUND")
        name = f"{parent}/operations/{operation_id}"
        operation["polls"] += 1
        if operation["polls"] <= self.polls_before_done:
            return 200, {"name": name, "done": False}
        if "version" not in operation:
            operation["version"] = self._add_version(parent, operation["model_id"], operation["spec"])
        version = operation["version"]
        response = {"@type": UPLOAD_RESPONSE_TYPE, "model": version["name"], "modelVersionId": version["versionId"]}
        return 200, {"name": name, "done": True, "response": response}


def _error(code: int, message: str, status: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVertexAi
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.fake
        if parts.path == "/token":
            status, payload = fake.issue_token(parse_qs(raw.decode()))
            fake.requests.append(Recorded(method, parts.path, {}, None, None))
            return self._reply(status, payload)
        body = json.loads(raw) if raw else None
        authorization = self.headers.get("Authorization")
        with fake.lock:
            fake.requests.append(Recorded(method, parts.path, parse_qs(parts.query), body, authorization))
            fault = fake.faults[0] if fake.faults else None
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    fake.faults.pop(0)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status:
            return self._reply(fault.status, _error(fault.status, fault.message, "UNAVAILABLE")[1])
        token = (authorization or "").removeprefix("Bearer ")
        if token not in fake.tokens:
            return self._reply(
                *_error(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                    "UNAUTHENTICATED",
                )
            )
        with fake.lock:
            status, payload = fake.handle(method, parts.path, parse_qs(parts.query), body)
        self._reply(status, payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class VertexAiServer:
    """The fake on a free loopback port, in a background thread. Use as a context manager."""

    def __init__(self, fake: FakeVertexAi | None = None) -> None:
        self.fake = fake or FakeVertexAi()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def __enter__(self) -> VertexAiServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
