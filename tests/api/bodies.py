"""Valid request bodies for every resource type, with recognizable secret values."""

from __future__ import annotations

import copy

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
# A run of the key's base64 body: if it shows up anywhere, the key leaked.
PRIVATE_KEY_MARKER = PRIVATE_KEY.splitlines()[5]

SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "mp-test",
    "client_email": "exporter@mp-test.iam.gserviceaccount.com",
    "private_key": PRIVATE_KEY,
    "token_uri": "https://oauth2.googleapis.com/token",
}

INTEGRATIONS = {
    "mlflow": {
        "name": "mlflow-registry",
        "type": "mlflow",
        "config": {"tracking_uri": "http://mlflow.internal:5000"},
        "credentials": {"username": "svc", "password": "SECRET-MLFLOW-PASSWORD"},
    },
    "sagemaker": {
        "name": "sagemaker-prod",
        "type": "sagemaker",
        "project_id": "fraud",
        "config": {"region_name": "us-east-1"},
        "credentials": {
            "aws_access_key_id": "AKIASECRETKEYID0001",
            "aws_secret_access_key": "SECRET-AWS-ACCESS-KEY",
        },
    },
    "vertex_ai": {
        "name": "vertex",
        "type": "vertex_ai",
        "config": {"project_id": "mp-test", "location": "us-central1"},
        "credentials": {"service_account_info": SERVICE_ACCOUNT},
    },
}

EXPORTS = {
    "elasticsearch": {
        "name": "kibana",
        "type": "elasticsearch",
        "config": {"url": "https://es.internal:9200", "verify_ssl": False},
        "credentials": {"username": "elastic", "password": "SECRET-ES-PASSWORD"},
    },
    "splunk": {
        "name": "splunk",
        "type": "splunk",
        "config": {"hec_url": "https://splunk.internal:8088"},
        "credentials": {"hec_token": "SECRET-HEC-TOKEN"},
        "schedule": {"interval_seconds": 300},
    },
    "datadog": {
        "name": "datadog",
        "type": "datadog",
        "config": {"site": "datadoghq.eu"},
        "credentials": {"api_key": "SECRET-DD-API-KEY", "app_key": "SECRET-DD-APP-KEY"},
        "streams": ["drift_metrics", "events"],
        "schedule": {"cron": "*/15 * * * *"},
    },
}

WEBHOOK = {
    "name": "on-drift",
    "url": "https://hooks.example.com/modelpulse",
    "events": ["drift.detected", "threshold.breached"],
    "headers": {"X-Api-Token": "SECRET-WEBHOOK-HEADER"},
}

SECRET_VALUES = [
    "SECRET-MLFLOW-PASSWORD",
    "SECRET-AWS-ACCESS-KEY",
    "AKIASECRETKEYID0001",
    PRIVATE_KEY_MARKER,
    "SECRET-ES-PASSWORD",
    "SECRET-HEC-TOKEN",
    "SECRET-DD-API-KEY",
    "SECRET-DD-APP-KEY",
    "SECRET-WEBHOOK-HEADER",
]


def body(kind: str, type_: str | None = None, **changes):
    source = {"integrations": INTEGRATIONS, "exports": EXPORTS}.get(kind)
    result = copy.deepcopy(source[type_] if source else WEBHOOK)
    result.update(changes)
    return result


def all_bodies():
    """(collection, body) for every type of every resource."""
    for type_ in INTEGRATIONS:
        yield "integrations", body("integrations", type_)
    for type_ in EXPORTS:
        yield "exports", body("exports", type_)
    yield "webhooks", body("webhooks")
