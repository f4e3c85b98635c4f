"""Client factories of the registry blocks: cached per block content, credentials kept per client."""

from __future__ import annotations

from mlflow.tracking.request_header.registry import resolve_request_headers

from blocks.mlflow import MlflowConnection


def test_mlflow_client_is_cached_per_block_content():
    first = MlflowConnection(tracking_uri="http://mlflow:5000", username="u", password="p1").get_client()
    same = MlflowConnection(tracking_uri="http://mlflow:5000", username="u", password="p1").get_client()
    rotated = MlflowConnection(tracking_uri="http://mlflow:5000", username="u", password="p2").get_client()

    assert first is same
    assert rotated is not first


def test_mlflow_credentials_are_not_process_wide():
    block = MlflowConnection(tracking_uri="http://mlflow:5000", token="t0k3n")
    block.get_client()

    # Only a call made through that block's client carries its header (see the real-server tests).
    assert "Authorization" not in resolve_request_headers()
    assert block.authorization().get_secret_value() == "Bearer t0k3n"
    assert "t0k3n" not in repr(block) and "t0k3n" not in str(block.authorization())
