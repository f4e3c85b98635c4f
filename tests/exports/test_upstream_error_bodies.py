"""A sink (or a proxy in front of it) that answers an HTML page: none of its text reaches /test,
status_detail or run records; a JSON error's documented fields do, at most 300 characters each."""

from __future__ import annotations

import json
import re

import pytest

from flows.export import export
from tests.exports import seed
from tests.fakes.canned import CannedServer, html_page

LONG = 5000


def base(org_id: str) -> str:
    return f"/organizations/{org_id}/exports"


def _create(api, org_id: str, type_: str, url: str, **config) -> str:
    bodies = {
        "elasticsearch": {"config": {"url": url, **config}, "credentials": {"username": "u", "password": "p"}},
        "splunk": {"config": {"hec_url": url, **config}, "credentials": {"hec_token": "t"}},
        "datadog": {"config": {"api_url": url, **config}, "credentials": {"api_key": "k", "app_key": "a"}},
    }
    response = api.post(base(org_id), json={"name": f"{type_}-x", "type": type_, **bodies[type_]})
    assert response.status_code == 201, response.json
    return f"{base(org_id)}/{response.json['id']}"


def _longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(f"{re.escape(char)}+", text)), default=0)


@pytest.mark.parametrize("type_", ["elasticsearch", "splunk", "datadog"])
@pytest.mark.parametrize("status", [403, 500, 502])
def test_an_html_error_page_reaches_no_answer(api, org_id, type_, status):
    marker, page = html_page(status)
    with CannedServer(status, page) as upstream:
        url = _create(api, org_id, type_, upstream.url)
        tested = api.post(f"{url}/test")
        record = api.get(url)

    assert tested.status_code == 200 and tested.json["ok"] is False
    assert marker not in json.dumps([tested.json, record.json])
    assert "<html" not in json.dumps([tested.json, record.json])
    assert upstream.requests, "the sink was asked"
    details = " ".join(check["detail"] for check in tested.json["checks"])
    if not (type_ != "splunk" and status == 403):  # refused credentials say just that
        assert "non-JSON body omitted" in details, details
    assert f"{status}" in details


def test_an_html_page_to_template_installs_stays_out_of_status_detail(api, org_id):
    marker, page = html_page(400)
    with CannedServer(400, page) as upstream:
        url = _create(api, org_id, "elasticsearch", upstream.url)
        detail = api.get(url).json["status_detail"]
    assert detail and "templates not installed" in detail and "non-JSON body omitted" in detail
    assert marker not in detail


def test_an_html_page_to_a_run_stays_out_of_the_run_record(api, org_id):
    seed.inference_logs(org_id, 3)
    marker, page = html_page(403)
    with CannedServer(403, page) as upstream:
        url = _create(api, org_id, "elasticsearch", upstream.url, manage_templates=False)
        with pytest.raises(Exception, match="rejected the credentials"):
            export(url.rsplit("/", 1)[-1])
        runs = api.get(f"{url}/runs").json["items"]
    assert runs[0]["status"] == "failed" and "non-JSON body omitted" in runs[0]["error"]
    assert marker not in json.dumps(runs)


@pytest.mark.parametrize("type_", ["datadog", "elasticsearch"])
def test_html_rejections_stay_out_of_rejected_records(api, org_id, type_):
    seed.inference_logs(org_id, 2)
    marker, page = html_page(400)
    with CannedServer(400, page) as upstream:
        extra = {"manage_templates": False} if type_ == "elasticsearch" else {}
        url = _create(api, org_id, type_, upstream.url, **extra)
        summary = export(url.rsplit("/", 1)[-1])
        rejected = api.get(f"{url}/runs/{summary['run_id']}/rejected").json["items"]
    assert summary["status"] == "completed_with_errors" and len(rejected) == 2
    assert all("non-JSON body omitted" in r["reason"] for r in rejected)
    assert marker not in json.dumps(rejected)


# type -> (a JSON error answer with a 5,000-character documented field, the field's character)
JSON_ERRORS = {
    "elasticsearch": (400, {"error": {"type": "illegal_argument_exception", "reason": "r" * LONG}}, "r"),
    "splunk": (400, {"text": "t" * LONG, "code": 6}, "t"),
    "datadog": (400, {"errors": ["e" * LONG]}, "e"),
}


@pytest.mark.parametrize("type_", list(JSON_ERRORS))
def test_documented_json_fields_are_shown_bounded(api, org_id, type_):
    status, body, char = JSON_ERRORS[type_]
    with CannedServer(status, body) as upstream:
        extra = {"manage_templates": False} if type_ == "elasticsearch" else {}
        url = _create(api, org_id, type_, upstream.url, **extra)
        tested = api.post(f"{url}/test").json
    details = " ".join(check["detail"] for check in tested["checks"])
    assert 200 <= _longest_run(details, char) <= 300, details
    if type_ == "elasticsearch":
        assert "illegal_argument_exception" in details


def test_splunk_rejection_reasons_are_bounded(api, org_id):
    seed.inference_logs(org_id, 1)
    with CannedServer(400, {"text": "t" * LONG, "code": 6, "invalid-event-number": 0}) as upstream:
        url = _create(api, org_id, "splunk", upstream.url)
        summary = export(url.rsplit("/", 1)[-1])
        (rejected,) = api.get(f"{url}/runs/{summary['run_id']}/rejected").json["items"]
    assert rejected["reason"].startswith("HEC code 6: ttt") and len(rejected["reason"]) <= 320
