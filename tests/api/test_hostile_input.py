"""Hostile input at every operation of /openapi.json: 4xx problem+json naming the cause, never a 5xx.

Beyond schemathesis' schema-shaped inputs (tests/api/test_openapi_fuzz.py): malformed bodies (deep
nesting, numbers past a double, NaN, duplicate keys, lone surrogates, invalid UTF-8, wrong content
types, truncated JSON, 10 MB) and hostile query strings, first in process, then against the API
served by gunicorn with the production argv, which must keep serving and must refuse an oversized
body before reading it.
"""

from __future__ import annotations

import socket

import httpx

from tests.api.hostile import (
    HOSTILE_QUERY_VALUES,
    MALFORMED,
    TEN_MB_BODY,
    ensure_remediation_deployment,
    expected_status,
    fill_path,
    operations,
    problem_names,
    resource_bodies,
)

PROBLEM_JSON = "application/problem+json"


def _create_resources(post, headers: dict[str, str]) -> dict[str, str]:
    """The records path parameters point at; ``post(path, json=..., headers=...)`` -> (status, json)."""
    ids = {"organization_id": "acme", "model": "fraud"}
    ensure_remediation_deployment()
    for collection, payload in resource_bodies().items():
        status, record = post(f"/organizations/acme/{collection}", payload, headers)
        assert status == 201, (collection, record)
        ids[collection.rstrip("s") + "_id"] = record["id"]
    # A model with logs, so that its monitor's path is known.
    record = {"model": ids["model"], "features": {"amount": 1.0}, "prediction": 0}
    status, accepted = post("/organizations/acme/inference-logs", {"records": [record]}, headers)
    assert status == 202, accepted
    return ids


def _barrage(send, document: dict, ids: dict[str, str]) -> list[str]:
    """Every malformed body at every operation taking one, and a 10 MB body at every other one.

    ``send(method, path, raw, headers, expected)`` -> (status, content type, problem json or None).
    Returns what went wrong, one line per request.
    """
    failures = []
    for method, template, operation in operations(document):
        path = fill_path(template, ids)
        cases = MALFORMED if "requestBody" in operation else [TEN_MB_BODY]
        for malformed in cases:
            expected = expected_status(malformed, operation) if "requestBody" in operation else 413
            status, content_type, problem = send(method, path, malformed.raw, malformed.headers(), expected)
            if status != expected or not content_type.startswith(PROBLEM_JSON):
                got = f"{status} {content_type}, want {expected}"
                failures.append(f"{method.upper()} {template} [{malformed.name}]: {got}")
            elif not problem_names(malformed, status, problem):
                failures.append(f"{method.upper()} {template} [{malformed.name}]: problem does not name it: {problem}")
    return failures


def test_malformed_bodies_at_every_operation(client, org):
    document = client.get("/openapi.json").get_json()

    def post(path, payload, headers):
        response = client.post(path, json=payload, headers=headers)
        return response.status_code, response.get_json()

    def send(method, path, raw, headers, expected):
        response = client.open(path, method=method.upper(), data=raw, headers=org.headers | headers)
        problem = response.get_json(silent=True) if response.mimetype == PROBLEM_JSON else None
        return response.status_code, response.content_type, problem

    ids = _create_resources(post, org.headers)
    failures = _barrage(send, document, ids)
    assert not failures, "\n".join(failures)
    # None of it got through: nothing more was stored.
    assert len(client.get("/organizations/acme/inference-logs", headers=org.headers).get_json()["items"]) == 1
    webhooks = client.get("/organizations/acme/webhooks", headers=org.headers).get_json()["items"]
    assert [w["name"] for w in webhooks] == [resource_bodies()["webhooks"]["name"]]


def test_hostile_query_strings_at_every_operation(client, org):
    document = client.get("/openapi.json").get_json()

    def post(path, payload, headers):
        response = client.post(path, json=payload, headers=headers)
        return response.status_code, response.get_json()

    ids = _create_resources(post, org.headers)
    failures, refused = [], 0
    for method, template, operation in operations(document):
        names = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
        if method != "get" or not names:
            continue
        for name in names:
            for value in HOSTILE_QUERY_VALUES:
                response = client.get(f"{fill_path(template, ids)}?{name}={value}&{name}={value}", headers=org.headers)
                if response.status_code >= 500:
                    failures.append(f"GET {template}?{name}={value[:20]}: {response.status_code}")
                elif response.status_code >= 400:
                    refused += 1
                    if response.mimetype != PROBLEM_JSON:
                        failures.append(f"GET {template}?{name}={value[:20]}: {response.content_type}")
    assert not failures, "\n".join(failures)
    assert refused > 100  # most of them are refused, not quietly ignored


# --- served by gunicorn -------------------------------------------------------------------------


# ``served`` (tests/api/conftest.py): the API under gunicorn with the production argv, key of ``acme``.


def _request_head(method: str, path: str, key: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method.upper()} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _raw_exchange(port: int, head: bytes, body_parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send a request byte for byte (sending stops if the server closes) and read one response.

    The socket timeout only guards against a hang: a server waiting for body bytes that never come
    never answers, and the read fails.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {received!r}"
            received += chunk
        header_block, _, content = received.partition(b"\r\n\r\n")
        status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
        while len(content) < int(headers["content-length"]):
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-response"
            content += chunk
    return int(status_line.split()[1]), headers, content


def test_served_api_answers_413_before_reading_the_body(served):
    """Content-Length says 50 MB, 9 bytes follow: the answer comes without waiting for the rest."""
    headers = {"Content-Type": "application/json", "Content-Length": str(50 * 1024 * 1024)}
    head = _request_head("POST", "/organizations/acme/events", served.key, headers)
    status, headers, content = _raw_exchange(served.port, head, [b'{"type": '])
    assert status == 413, content
    assert headers["content-type"] == PROBLEM_JSON
    assert "limit of 1,048,576 bytes" in httpx.Response(413, content=content).json()["detail"]
    assert httpx.get(f"{served.url}/health", timeout=30).status_code == 200


def _chunked(body: bytes, size: int = 64 * 1024) -> list[bytes]:
    """``body`` in Transfer-Encoding: chunked framing, ``size`` bytes a chunk."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


def test_served_api_stops_reading_a_chunked_body_past_the_limit(served):
    """No Content-Length to judge by: a body of exactly the limit is read, one byte more is refused."""
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    head = _request_head("POST", "/organizations/acme/events", served.key, headers)
    event = b'{"type": "drift.detected", "data": {"model": "churn", "psi": 0.4}}'
    at_limit = event.ljust(1024 * 1024)  # JSON may end in whitespace
    status, _, content = _raw_exchange(served.port, head, _chunked(at_limit))
    assert status == 202, content
    status, headers, content = _raw_exchange(served.port, head, _chunked(at_limit + b" "))
    assert status == 413, content
    assert headers["content-type"] == PROBLEM_JSON
    assert "limit of 1,048,576 bytes" in httpx.Response(413, content=content).json()["detail"]


def test_served_api_keeps_serving_after_the_barrage(served):
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=60) as http:
        document = http.get("/openapi.json").json()

        def post(path, payload, headers):
            response = http.post(path, json=payload, headers=headers)
            return response.status_code, response.json()

        def send(method, path, raw, headers, expected):
            if expected == 413:
                # Refused unread: the server answers and drops the connection, so a client still sending
                # would see a reset. Send the head and 64 KiB, then read the answer.
                head = _request_head(method, path, served.key, headers | {"Content-Length": str(len(raw))})
                status, response_headers, content = _raw_exchange(served.port, head, [raw[:65536]])
                content_type = response_headers.get("content-type", "")
                return status, content_type, httpx.Response(status, content=content).json()
            response = http.request(method.upper(), path, content=raw, headers=headers)
            content_type = response.headers.get("content-type", "")
            return response.status_code, content_type, response.json() if content_type == PROBLEM_JSON else None

        ids = _create_resources(post, served.headers)
        failures = _barrage(send, document, ids)
        assert not failures, "\n".join(failures)
        assert http.get("/health").json() == {"status": "ok"}
        event = {"type": "drift.detected", "data": {"model": "churn", "psi": 0.4}}
        accepted = http.post("/organizations/acme/events", json=event)
        assert accepted.status_code == 202, accepted.text
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-5000:]
    assert "Worker exiting" not in log and "WORKER TIMEOUT" not in log, log[-5000:]
