"""Origins as the secrets rule compares them: scheme, lower-case host and port, defaults filled in."""

from __future__ import annotations

import pytest

from api.services.credential_origins import moves_origin, origin, origins_of


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ES.Example.com/", ("https", "es.example.com", 443)),
        ("https://es.example.com:443/path?q=1", ("https", "es.example.com", 443)),
        ("http://es.example.com", ("http", "es.example.com", 80)),
        ("HTTP://es.example.com.:8080", ("http", "es.example.com", 8080)),
        ("us-central1-aiplatform.googleapis.com", ("https", "us-central1-aiplatform.googleapis.com", 443)),
        ("http://[::1]:9200", ("http", "::1", 9200)),
    ],
)
def test_origin_is_normalised(url, expected):
    assert origin(url) == expected


@pytest.mark.parametrize(
    ("type_", "before", "after", "moved"),
    [
        ("elasticsearch", {"url": "https://es:443/"}, {"url": "https://ES/x"}, False),
        ("elasticsearch", {"url": "https://es"}, {"url": "http://es"}, True),
        ("splunk", {"hec_url": "https://s:8088"}, {"hec_url": "https://s:8089"}, True),
        ("datadog", {"site": "datadoghq.eu"}, {"site": "datadoghq.com"}, True),
        ("datadog", {"site": "datadoghq.eu"}, {"site": "datadoghq.eu", "api_url": "https://proxy"}, True),
        ("mlflow", {"tracking_uri": "http://m:5000"}, {"tracking_uri": "http://m:5000/"}, False),
        ("sagemaker", {"region_name": "us-east-1"}, {"region_name": "eu-west-1"}, True),
        ("sagemaker", {"region_name": "us-east-1"}, {"region_name": "us-east-1", "endpoint_url": "https://vpce"}, True),
        ("vertex_ai", {"location": "us-central1"}, {"location": "europe-west4"}, True),
        ("vertex_ai", {"location": "us-central1"}, {"location": "europe-west4",
                                                    "api_endpoint": "us-central1-aiplatform.googleapis.com"}, False),
        ("webhook", {"url": "https://h/a"}, {"url": "https://h/b"}, False),
    ],
)  # fmt: skip
def test_what_moves_a_record(type_, before, after, moved):
    assert moves_origin(type_, before, after) is moved


def test_a_datadog_site_names_one_origin_for_all_its_hosts():
    assert origins_of("datadog", {"site": "us5.datadoghq.com"}) == {("https", "us5.datadoghq.com", 443)}
