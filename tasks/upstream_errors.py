"""What an upstream's error answer may put in ours: its HTTP status and the error fields its platform
documents, each at most ``MAX_FIELD_CHARS`` characters, never its raw body.

A sink, registry or a proxy in front of one (or a cloud metadata service a URL was pointed at) may
answer anything; an HTML page or a stack trace must not reach ``/test`` answers, ``status_detail``,
502 details or run records. Each platform's documented fields:

=============  ==========================================================
platform       fields read from a JSON body
=============  ==========================================================
elasticsearch  ``error.type``, ``error.reason`` (``error`` as a string too)
splunk         ``code``, ``text``
mlflow         ``error_code``, ``message``
datadog        ``errors`` (strings, or objects' ``title``/``detail``)
google         ``error.status``, ``error.message``
oauth          ``error``, ``error_description`` (a token endpoint)
aws            ``Code``, ``Message`` (botocore's parsed error)
problem        ``title``, ``detail`` (RFC 9457: our own inbound route)
=============  ==========================================================

Client libraries put the body in their exceptions' text (``ApiError``, ``ApiException``, MLflow's
message, google-api-core's ``message``), so each has its own reader here; callers never format a
library exception with ``str()``.

Example:
    >>> answer_summary("splunk", 403, b'{"text":"Invalid token","code":4}')
    'HTTP 403: code 4: Invalid token'
    >>> answer_summary("splunk", 502, b"<html>proxy error</html>")
    'HTTP 502 (non-JSON body omitted)'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

MAX_FIELD_CHARS = 300
_SPACE = re.compile(r"\s+")


def bounded(value: Any) -> str:
    """One line of at most ``MAX_FIELD_CHARS`` characters (an ellipsis marks a cut)."""
    text = _SPACE.sub(" ", str(value)).strip()
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def _pair(first: Any, second: Any) -> list[str]:
    parts = [bounded(v) for v in (first, second) if v not in (None, "")]
    return [": ".join(parts)] if parts else []


def _elasticsearch(body: Any) -> list[str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return _pair(error.get("type"), error.get("reason"))
    return [bounded(error)] if isinstance(error, str) else []


def _splunk(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    code = body.get("code")
    return _pair(f"code {code}" if isinstance(code, int) else None, body.get("text"))


def _mlflow(body: Any) -> list[str]:
    return _pair(body.get("error_code"), body.get("message")) if isinstance(body, dict) else []


def _datadog(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    found = []
    for item in errors[:3]:
        if isinstance(item, str):
            found.append(bounded(item))
        elif isinstance(item, dict):
            found += _pair(item.get("title"), item.get("detail"))
    return found


def _google(body: Any) -> list[str]:
    error = body.get("error") if isinstance(body, dict) else None
    return _pair(error.get("status"), error.get("message")) if isinstance(error, dict) else []


def _oauth(body: Any) -> list[str]:
    return _pair(body.get("error"), body.get("error_description")) if isinstance(body, dict) else []


def _aws(body: Any) -> list[str]:
    error = body.get("Error") if isinstance(body, dict) else None
    return _pair(error.get("Code"), error.get("Message")) if isinstance(error, dict) else []


def _problem(body: Any) -> list[str]:
    return _pair(body.get("title"), body.get("detail")) if isinstance(body, dict) else []


DOCUMENTED_FIELDS: dict[str, Callable[[Any], list[str]]] = {
    "elasticsearch": _elasticsearch,
    "splunk": _splunk,
    "mlflow": _mlflow,
    "datadog": _datadog,
    "google": _google,
    "oauth": _oauth,
    "aws": _aws,
    "problem": _problem,
}


def _parsed(body: Any) -> Any:
    """A JSON body as Python values; ``None`` for anything that is not JSON."""
    if isinstance(body, (dict, list)):
        return body
    if isinstance(body, (bytes, bytearray, str)):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return None


def error_fields(platform: str, body: Any) -> str | None:
    """The platform's documented error fields in ``body`` (bytes, text or parsed JSON) as one line,
    or ``None`` when it has none (or is not JSON)."""
    fields = DOCUMENTED_FIELDS[platform](_parsed(body))
    return "; ".join(fields) if fields else None


def body_summary(platform: str, body: Any) -> str:
    """The documented fields of ``body``, or what kind of body was left out."""
    fields = error_fields(platform, body)
    if fields:
        return fields
    if body in (None, b"", ""):
        return "empty body"
    return "non-JSON body omitted" if _parsed(body) is None else "body without documented error fields omitted"


def answer_summary(platform: str, status: int | None, body: Any) -> str:
    """``HTTP <status>: <documented fields>`` or ``HTTP <status> (non-JSON body omitted)``."""
    head = f"HTTP {status}" if status is not None else "an answer"
    fields = error_fields(platform, body)
    return f"{head}: {fields}" if fields else f"{head} ({body_summary(platform, body)})"


# --- client libraries' exceptions (duck-typed: this module imports none of them) ---------------


def elasticsearch_error(error: Any) -> str:
    """An ``elasticsearch.ApiError`` (its ``message`` and ``str()`` quote a non-JSON body)."""
    return answer_summary("elasticsearch", getattr(error, "status_code", None), getattr(error, "body", None))


def datadog_error(error: Any) -> str:
    """A ``datadog_api_client.exceptions.ApiException`` (its ``str()`` holds headers and body)."""
    return answer_summary("datadog", getattr(error, "status", None), getattr(error, "body", None))


def google_error(error: Any) -> str:
    """A ``google.api_core.exceptions.GoogleAPICallError``: from its HTTP response when it has one
    (its ``message`` is the raw text of a non-JSON body), else its code and message (a long-running
    operation's error, which Vertex AI sent as JSON)."""
    response = getattr(error, "response", None)
    if response is not None and hasattr(response, "status_code"):
        return answer_summary("google", response.status_code, response.content)
    code = getattr(error, "code", None)
    return "; ".join(_pair(getattr(code, "name", code), getattr(error, "message", None))) or type(error).__name__


def google_token_error(error: Any) -> str:
    """A ``google.auth.exceptions.RefreshError``: the token endpoint's OAuth fields when it answered
    JSON (its second argument), else nothing of what it answered."""
    data = error.args[1] if len(error.args) > 1 else None
    return error_fields("oauth", data) or "the token endpoint's answer (not OAuth JSON) omitted"


_AWS_XML_ERROR = re.compile(
    r"^\s*(<\?xml[^>]*\?>\s*)?<(ErrorResponse|Error)\b.*?<Code>([^<]{1,200})</Code>\s*<Message>([^<]*)</Message>", re.S
)


def aws_error(error: Any) -> str:
    """A ``botocore.exceptions.ClientError``. botocore puts a body it cannot parse in ``Message``
    (and the status in ``Code``): only AWS's XML error document (``<ErrorResponse>``, which a
    JSON-protocol client does not parse) is read from it, never anything else."""
    response = getattr(error, "response", None) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = str((response.get("Error") or {}).get("Code") or "")
    message = str((response.get("Error") or {}).get("Message") or "")
    if message.lstrip().startswith("<"):
        document = _AWS_XML_ERROR.match(message[:65536])
        if document is None:
            return f"HTTP {status or code or '?'} (no AWS error document; body omitted)"
        code, message = document.group(3), document.group(4)
    elif not code or code.isdigit():
        return f"HTTP {status or code or '?'} (no AWS error document; body omitted)"
    return f"HTTP {status}: " + "; ".join(_pair(code, message)) if status else "; ".join(_pair(code, message))


_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")
# The egress guard's own words (blocks/egress): safe to show, and the reason an operator needs.
_EGRESS_REFUSAL = re.compile(
    r"refused to connect to [\w.:\[\]-]+: "
    r"(?:[0-9a-fA-F.:]+ is an? [a-z0-9 -]+ address(?: \(open it by listing its own network\))?(?:; )?)+"
)


def egress_refusal(error: Any) -> str | None:
    """The egress policy's refusal quoted in a library's error text, if the connection was refused."""
    refusal = _EGRESS_REFUSAL.search(str(error))
    return bounded(refusal.group(0).rstrip()) if refusal else None


def connect_failure(error: Any) -> str:
    """A connection that failed before any answer (urllib3/requests text), in a few words:
    ``could not connect to host:port: Connection refused``."""
    if refusal := egress_refusal(error):
        return refusal
    text = str(error)
    where, cause = _HOST_PORT.search(text), _ERRNO.search(text)
    if where is None:
        return bounded(text)
    return bounded(f"could not connect to {where.group(1)}:{where.group(2)}" + (f": {cause.group(1)}" if cause else ""))


_MLFLOW_STATUS = re.compile(r"failed with error code (\d{3})")
_MLFLOW_RETRIED_STATUS = re.compile(r"too many (\d{3}) error responses")
_MLFLOW_REQUEST = re.compile(r"API request to (\S+) failed with exception")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def mlflow_status(error: Any) -> int | None:
    """The HTTP status MLflow answered an ``MlflowException`` with (``None``: it did not answer)."""
    if isinstance(getattr(error, "json", None), dict):
        return error.get_http_status_code()
    status = _MLFLOW_STATUS.search(str(getattr(error, "message", "") or ""))
    return int(status.group(1)) if status else None


def mlflow_error(error: Any) -> str:
    """An ``mlflow.exceptions.MlflowException``: a ``RestException``'s JSON fields; otherwise MLflow's
    text quotes a non-JSON body after ``Response body:`` (dropped) or a failed request's whole URL
    and retry history (shortened to what failed, and where)."""
    payload = getattr(error, "json", None)
    if isinstance(payload, dict):
        return error_fields("mlflow", payload) or "MLflow answered an error without error_code or message"
    message = str(getattr(error, "message", "") or "")
    if "Response body:" in message:
        status = _MLFLOW_STATUS.search(message)
        return answer_summary("mlflow", int(status.group(1)) if status else 200, b"<omitted>")
    retried = _MLFLOW_RETRIED_STATUS.search(message)
    if retried:
        return f"HTTP {retried.group(1)} after retries (body omitted)"
    if refusal := egress_refusal(message):
        return refusal
    request = _MLFLOW_REQUEST.search(message)
    if request:
        where = urlsplit(request.group(1)).netloc
        cause = _ERRNO.search(message)
        if cause:
            return bounded(f"could not connect to {where}: {cause.group(1)}")
        if "timed out" in message.lower() or "timeout" in message.lower():
            return f"{where} timed out"
        return f"the request to {where} failed"
    return bounded(message)
