"""SageMaker push: EventBridge events in AWS's documented shape, posted over HTTP to the inbound
route as an API destination would, about packages and endpoints that exist on moto's SageMaker."""

from __future__ import annotations

import copy
import json
import uuid

import httpx
import pytest

from flows.monitor_endpoints import monitor_endpoints
from store.db import session_scope
from store.models import Integration
from store.registry import record_model_version
from tests.integrations.conftest import AWS_REGION
from tests.integrations.helpers import (
    ensure_sync_deployment,
    integration_id_of,
    model_registered_events,
    monitored,
    run_synced_flow_run,
)
from tests.integrations.platforms.test_sagemaker import KEYS, _package, _serve

EVENTS_KEY = "evk-" + uuid.uuid4().hex

# "Model package state change", as AWS documents it (Events that Amazon SageMaker AI sends to Amazon
# EventBridge), including its duplicated "source" key: the second one (a list) is what JSON keeps.
PACKAGE_EVENT = """{
  "version": "0",
  "id": "844e2571-85d4-695f-b930-0153b71dcb42",
  "detail-type": "SageMaker Model Package State Change",
  "source": "aws.sagemaker",
  "account": "123456789012",
  "time": "2021-02-24T17:00:14Z",
  "region": "us-east-2",
  "resources": ["arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"],
  "source": ["aws.sagemaker"],
  "detail": {
    "ModelPackageGroupName": "versionedmp-p-idy6c3e1fiqj",
    "ModelPackageVersion": 2,
    "ModelPackageArn": "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2",
    "CreationTime": "2021-02-24T17:00:14Z",
    "InferenceSpecification": {
      "Containers": [{"Image": "257758044811.dkr.ecr.us-east-2.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3",
                      "ModelDataUrl": "s3://sagemaker-project-p-idy6c3e1fiqj/model.tar.gz"}],
      "SupportedContentTypes": ["text/csv"],
      "SupportedResponseMIMETypes": ["text/csv"]
    },
    "ModelPackageStatus": "Completed",
    "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
    "CertifyForMarketplace": false,
    "ModelApprovalStatus": "Rejected",
    "LastModifiedTime": "2021-02-24T17:00:14Z"
  }
}"""

# "Endpoint state change", as AWS documents it (epoch milliseconds as its time, IN_SERVICE spelling).
ENDPOINT_EVENT = """{
  "version": "0",
  "id": "d2921b5a-b0ad-cace-a8e3-0f159d018e06",
  "detail-type": "SageMaker Endpoint State Change",
  "source": "aws.sagemaker",
  "account": "123456789012",
  "time": "1583831889050",
  "region": "us-west-2",
  "resources": ["arn:aws:sagemaker:us-west-2:123456789012:endpoint/myendpoint"],
  "detail": {
    "EndpointName": "MyEndpoint",
    "EndpointArn": "arn:aws:sagemaker:us-west-2:123456789012:endpoint/myendpoint",
    "EndpointConfigName": "MyEndpointConfig",
    "ProductionVariants": [{"DesiredWeight": 1.0, "DesiredInstanceCount": 1.0}],
    "EndpointStatus": "IN_SERVICE",
    "CreationTime": 1592411992203.0,
    "LastModifiedTime": 1592411994287.0,
    "Tags": {}
  }
}"""


def _package_event(group: str, version: int, arn: str) -> dict:
    event = json.loads(PACKAGE_EVENT)
    event.update(id=str(uuid.uuid4()), region=AWS_REGION, resources=[arn], time="2026-01-01T00:00:00Z")
    event["detail"].update(ModelPackageGroupName=group, ModelPackageVersion=version, ModelPackageArn=arn)
    return event


def _endpoint_event(arn: str, name: str, status: str, time_ms: int) -> dict:
    event = json.loads(ENDPOINT_EVENT)
    event.update(id=str(uuid.uuid4()), region=AWS_REGION, resources=[arn], time=str(time_ms))
    event["detail"].update(EndpointName=name, EndpointArn=arn, EndpointStatus=status)
    return event


@pytest.fixture
def pushing(create_integration, moto, live_api):
    """A SageMaker integration that takes pushed events, and ``post(event, key=...)`` to its inbound route."""
    base = create_integration(
        "sagemaker",
        {"region_name": AWS_REGION, "endpoint_url": moto, "push_events": True},
        KEYS | {"events_api_key": EVENTS_KEY},
    )
    url = f"{live_api.url}/inbound/sagemaker/{integration_id_of(base)}"

    def post(event: dict, key: str | None = EVENTS_KEY) -> httpx.Response:
        headers = {"Content-Type": "application/json"} | ({"X-ModelPulse-Key": key} if key is not None else {})
        return httpx.post(url, content=json.dumps(event), headers=headers, timeout=30)

    post.base = base
    post.integration_id = integration_id_of(base)
    return post


def _monitor(database_url: str, integration_id: str, group: str, version: str, arn: str) -> None:
    with session_scope(database_url) as session:
        integration = session.get(Integration, integration_id)
        record_model_version(session, integration, group, version, arn, source="api")


def test_the_integration_shows_where_eventbridge_posts_and_masks_the_key(client, org, pushing, live_api):
    integration = client.get(pushing.base, headers=org.headers).get_json()

    assert integration["push"]["enabled"] is True
    assert integration["push"]["inbound_url"] == f"{live_api.url}/inbound/sagemaker/{pushing.integration_id}"
    assert integration["push"]["key_header"] == "X-ModelPulse-Key"
    assert integration["credentials"]["events_api_key"] == "********"
    assert EVENTS_KEY not in json.dumps(integration)


def test_push_events_need_an_events_api_key(client, org, moto):
    body = {
        "name": "no-key",
        "type": "sagemaker",
        "config": {"region_name": AWS_REGION, "endpoint_url": moto, "push_events": True},
        "credentials": KEYS,
    }

    response = client.post(f"/organizations/{org.id}/integrations", json=body, headers=org.headers)

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["credentials.events_api_key"]


def test_a_package_event_of_a_monitored_group_is_recorded_once_and_the_sync_adds_nothing(
    client, org, aws, pushing, sqlite_url
):
    group = f"pushed-{uuid.uuid4().hex[:8]}"
    first = _package(aws, group, "s3://b/1.tar.gz")
    _monitor(sqlite_url, pushing.integration_id, group, "1", first)
    second = _package(aws, group, "s3://b/2.tar.gz")
    created = _package_event(group, 2, second)
    created["detail"].update(ModelPackageStatus="InProgress", ModelApprovalStatus="PendingManualApproval")
    approved = copy.deepcopy(created) | {"id": str(uuid.uuid4())}
    approved["detail"].update(ModelPackageStatus="Completed", ModelApprovalStatus="Approved")

    answers = [pushing(created), pushing(created), pushing(approved)]

    assert [(a.status_code, a.json()["status"]) for a in answers] == [
        (200, "recorded"),
        (200, "duplicate"),  # AWS delivered the same event twice
        (200, "ignored"),  # another state change of the same package: recorded already
    ]
    ensure_sync_deployment()
    run_synced_flow_run(client.post(f"{pushing.base}/sync", headers=org.headers).get_json()["flow_run_id"])
    assert monitored(sqlite_url, pushing.integration_id) == [(group, "1", "api"), (group, "2", "push")]
    events = model_registered_events(sqlite_url, pushing.integration_id)
    assert [(e["version"], e["external_id"], e["source"]) for e in events] == [
        ("1", first, "api"),
        ("2", second, "push"),
    ]


def test_events_of_unmonitored_groups_other_regions_and_other_kinds_are_ignored(aws, pushing, sqlite_url):
    group = f"unmonitored-{uuid.uuid4().hex[:8]}"
    arn = _package(aws, group, "s3://b/1.tar.gz")
    elsewhere = _package_event(group, 1, arn) | {"region": "eu-west-1"}
    training = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "region": AWS_REGION,
        "detail": {"TrainingJobStatus": "Completed"},
    }

    answers = [pushing(_package_event(group, 1, arn)), pushing(elsewhere), pushing(training)]

    assert [a.json()["status"] for a in answers] == ["ignored", "ignored", "ignored"]
    assert monitored(sqlite_url, pushing.integration_id) == []


def test_endpoint_events_are_recorded_as_the_monitor_records_them(client, org, aws, pushing):
    suffix = uuid.uuid4().hex[:8]
    package = _package(aws, f"served-{suffix}", "s3://b/1.tar.gz")
    _serve(aws, f"model-{suffix}", package, f"endpoint-{suffix}")
    arn = aws("sagemaker").describe_endpoint(EndpointName=f"endpoint-{suffix}")["EndpointArn"]
    monitor_endpoints(pushing.integration_id)  # InService, serving model-<suffix>
    now_ms = 4_102_444_800_000  # 2100-01-01: after the monitor's observation

    updating = pushing(_endpoint_event(arn, f"endpoint-{suffix}", "UPDATING", now_ms))
    duplicate = pushing(json.loads(updating.request.content))
    late = pushing(_endpoint_event(arn, f"endpoint-{suffix}", "CREATING", now_ms - 60_000))
    back = pushing(_endpoint_event(arn, f"endpoint-{suffix}", "IN_SERVICE", now_ms + 60_000))

    assert [(a.status_code, a.json()["status"]) for a in (updating, duplicate, late, back)] == [
        (200, "recorded"),
        (200, "duplicate"),
        (200, "ignored"),  # delivered after a newer change: not the endpoint's status any more
        (200, "recorded"),
    ]
    assert monitor_endpoints(pushing.integration_id) == []  # the monitor sees what the push recorded
    endpoints = client.get(f"{pushing.base}/endpoints", headers=org.headers).get_json()["items"]
    changes = next(e for e in endpoints if e["external_id"] == arn)["status_changes"]
    assert [c["status"] for c in changes] == ["InService", "Updating", "InService"]
    assert all(c["deployments"][0]["model"] == f"model-{suffix}" for c in changes)


def test_a_wrong_or_missing_key_is_a_401_and_records_nothing(aws, pushing, sqlite_url):
    group = f"guarded-{uuid.uuid4().hex[:8]}"
    arn = _package(aws, group, "s3://b/1.tar.gz")
    _monitor(sqlite_url, pushing.integration_id, group, "1", arn)
    event = _package_event(group, 2, _package(aws, group, "s3://b/2.tar.gz"))

    wrong = pushing(event, key=EVENTS_KEY[:-1] + "x")
    missing = pushing(event, key=None)
    accepted = pushing(event)

    for refused in (wrong, missing):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert EVENTS_KEY not in refused.text
    assert accepted.json()["status"] == "recorded"  # the refused deliveries took no receipt


def test_an_integration_without_push_has_no_inbound_route(create_integration, moto, live_api):
    quiet = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto}, KEYS)
    event = _package_event("g", 1, "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1")

    response = httpx.post(
        f"{live_api.url}/inbound/sagemaker/{integration_id_of(quiet)}",
        content=json.dumps(event),
        headers={"X-ModelPulse-Key": EVENTS_KEY},
    )

    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


def test_a_body_that_is_not_an_event_is_a_422(pushing):
    response = pushing({"id": str(uuid.uuid4()), "detail-type": "SageMaker Model Package State Change", "detail": {}})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "detail.ModelPackageGroupName"
