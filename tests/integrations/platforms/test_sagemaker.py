"""SageMaker integration against moto's server (SageMaker, CloudWatch, IAM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from moto.core.authorization import enable_iam_authentication

from flows.monitor_endpoints import monitor_endpoints
from tests.integrations.conftest import AWS_REGION
from tests.integrations.helpers import (
    ensure_sync_deployment,
    integration_id_of,
    model_registered_events,
    monitored,
    run_synced_flow_run,
)

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def sagemaker_integration(create_integration, moto):
    return create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": moto}, KEYS)


def _package(aws, group: str, data: str) -> str:
    sagemaker = aws("sagemaker")
    try:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    except sagemaker.exceptions.ClientError:
        pass  # already there
    return sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": data}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def _serve(aws, model: str, package_arn: str, endpoint: str) -> None:
    sagemaker = aws("sagemaker")
    sagemaker.create_model(ModelName=model, PrimaryContainer={"ModelPackageName": package_arn}, ExecutionRoleArn=ROLE)
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")


def test_lists_package_versions_and_models_with_their_endpoints(client, org, aws, sagemaker_integration):
    arn = _package(aws, "listed-group", "s3://bucket/listed/1.tar.gz")
    _serve(aws, "listed-model", arn, "listed-endpoint")

    response = client.get(f"{sagemaker_integration}/models?limit=500", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    items = {i["external_id"]: i for i in response.get_json()["items"]}
    assert items[arn]["name"] == "listed-group"
    assert items[arn]["version"] == "1"
    assert items[arn]["endpoints"] == ["listed-endpoint"]
    model = next(i for i in items.values() if i["name"] == "listed-model")
    assert model["endpoints"] == ["listed-endpoint"] and model["source"] == arn


def test_register_creates_a_package_in_a_new_group_and_emits_event(client, org, aws, sagemaker_integration, sqlite_url):
    body = {
        "name": "churn",
        "model_package_group": "registered-group",
        "image_uri": IMAGE,
        "model_data_url": "s3://bucket/registered/1.tar.gz",
        "tags": {"team": "risk"},
        "execution_role_arn": ROLE,
    }

    response = client.post(f"{sagemaker_integration}/register-model", json=body, headers=org.headers)

    assert response.status_code == 201, response.get_json()
    registered = response.get_json()
    packages = aws("sagemaker").list_model_packages(ModelPackageGroupName="registered-group")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in packages] == [registered["external_id"]]
    model = aws("sagemaker").describe_model(ModelName="churn")
    assert model["PrimaryContainer"]["ModelPackageName"] == registered["external_id"]
    integration_id = integration_id_of(sagemaker_integration)
    assert monitored(sqlite_url, integration_id) == [("registered-group", "1", "api")]
    [event] = model_registered_events(sqlite_url, integration_id)
    assert event["external_id"] == registered["external_id"] and event["source"] == "api"
    assert event["integration_type"] == "sagemaker"


def test_register_without_image_names_the_field(client, org, sagemaker_integration):
    body = {"name": "m", "model_package_group": "g", "model_data_url": "s3://b/m.tar.gz"}

    response = client.post(f"{sagemaker_integration}/register-model", json=body, headers=org.headers)

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["image_uri"]


def test_endpoints_show_variants_metrics_and_recorded_status_changes(client, org, aws, sagemaker_integration):
    arn = _package(aws, "served-group", "s3://bucket/served/1.tar.gz")
    _serve(aws, "served-model", arn, "served-endpoint")
    aws("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "served-endpoint"},
                    {"Name": "VariantName", "Value": "primary"},
                ],
                # A minute ago: a point stamped within the query's own second can fall past its end
                # (the query's EndTime is "now" on the wire, to the second).
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                "Value": 42.0,
            }
        ],
    )
    changes = monitor_endpoints(integration_id_of(sagemaker_integration))

    response = client.get(f"{sagemaker_integration}/endpoints", headers=org.headers)

    assert response.status_code == 200, response.get_json()
    endpoint = next(e for e in response.get_json()["items"] if e["name"] == "served-endpoint")
    assert endpoint["status"] == "InService"
    [variant] = endpoint["deployments"]
    assert variant["model"] == "served-model" and variant["model_version"] == "1" and variant["traffic"] == 100
    assert endpoint["metrics"]["invocations"] == 42.0
    assert {"endpoint": "served-endpoint", "status": "InService"} in changes
    assert [c["status"] for c in endpoint["status_changes"]] == ["InService"]
    assert monitor_endpoints(integration_id_of(sagemaker_integration)) == []  # nothing changed since


def test_sync_records_new_package_versions(client, org, aws, sagemaker_integration, sqlite_url):
    body = {
        "name": "churn",
        "model_package_group": "synced-group",
        "image_uri": IMAGE,
        "model_data_url": "s3://b/1.tar.gz",
    }
    assert client.post(f"{sagemaker_integration}/register-model", json=body, headers=org.headers).status_code == 201
    newer = _package(aws, "synced-group", "s3://b/2.tar.gz")
    ensure_sync_deployment()

    response = client.post(f"{sagemaker_integration}/sync", headers=org.headers)

    assert response.status_code == 202
    run_synced_flow_run(response.get_json()["flow_run_id"])
    integration_id = integration_id_of(sagemaker_integration)
    assert monitored(sqlite_url, integration_id) == [("synced-group", "1", "api"), ("synced-group", "2", "sync")]
    events = model_registered_events(sqlite_url, integration_id)
    assert [(e["external_id"], e["source"]) for e in events][-1] == (newer, "sync")


def test_rejected_credentials_are_a_502_with_aws_message(client, org, sagemaker_integration):
    with enable_iam_authentication():
        response = client.post(f"{sagemaker_integration}/test", headers=org.headers)

    assert response.status_code == 502
    assert "security token included in the request is invalid" in response.get_json()["detail"]


def test_unreachable_endpoint_is_a_502(client, org, create_integration, closed_port_url):
    unreachable = create_integration("sagemaker", {"region_name": AWS_REGION, "endpoint_url": closed_port_url}, KEYS)

    response = client.get(f"{unreachable}/models", headers=org.headers)

    assert response.status_code == 502
    assert "Could not connect" in response.get_json()["detail"]
