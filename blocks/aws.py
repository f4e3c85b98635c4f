"""SageMaker integrations reuse ``prefect_aws.AwsCredentials``; this maps our fields onto it."""

from __future__ import annotations

from typing import Any

from prefect_aws import AwsClientParameters, AwsCredentials


def aws_credentials_from_settings(config: dict[str, Any], credentials: dict[str, Any]) -> AwsCredentials:
    """Build the block from an integration's config (region, endpoint) and credentials."""
    return AwsCredentials(
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
        aws_session_token=credentials.get("aws_session_token"),
        region_name=config["region_name"],
        aws_client_parameters=AwsClientParameters(endpoint_url=config.get("endpoint_url")),
    )


def aws_credentials_values(block: AwsCredentials) -> dict[str, Any]:
    secret = block.aws_secret_access_key
    token = block.aws_session_token
    return {
        "aws_access_key_id": block.aws_access_key_id,
        "aws_secret_access_key": secret.get_secret_value() if secret else None,
        "aws_session_token": token.get_secret_value() if token else None,
    }
