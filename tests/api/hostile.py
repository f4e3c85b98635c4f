"""Hostile request bodies and query strings, and how to aim them at every operation of /openapi.json.

Each malformed body carries the status it must get and a fragment of the problem that names its
cause, so a suite checks not only "no 5xx" but that the right layer refused it for the right reason.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

from tests.api.bodies import body

JSON = "application/json"
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Malformed:
    name: str
    raw: bytes
    content_type: str | None
    status: int  # 413 is decided per operation (see ``expected_status``)
    names: str  # a fragment of the problem's detail
    content_encoding: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type} if self.content_type else {}
        if self.content_encoding:
            headers["Content-Encoding"] = self.content_encoding
        return headers


MULTIPART = b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nhook\r\n--x--\r\n'

MALFORMED = [
    Malformed("deep arrays", b"[" * 100_000 + b"]" * 100_000, JSON, 422, "nested deeper than 64 levels"),
    Malformed("deep objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON, 422, "nested deeper than 64 levels"),
    Malformed("float past a double", b'{"name": 1e999}', JSON, 422, "1e999 is beyond the range of a double"),
    Malformed("5000-digit integer", b'{"name": ' + b"9" * 5000 + b"}", JSON, 422, "beyond the range of a double"),
    Malformed("NaN", b'{"name": NaN}', JSON, 422, "NaN is not a JSON number"),
    Malformed("Infinity", b'{"name": Infinity}', JSON, 422, "Infinity is not a JSON number"),
    Malformed("-Infinity", b'{"name": [-Infinity]}', JSON, 422, "-Infinity is not a JSON number"),
    Malformed("duplicate key", b'{"name": "a", "name": "b"}', JSON, 422, "'name' appears twice"),
    Malformed("lone surrogate", b'{"name": "\\ud800"}', JSON, 422, "lone UTF-16 surrogate"),
    Malformed("invalid UTF-8", b'{"name": "\xc3\x28"}', JSON, 422, "not valid UTF-8"),
    Malformed("UTF-16", '{"name": "a"}'.encode("utf-16"), JSON, 422, "not valid UTF-8"),
    Malformed("truncated", b'{"name": "a", "config": {"ur', JSON, 422, "not valid JSON"),
    Malformed("form-encoded text as JSON", b"name=a&type=mlflow", JSON, 422, "not valid JSON"),
    Malformed("text/plain", b'{"name": "a"}', "text/plain", 415, "Content-Type: application/json"),
    Malformed("form", b"name=a", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
    Malformed("multipart", MULTIPART, "multipart/form-data; boundary=x", 415, "Content-Type: application/json"),
    Malformed("no content type", b'{"name": "a"}', None, 415, "Content-Type: application/json"),
    Malformed("latin-1 JSON", b'{"name": "a"}', "application/json; charset=latin-1", 415, "UTF-8"),
    Malformed("gzip", gzip.compress(b'{"name": "a"}'), JSON, 415, "Content-Encoding", content_encoding="gzip"),
    # Past every limit but the inference-log batches' (16 MiB): there it is parsed, and is not an object.
    Malformed("10 MB", b'["' + b"a" * TEN_MB + b'"]', JSON, 422, "should be a valid dictionary"),
]
TEN_MB_BODY = MALFORMED[-1]

# Query values a client should never send; each parameter gets each of them.
HOSTILE_QUERY_VALUES = [
    "1e999",
    "9" * 5000,
    "NaN",
    "-Infinity",
    "-1",
    "%ff%fe%c3%28",  # invalid UTF-8, percent-encoded
    "%ed%a0%80",  # an encoded lone surrogate
    "%00",
    "x" * 10_000,
    "2026-13-45T99:99:99Z",
    "[[[[[[[[",
]


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    """(method, path template, operation) of every documented operation; deletions last."""
    found = [
        (method, path, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
    ]
    yield from sorted(found, key=lambda item: item[0] == "delete")


def expected_status(malformed: Malformed, operation: dict) -> int:
    """413 when the body is past the operation's documented limit, else the body's own status."""
    limit = operation.get("requestBody", {}).get("x-max-body-bytes", 1024 * 1024)
    return 413 if len(malformed.raw) > limit else malformed.status


def problem_names(malformed: Malformed, status: int, problem: dict) -> bool:
    if status == 413:
        return "limit of" in problem.get("detail", "")
    text = problem.get("detail", "") + " ".join(error["message"] for error in problem.get("errors", []))
    return malformed.names in text


def resource_bodies() -> dict[str, dict]:
    """Valid bodies for the records the path parameters point at (so requests get past the 404s)."""
    return {
        "integrations": body("integrations", "mlflow"),
        "exports": body("exports", "elasticsearch"),
        "webhooks": body("webhooks"),
        "thresholds": {"metric": "records.count", "operator": ">", "value": 1000},
        "remediations": {"name": "retrain", "on": {"type": "drift.detected"}, "deployment": REMEDIATION_DEPLOYMENT},
    }


# The Prefect deployment the remediation above runs (``ensure_remediation_deployment`` creates it).
REMEDIATION_DEPLOYMENT = "hostile-input-retrain/on-drift"


def ensure_remediation_deployment() -> None:
    """Create the remediation's deployment on the Prefect server of ``PREFECT_API_URL`` (no flow code: it
    is never run)."""
    from prefect.client.orchestration import get_client

    flow_name, deployment_name = REMEDIATION_DEPLOYMENT.split("/")
    with get_client(sync_client=True) as client:
        client.create_deployment(client.create_flow_from_name(flow_name), deployment_name)


def fill_path(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path
