"""CRUD of integrations, exports and webhooks over the API, secrets in Prefect blocks."""

from __future__ import annotations

import copy

import pytest

from blocks.connections import block_document_name, read_credentials
from tests.api.bodies import SECRET_VALUES, all_bodies, body

MASK = "********"


def _id_of(collection: str) -> str:
    return {"integrations": "integration", "exports": "export", "webhooks": "webhook"}[collection]


@pytest.mark.parametrize(
    "collection,payload", list(all_bodies()), ids=lambda v: v if isinstance(v, str) else v.get("type", "webhook")
)
def test_create_get_list_delete(client, org, collection, payload):
    base = f"/organizations/{org.id}/{collection}"
    created = client.post(base, json=payload, headers=org.headers)
    assert created.status_code == 201, created.get_json()
    record = created.get_json()
    assert created.headers["Location"] == f"{base}/{record['id']}"
    assert record["organization_id"] == org.id and record["name"] == payload["name"]
    if collection == "webhooks":
        assert record["signing_secret"].startswith("whsec_")
        assert record["headers"] == {"X-Api-Token": MASK}
    else:
        assert record["credentials"] == {name: MASK for name in payload["credentials"]}
        assert record["type"] == payload["type"]

    fetched = client.get(created.headers["Location"], headers=org.headers).get_json()
    assert "signing_secret" not in fetched
    assert fetched["id"] == record["id"]
    listed = client.get(base, headers=org.headers).get_json()
    assert [item["id"] for item in listed["items"]] == [record["id"]]
    assert listed["next_cursor"] is None

    deleted = client.delete(created.headers["Location"], headers=org.headers)
    assert deleted.status_code == 204
    assert client.get(created.headers["Location"], headers=org.headers).status_code == 404
    assert client.get(base, headers=org.headers).get_json()["items"] == []


def test_export_defaults_and_schedule(client, org):
    payload = body("exports", "elasticsearch")
    record = client.post(f"/organizations/{org.id}/exports", json=payload, headers=org.headers).get_json()
    assert record["streams"] == ["inference_logs", "drift_metrics"]
    assert record["enabled"] is True and record["schedule"] is None
    assert record["config"]["indices"] == {
        "inference_logs": "modelpulse-inference-logs",
        "drift_metrics": "modelpulse-drift-metrics",
        "events": "modelpulse-events",
    }
    dd = client.post(f"/organizations/{org.id}/exports", json=body("exports", "datadog"), headers=org.headers)
    assert dd.get_json()["schedule"] == {"cron": "*/15 * * * *", "timezone": "UTC"}


REQUIRED = [
    ("integrations", "mlflow", "config.tracking_uri"),
    ("integrations", "sagemaker", "config.region_name"),
    ("integrations", "sagemaker", "credentials.aws_access_key_id"),
    ("integrations", "sagemaker", "credentials.aws_secret_access_key"),
    ("integrations", "vertex_ai", "config.project_id"),
    ("integrations", "vertex_ai", "config.location"),
    ("integrations", "vertex_ai", "credentials.service_account_info"),
    ("exports", "elasticsearch", "config.url"),
    ("exports", "elasticsearch", "credentials.username"),
    ("exports", "elasticsearch", "credentials.password"),
    ("exports", "splunk", "config.hec_url"),
    ("exports", "splunk", "credentials.hec_token"),
    ("exports", "datadog", "credentials.api_key"),
    ("exports", "datadog", "credentials.app_key"),
    ("webhooks", None, "name"),
    ("webhooks", None, "url"),
    ("webhooks", None, "events"),
]


@pytest.mark.parametrize("collection,type_,field", REQUIRED)
def test_missing_required_field_is_422_naming_it(client, org, collection, type_, field):
    payload = body(collection, type_)
    *parents, leaf = field.split(".")
    target = payload
    for parent in parents:
        target = target[parent]
    del target[leaf]
    response = client.post(f"/organizations/{org.id}/{collection}", json=payload, headers=org.headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422 and problem["title"]
    assert field in [error["field"] for error in problem["errors"]]
    assert client.get(f"/organizations/{org.id}/{collection}", headers=org.headers).get_json()["items"] == []


@pytest.mark.parametrize(
    "collection,payload,field",
    [
        ("integrations", body("integrations", "mlflow", type="kubeflow"), "type"),
        ("integrations", body("integrations", "mlflow", config={"tracking_uri": "ftp://x"}), "config.tracking_uri"),
        (
            "integrations",
            body("integrations", "mlflow", config={"tracking_uri": "http://m:5000", "password": "x"}),
            "config.password",
        ),
        ("exports", body("exports", "splunk", streams=["metrics"]), "streams[0]"),
        ("exports", body("exports", "splunk", schedule={"cron": "every day"}), "schedule"),
        (
            "exports",
            body("exports", "elasticsearch", config={"url": "https://es:9200", "indices": {"events": "Bad Index"}}),
            "config.indices.events",
        ),
        ("webhooks", body("webhooks", events=["model.deleted"]), "events[0]"),
        ("webhooks", body("webhooks", headers={"Webhook-Signature": "x"}), "headers"),
        ("webhooks", body("webhooks", url="https://user:pw@example.com/x"), "url"),
    ],
)
def test_invalid_field_is_422(client, org, collection, payload, field):
    response = client.post(f"/organizations/{org.id}/{collection}", json=payload, headers=org.headers)
    assert response.status_code == 422, response.get_json()
    fields = [error["field"] for error in response.get_json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[]", b'"text"', b"null"])
def test_malformed_bodies_are_422(client, org, raw):
    response = client.post(
        f"/organizations/{org.id}/webhooks", data=raw, headers=org.headers | {"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_duplicate_name_is_409(client, org):
    base = f"/organizations/{org.id}/integrations"
    assert client.post(base, json=body("integrations", "mlflow"), headers=org.headers).status_code == 201
    again = client.post(base, json=body("integrations", "sagemaker", name="mlflow-registry"), headers=org.headers)
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    other = client.post(base, json=body("integrations", "sagemaker"), headers=org.headers).get_json()
    renamed = client.put(
        f"{base}/{other['id']}", json=body("integrations", "sagemaker", name="mlflow-registry"), headers=org.headers
    )
    assert renamed.status_code == 409


def test_same_name_in_two_organizations_is_fine(client, org, make_key):
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert (
        client.post(f"/organizations/{org.id}/webhooks", json=body("webhooks"), headers=org.headers).status_code == 201
    )
    assert client.post("/organizations/globex/webhooks", json=body("webhooks"), headers=other).status_code == 201


def test_put_keeps_omitted_and_masked_secrets(client, org):
    base = f"/organizations/{org.id}/integrations"
    record = client.post(base, json=body("integrations", "sagemaker"), headers=org.headers).get_json()
    url = f"{base}/{record['id']}"

    omitted = body("integrations", "sagemaker", name="renamed", config={"region_name": "us-east-1"})
    del omitted["credentials"]
    response = client.put(url, json=omitted, headers=org.headers)
    assert response.status_code == 200, response.get_json()
    updated = response.get_json()
    assert updated["name"] == "renamed" and updated["config"]["region_name"] == "us-east-1"
    assert updated["credentials"] == {"aws_access_key_id": MASK, "aws_secret_access_key": MASK}
    stored = read_credentials("integration", record["id"], "sagemaker")
    assert stored["aws_secret_access_key"] == "SECRET-AWS-ACCESS-KEY"

    masked = body(
        "integrations", "sagemaker", credentials={"aws_access_key_id": "AKIANEWKEY", "aws_secret_access_key": MASK}
    )
    assert client.put(url, json=masked, headers=org.headers).status_code == 200
    stored = read_credentials("integration", record["id"], "sagemaker")
    assert stored["aws_access_key_id"] == "AKIANEWKEY"
    assert stored["aws_secret_access_key"] == "SECRET-AWS-ACCESS-KEY"

    # Another region is another origin: every stored secret must be sent again.
    moved = client.put(url, json=omitted | {"config": {"region_name": "eu-west-1"}}, headers=org.headers)
    assert moved.status_code == 422
    assert [e["field"] for e in moved.get_json()["errors"]] == [
        "credentials.aws_access_key_id",
        "credentials.aws_secret_access_key",
    ]

    # Switching type drops the old secrets: the new type's required ones must be given.
    switched = body("integrations", "vertex_ai")
    del switched["credentials"]
    response = client.put(url, json=switched, headers=org.headers)
    assert response.status_code == 422
    assert "credentials.service_account_info" in [e["field"] for e in response.get_json()["errors"]]


def test_put_clears_optional_secret_with_null(client, org):
    base = f"/organizations/{org.id}/integrations"
    record = client.post(base, json=body("integrations", "mlflow"), headers=org.headers).get_json()
    cleared = body("integrations", "mlflow", credentials={"username": "svc", "password": None})
    updated = client.put(f"{base}/{record['id']}", json=cleared, headers=org.headers).get_json()
    assert updated["credentials"] == {"username": MASK}
    assert read_credentials("integration", record["id"], "mlflow")["password"] is None


def test_webhook_put_keeps_header_values(client, org):
    from blocks.connections import load_connection

    base = f"/organizations/{org.id}/webhooks"
    created = client.post(base, json=body("webhooks"), headers=org.headers).get_json()
    url = f"{base}/{created['id']}"
    payload = body("webhooks", headers={"X-Api-Token": MASK, "X-Team": "ml"}, enabled=False)
    updated = client.put(url, json=payload, headers=org.headers).get_json()
    assert updated["headers"] == {"X-Api-Token": MASK, "X-Team": MASK}
    assert updated["enabled"] is False
    secrets = load_connection("webhook", created["id"], "webhook")
    assert secrets.header_values() == {"X-Api-Token": "SECRET-WEBHOOK-HEADER", "X-Team": "ml"}
    assert secrets.signing_secret.get_secret_value() == created["signing_secret"]

    without_headers = body("webhooks")
    del without_headers["headers"]
    assert client.put(url, json=without_headers, headers=org.headers).get_json()["headers"] == {
        "X-Api-Token": MASK,
        "X-Team": MASK,
    }


@pytest.mark.parametrize(
    "collection,payload", list(all_bodies()), ids=lambda v: v if isinstance(v, str) else v.get("type", "webhook")
)
def test_delete_removes_block_document(client, org, collection, payload):
    from prefect.client.orchestration import get_client

    base = f"/organizations/{org.id}/{collection}"
    record = client.post(base, json=payload, headers=org.headers).get_json()
    name = block_document_name(_id_of(collection), record["id"])
    with get_client(sync_client=True) as prefect:
        names = [document.name for document in prefect.read_block_documents()]
        assert name in names
        assert client.delete(f"{base}/{record['id']}", headers=org.headers).status_code == 204
        names = [document.name for document in prefect.read_block_documents()]
        assert name not in names


def test_pagination(client, org):
    base = f"/organizations/{org.id}/webhooks"
    ids = [
        client.post(base, json=body("webhooks", name=f"hook-{i}"), headers=org.headers).get_json()["id"]
        for i in range(5)
    ]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(base, query_string=query, headers=org.headers).get_json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "many"}, {"cursor": "%%%"}):
        response = client.get(base, query_string=bad, headers=org.headers)
        assert response.status_code == 422, bad
        assert response.get_json()["errors"][0]["field"].startswith("query.")


def test_secrets_never_in_responses_database_or_logs(client, org, database_url, caplog):
    caplog.set_level("DEBUG")
    texts = []
    for collection, payload in all_bodies():
        base = f"/organizations/{org.id}/{collection}"
        created = client.post(base, json=payload, headers=org.headers)
        texts.append(created.get_data(as_text=True))
        update = copy.deepcopy(payload)
        if collection != "webhooks":
            update["credentials"] = {k: MASK for k in payload["credentials"]}
        texts.append(
            client.put(f"{base}/{created.get_json()['id']}", json=update, headers=org.headers).get_data(as_text=True)
        )
        texts.append(client.get(base, headers=org.headers).get_data(as_text=True))
    texts.append(caplog.text)
    for secret in SECRET_VALUES:
        assert not any(secret in text for text in texts), secret
    if database_url.startswith("sqlite:///"):
        raw = open(database_url.removeprefix("sqlite:///"), "rb").read()
        for wal in ("-wal", "-journal"):
            try:
                raw += open(database_url.removeprefix("sqlite:///") + wal, "rb").read()
            except FileNotFoundError:
                pass
        assert b"mlflow-registry" in raw  # the file is readable: the check below can fail
        for secret in SECRET_VALUES:
            assert secret.encode() not in raw, secret
    else:
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.connect() as connection:
            dump = []
            for table in ("integrations", "exports", "webhooks", "api_keys"):
                dump += [str(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
        engine.dispose()
        assert any("mlflow-registry" in row for row in dump)
        for secret in SECRET_VALUES:
            assert not any(secret in row for row in dump), secret


def test_nul_characters_are_refused_not_500(client, org):
    """PostgreSQL cannot store or even compare NUL: refuse it at the door on every backend."""
    base = f"/organizations/{org.id}/webhooks"
    response = client.post(base, json=body("webhooks", name="bad\x00name"), headers=org.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "name"
    response = client.post(base, json=body("webhooks", headers={"X-Token": "a\x00b"}), headers=org.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "headers.X-Token"
    assert client.get(f"{base}/wh_%00", headers=org.headers).status_code == 404
    assert client.get(base, query_string={"cursor": "\x00"}, headers=org.headers).status_code == 422
